from numrep.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SyncRequest(_message.Message):
    __slots__ = ("cursor", "chunk_size")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    chunk_size: int
    def __init__(self, cursor: _Optional[str] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class SyncEntry(_message.Message):
    __slots__ = ("number", "action", "category", "spam_probability", "labels", "tombstone", "removed_label_ids", "version")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SPAM_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_FIELD_NUMBER: _ClassVar[int]
    REMOVED_LABEL_IDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    number: str
    action: _common_pb2.Action
    category: str
    spam_probability: float
    labels: _containers.RepeatedScalarFieldContainer[str]
    tombstone: bool
    removed_label_ids: _containers.RepeatedScalarFieldContainer[str]
    version: int
    def __init__(self, number: _Optional[str] = ..., action: _Optional[_Union[_common_pb2.Action, str]] = ..., category: _Optional[str] = ..., spam_probability: _Optional[float] = ..., labels: _Optional[_Iterable[str]] = ..., tombstone: _Optional[bool] = ..., removed_label_ids: _Optional[_Iterable[str]] = ..., version: _Optional[int] = ...) -> None: ...

class SyncChunk(_message.Message):
    __slots__ = ("entries", "cursor", "snapshot", "caught_up")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[SyncEntry]
    cursor: str
    snapshot: bool
    caught_up: bool
    def __init__(self, entries: _Optional[_Iterable[_Union[SyncEntry, _Mapping]]] = ..., cursor: _Optional[str] = ..., snapshot: _Optional[bool] = ..., caught_up: _Optional[bool] = ...) -> None: ...
