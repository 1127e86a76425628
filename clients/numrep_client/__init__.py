"""Python SDK for participants of a numrep exchange."""

from numrep_client._client import ExchangeClient, ExchangeError, FlagToSend

__all__ = ["ExchangeClient", "ExchangeError", "FlagToSend"]
