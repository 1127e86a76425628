import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from numrep.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublicKey(_message.Message):
    __slots__ = ("kid", "jwk", "added_at", "revoked_at")
    KID_FIELD_NUMBER: _ClassVar[int]
    JWK_FIELD_NUMBER: _ClassVar[int]
    ADDED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    kid: str
    jwk: str
    added_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, kid: _Optional[str] = ..., jwk: _Optional[str] = ..., added_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Participant(_message.Message):
    __slots__ = ("id", "role", "display_name", "keys")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: _common_pb2.Role
    display_name: str
    keys: _containers.RepeatedCompositeFieldContainer[PublicKey]
    def __init__(self, id: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., display_name: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[PublicKey, _Mapping]]] = ...) -> None: ...

class ListParticipantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListParticipantsResponse(_message.Message):
    __slots__ = ("participants",)
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    participants: _containers.RepeatedCompositeFieldContainer[Participant]
    def __init__(self, participants: _Optional[_Iterable[_Union[Participant, _Mapping]]] = ...) -> None: ...

class GetParticipantRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RegisterParticipantRequest(_message.Message):
    __slots__ = ("id", "role", "display_name", "jwks")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    JWKS_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: _common_pb2.Role
    display_name: str
    jwks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., display_name: _Optional[str] = ..., jwks: _Optional[_Iterable[str]] = ...) -> None: ...

class AddKeyRequest(_message.Message):
    __slots__ = ("participant_id", "jwk")
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    JWK_FIELD_NUMBER: _ClassVar[int]
    participant_id: str
    jwk: str
    def __init__(self, participant_id: _Optional[str] = ..., jwk: _Optional[str] = ...) -> None: ...

class RevokeKeyRequest(_message.Message):
    __slots__ = ("participant_id", "kid")
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    participant_id: str
    kid: str
    def __init__(self, participant_id: _Optional[str] = ..., kid: _Optional[str] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("lifetime_seconds",)
    LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    lifetime_seconds: int
    def __init__(self, lifetime_seconds: _Optional[int] = ...) -> None: ...

class CallSession(_message.Message):
    __slots__ = ("session_id", "key", "expires_at", "participant_id", "kid")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    key: bytes
    expires_at: _timestamp_pb2.Timestamp
    participant_id: str
    kid: str
    def __init__(self, session_id: _Optional[str] = ..., key: _Optional[bytes] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., participant_id: _Optional[str] = ..., kid: _Optional[str] = ...) -> None: ...

class GetTrustRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RefitTrustRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SourceTrust(_message.Message):
    __slots__ = ("source", "participant_id", "prior", "fitted", "spam_precision", "legit_precision", "sensitivity", "specificity", "spam_votes", "legit_votes", "independence", "summary")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    PRIOR_FIELD_NUMBER: _ClassVar[int]
    FITTED_FIELD_NUMBER: _ClassVar[int]
    SPAM_PRECISION_FIELD_NUMBER: _ClassVar[int]
    LEGIT_PRECISION_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    SPECIFICITY_FIELD_NUMBER: _ClassVar[int]
    SPAM_VOTES_FIELD_NUMBER: _ClassVar[int]
    LEGIT_VOTES_FIELD_NUMBER: _ClassVar[int]
    INDEPENDENCE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    source: str
    participant_id: str
    prior: str
    fitted: bool
    spam_precision: float
    legit_precision: float
    sensitivity: float
    specificity: float
    spam_votes: float
    legit_votes: float
    independence: float
    summary: str
    def __init__(self, source: _Optional[str] = ..., participant_id: _Optional[str] = ..., prior: _Optional[str] = ..., fitted: _Optional[bool] = ..., spam_precision: _Optional[float] = ..., legit_precision: _Optional[float] = ..., sensitivity: _Optional[float] = ..., specificity: _Optional[float] = ..., spam_votes: _Optional[float] = ..., legit_votes: _Optional[float] = ..., independence: _Optional[float] = ..., summary: _Optional[str] = ...) -> None: ...

class TrustReport(_message.Message):
    __slots__ = ("epoch", "fitted_at", "base_probability", "numbers", "labels", "flags", "gold", "iterations", "converged", "sources", "verdicts_changed")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FITTED_AT_FIELD_NUMBER: _ClassVar[int]
    BASE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    GOLD_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    CONVERGED_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    fitted_at: _timestamp_pb2.Timestamp
    base_probability: float
    numbers: int
    labels: int
    flags: int
    gold: int
    iterations: int
    converged: bool
    sources: _containers.RepeatedCompositeFieldContainer[SourceTrust]
    verdicts_changed: int
    def __init__(self, epoch: _Optional[int] = ..., fitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., base_probability: _Optional[float] = ..., numbers: _Optional[int] = ..., labels: _Optional[int] = ..., flags: _Optional[int] = ..., gold: _Optional[int] = ..., iterations: _Optional[int] = ..., converged: _Optional[bool] = ..., sources: _Optional[_Iterable[_Union[SourceTrust, _Mapping]]] = ..., verdicts_changed: _Optional[int] = ...) -> None: ...
