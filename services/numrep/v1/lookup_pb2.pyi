import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from numrep.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerdictView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_VIEW_UNSPECIFIED: _ClassVar[VerdictView]
    VERDICT_VIEW_FULL: _ClassVar[VerdictView]
    VERDICT_VIEW_BASIC: _ClassVar[VerdictView]
VERDICT_VIEW_UNSPECIFIED: VerdictView
VERDICT_VIEW_FULL: VerdictView
VERDICT_VIEW_BASIC: VerdictView

class CallContext(_message.Message):
    __slots__ = ("callee", "call_time", "identity_header", "call_category")
    CALLEE_FIELD_NUMBER: _ClassVar[int]
    CALL_TIME_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_HEADER_FIELD_NUMBER: _ClassVar[int]
    CALL_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    callee: str
    call_time: _timestamp_pb2.Timestamp
    identity_header: str
    call_category: str
    def __init__(self, callee: _Optional[str] = ..., call_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., identity_header: _Optional[str] = ..., call_category: _Optional[str] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("number", "context")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    number: str
    context: CallContext
    def __init__(self, number: _Optional[str] = ..., context: _Optional[_Union[CallContext, _Mapping]] = ...) -> None: ...

class BatchLookupRequest(_message.Message):
    __slots__ = ("requests", "view")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[LookupRequest]
    view: VerdictView
    def __init__(self, requests: _Optional[_Iterable[_Union[LookupRequest, _Mapping]]] = ..., view: _Optional[_Union[VerdictView, str]] = ...) -> None: ...

class BatchLookupResult(_message.Message):
    __slots__ = ("input", "verdict", "error_code", "error_message")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    input: str
    verdict: _common_pb2.Verdict
    error_code: int
    error_message: str
    def __init__(self, input: _Optional[str] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, _Mapping]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ...) -> None: ...

class BatchLookupResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchLookupResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchLookupResult, _Mapping]]] = ...) -> None: ...

class StreamLookup(_message.Message):
    __slots__ = ("id", "request")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    id: int
    request: LookupRequest
    def __init__(self, id: _Optional[int] = ..., request: _Optional[_Union[LookupRequest, _Mapping]] = ...) -> None: ...

class LookupStreamRequest(_message.Message):
    __slots__ = ("lookups",)
    LOOKUPS_FIELD_NUMBER: _ClassVar[int]
    lookups: _containers.RepeatedCompositeFieldContainer[StreamLookup]
    def __init__(self, lookups: _Optional[_Iterable[_Union[StreamLookup, _Mapping]]] = ...) -> None: ...

class StreamAnswer(_message.Message):
    __slots__ = ("id", "verdict", "error_code", "error_message", "retry_after_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    verdict: _common_pb2.Verdict
    error_code: int
    error_message: str
    retry_after_ms: int
    def __init__(self, id: _Optional[int] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, _Mapping]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class LookupStreamResponse(_message.Message):
    __slots__ = ("answers",)
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[StreamAnswer]
    def __init__(self, answers: _Optional[_Iterable[_Union[StreamAnswer, _Mapping]]] = ...) -> None: ...

class PrefixLookupRequest(_message.Message):
    __slots__ = ("hash_prefix",)
    HASH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    hash_prefix: str
    def __init__(self, hash_prefix: _Optional[str] = ...) -> None: ...

class PrefixEntry(_message.Message):
    __slots__ = ("number_hash", "action", "category", "spam_probability", "expires_at")
    NUMBER_HASH_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SPAM_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    number_hash: str
    action: _common_pb2.Action
    category: str
    spam_probability: float
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, number_hash: _Optional[str] = ..., action: _Optional[_Union[_common_pb2.Action, str]] = ..., category: _Optional[str] = ..., spam_probability: _Optional[float] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PrefixLookupResponse(_message.Message):
    __slots__ = ("entries", "prefix_bits")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    PREFIX_BITS_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[PrefixEntry]
    prefix_bits: int
    def __init__(self, entries: _Optional[_Iterable[_Union[PrefixEntry, _Mapping]]] = ..., prefix_bits: _Optional[int] = ...) -> None: ...
