import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from numrep.v1 import consent_pb2 as _consent_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_CARRIER: _ClassVar[Role]
    ROLE_HANDSET_VENDOR: _ClassVar[Role]
    ROLE_APP_VENDOR: _ClassVar[Role]
    ROLE_REGULATOR: _ClassVar[Role]

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNKNOWN: _ClassVar[Action]
    ACTION_ALLOW: _ClassVar[Action]
    ACTION_WARN: _ClassVar[Action]
    ACTION_BLOCK: _ClassVar[Action]
ROLE_UNSPECIFIED: Role
ROLE_CARRIER: Role
ROLE_HANDSET_VENDOR: Role
ROLE_APP_VENDOR: Role
ROLE_REGULATOR: Role
ACTION_UNKNOWN: Action
ACTION_ALLOW: Action
ACTION_WARN: Action
ACTION_BLOCK: Action

class Contribution(_message.Message):
    __slots__ = ("participant_id", "role", "category", "weight", "kind", "label_id", "reporter_count", "explanation")
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    participant_id: str
    role: Role
    category: str
    weight: float
    kind: str
    label_id: str
    reporter_count: int
    explanation: str
    def __init__(self, participant_id: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., category: _Optional[str] = ..., weight: _Optional[float] = ..., kind: _Optional[str] = ..., label_id: _Optional[str] = ..., reporter_count: _Optional[int] = ..., explanation: _Optional[str] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("number", "action", "category", "spam_probability", "confidence", "contributions", "version", "computed_at", "expires_at", "explanation", "label_count", "flag_count", "caller_id_authentication", "caller_id_risk", "trust_epoch", "consent")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SPAM_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    LABEL_COUNT_FIELD_NUMBER: _ClassVar[int]
    FLAG_COUNT_FIELD_NUMBER: _ClassVar[int]
    CALLER_ID_AUTHENTICATION_FIELD_NUMBER: _ClassVar[int]
    CALLER_ID_RISK_FIELD_NUMBER: _ClassVar[int]
    TRUST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    number: str
    action: Action
    category: str
    spam_probability: float
    confidence: float
    contributions: _containers.RepeatedCompositeFieldContainer[Contribution]
    version: int
    computed_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    explanation: str
    label_count: int
    flag_count: int
    caller_id_authentication: str
    caller_id_risk: float
    trust_epoch: int
    consent: _consent_pb2.ConsentCheck
    def __init__(self, number: _Optional[str] = ..., action: _Optional[_Union[Action, str]] = ..., category: _Optional[str] = ..., spam_probability: _Optional[float] = ..., confidence: _Optional[float] = ..., contributions: _Optional[_Iterable[_Union[Contribution, _Mapping]]] = ..., version: _Optional[int] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., explanation: _Optional[str] = ..., label_count: _Optional[int] = ..., flag_count: _Optional[int] = ..., caller_id_authentication: _Optional[str] = ..., caller_id_risk: _Optional[float] = ..., trust_epoch: _Optional[int] = ..., consent: _Optional[_Union[_consent_pb2.ConsentCheck, _Mapping]] = ...) -> None: ...
