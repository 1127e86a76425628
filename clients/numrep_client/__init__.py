"""Python SDK for participants of a numrep exchange."""

from numrep_client._client import ExchangeClient, ExchangeError, FlagToSend, PrivateAnswer
from numrep_client._handset import HandsetLabelStore, KeyDirectory, SyncReport, sync_handset

__all__ = ["ExchangeClient", "ExchangeError", "FlagToSend", "PrivateAnswer", "HandsetLabelStore", "KeyDirectory", "SyncReport", "sync_handset"]
