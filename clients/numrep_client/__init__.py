"""Python SDK for participants of a numrep exchange."""

from numrep_client._client import ExchangeClient, ExchangeError, FlagToSend, PrivateAnswer, TlsFiles, open_channel
from numrep_client._handset import HandsetLabelStore, HeldNumbers, KeyDirectory, SyncReport, sync_handset

__all__ = ["ExchangeClient", "ExchangeError", "FlagToSend", "PrivateAnswer", "TlsFiles", "open_channel", "HandsetLabelStore", "HeldNumbers", "KeyDirectory", "SyncReport", "sync_handset"]

from numrep_client._app import AppFlagClient, FlushReport, InvalidFlag, QueuedFlag, SealedBatch, pseudonymize
from numrep_client._breaker import CircuitBreaker, NullBreaker
from numrep_client._carrier import AsyncCarrierClient, CallDecision, CarrierClient, CarrierStats, InvalidNumberError, LatencySummary, VerdictCache

__all__ += ["AppFlagClient", "FlushReport", "InvalidFlag", "QueuedFlag", "SealedBatch", "pseudonymize"]
__all__ += ["CircuitBreaker", "NullBreaker"]
__all__ += ["AsyncCarrierClient", "CallDecision", "CarrierClient", "CarrierStats", "InvalidNumberError", "LatencySummary", "VerdictCache"]
