import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from numrep.v1 import publish_pb2 as _publish_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConsentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_STATE_UNSPECIFIED: _ClassVar[ConsentState]
    CONSENT_STATE_NONE: _ClassVar[ConsentState]
    CONSENT_STATE_CONSENTED: _ClassVar[ConsentState]
    CONSENT_STATE_REFUSED: _ClassVar[ConsentState]
CONSENT_STATE_UNSPECIFIED: ConsentState
CONSENT_STATE_NONE: ConsentState
CONSENT_STATE_CONSENTED: ConsentState
CONSENT_STATE_REFUSED: ConsentState

class RegisterConsentRequest(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, records: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordRefusalRequest(_message.Message):
    __slots__ = ("refusals",)
    REFUSALS_FIELD_NUMBER: _ClassVar[int]
    refusals: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, refusals: _Optional[_Iterable[str]] = ...) -> None: ...

class RevokeConsentRequest(_message.Message):
    __slots__ = ("record_ids", "reason")
    RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    record_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, record_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ConsentItemsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_publish_pb2.ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_publish_pb2.ItemResult, _Mapping]]] = ...) -> None: ...

class GetConsentStateRequest(_message.Message):
    __slots__ = ("caller", "callee", "time", "category")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CALLEE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    caller: str
    callee: str
    time: _timestamp_pb2.Timestamp
    category: str
    def __init__(self, caller: _Optional[str] = ..., callee: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., category: _Optional[str] = ...) -> None: ...

class ConsentCheck(_message.Message):
    __slots__ = ("state", "reason", "within_allowed_hours", "marketing", "blocks", "block_reason", "explanation", "record_id", "time_zones", "allowed_hours", "local_time")
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WITHIN_ALLOWED_HOURS_FIELD_NUMBER: _ClassVar[int]
    MARKETING_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_REASON_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONES_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_HOURS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_TIME_FIELD_NUMBER: _ClassVar[int]
    state: ConsentState
    reason: str
    within_allowed_hours: bool
    marketing: bool
    blocks: bool
    block_reason: str
    explanation: str
    record_id: str
    time_zones: _containers.RepeatedScalarFieldContainer[str]
    allowed_hours: str
    local_time: str
    def __init__(self, state: _Optional[_Union[ConsentState, str]] = ..., reason: _Optional[str] = ..., within_allowed_hours: _Optional[bool] = ..., marketing: _Optional[bool] = ..., blocks: _Optional[bool] = ..., block_reason: _Optional[str] = ..., explanation: _Optional[str] = ..., record_id: _Optional[str] = ..., time_zones: _Optional[_Iterable[str]] = ..., allowed_hours: _Optional[str] = ..., local_time: _Optional[str] = ...) -> None: ...
