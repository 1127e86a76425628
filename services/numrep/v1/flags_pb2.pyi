import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from numrep.v1 import publish_pb2 as _publish_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Flag(_message.Message):
    __slots__ = ("number", "category", "reporter_id", "time", "comment")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    REPORTER_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    number: str
    category: str
    reporter_id: str
    time: _timestamp_pb2.Timestamp
    comment: str
    def __init__(self, number: _Optional[str] = ..., category: _Optional[str] = ..., reporter_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ...) -> None: ...

class FlagBatch(_message.Message):
    __slots__ = ("batch_id", "flags")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    flags: _containers.RepeatedCompositeFieldContainer[Flag]
    def __init__(self, batch_id: _Optional[str] = ..., flags: _Optional[_Iterable[_Union[Flag, _Mapping]]] = ...) -> None: ...

class FlagBatchResult(_message.Message):
    __slots__ = ("results", "accepted", "replayed_batch")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_BATCH_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_publish_pb2.ItemResult]
    accepted: int
    replayed_batch: bool
    def __init__(self, results: _Optional[_Iterable[_Union[_publish_pb2.ItemResult, _Mapping]]] = ..., accepted: _Optional[int] = ..., replayed_batch: _Optional[bool] = ...) -> None: ...
