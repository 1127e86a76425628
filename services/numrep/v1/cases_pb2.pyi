import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CaseKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CASE_KIND_UNSPECIFIED: _ClassVar[CaseKind]
    CASE_KIND_COMPLAINT: _ClassVar[CaseKind]
    CASE_KIND_DISPUTE: _ClassVar[CaseKind]

class CaseStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CASE_STATUS_UNSPECIFIED: _ClassVar[CaseStatus]
    CASE_STATUS_OPEN: _ClassVar[CaseStatus]
    CASE_STATUS_CONFIRMED: _ClassVar[CaseStatus]
    CASE_STATUS_REJECTED: _ClassVar[CaseStatus]
    CASE_STATUS_UPHELD: _ClassVar[CaseStatus]
CASE_KIND_UNSPECIFIED: CaseKind
CASE_KIND_COMPLAINT: CaseKind
CASE_KIND_DISPUTE: CaseKind
CASE_STATUS_UNSPECIFIED: CaseStatus
CASE_STATUS_OPEN: CaseStatus
CASE_STATUS_CONFIRMED: CaseStatus
CASE_STATUS_REJECTED: CaseStatus
CASE_STATUS_UPHELD: CaseStatus

class CaseParticulars(_message.Message):
    __slots__ = ("text", "contact", "evidence", "filed_by", "filed_via")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    FILED_BY_FIELD_NUMBER: _ClassVar[int]
    FILED_VIA_FIELD_NUMBER: _ClassVar[int]
    text: str
    contact: str
    evidence: str
    filed_by: str
    filed_via: str
    def __init__(self, text: _Optional[str] = ..., contact: _Optional[str] = ..., evidence: _Optional[str] = ..., filed_by: _Optional[str] = ..., filed_via: _Optional[str] = ...) -> None: ...

class Case(_message.Message):
    __slots__ = ("case_id", "kind", "number", "category", "status", "filed_at", "deadline", "resolved_at", "outcome", "label_ids", "occurred_at", "age_seconds", "overdue", "particulars")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FILED_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    LABEL_IDS_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    PARTICULARS_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    kind: CaseKind
    number: str
    category: str
    status: CaseStatus
    filed_at: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    resolved_at: _timestamp_pb2.Timestamp
    outcome: str
    label_ids: _containers.RepeatedScalarFieldContainer[str]
    occurred_at: _timestamp_pb2.Timestamp
    age_seconds: int
    overdue: bool
    particulars: CaseParticulars
    def __init__(self, case_id: _Optional[str] = ..., kind: _Optional[_Union[CaseKind, str]] = ..., number: _Optional[str] = ..., category: _Optional[str] = ..., status: _Optional[_Union[CaseStatus, str]] = ..., filed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome: _Optional[str] = ..., label_ids: _Optional[_Iterable[str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., age_seconds: _Optional[int] = ..., overdue: _Optional[bool] = ..., particulars: _Optional[_Union[CaseParticulars, _Mapping]] = ...) -> None: ...

class FileComplaintRequest(_message.Message):
    __slots__ = ("number", "category", "occurred_at", "text", "reporter_id")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REPORTER_ID_FIELD_NUMBER: _ClassVar[int]
    number: str
    category: str
    occurred_at: _timestamp_pb2.Timestamp
    text: str
    reporter_id: str
    def __init__(self, number: _Optional[str] = ..., category: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., text: _Optional[str] = ..., reporter_id: _Optional[str] = ...) -> None: ...

class FileDisputeRequest(_message.Message):
    __slots__ = ("number", "contact", "evidence", "reporter_id")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    REPORTER_ID_FIELD_NUMBER: _ClassVar[int]
    number: str
    contact: str
    evidence: str
    reporter_id: str
    def __init__(self, number: _Optional[str] = ..., contact: _Optional[str] = ..., evidence: _Optional[str] = ..., reporter_id: _Optional[str] = ...) -> None: ...

class GetCaseRequest(_message.Message):
    __slots__ = ("case_id",)
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    def __init__(self, case_id: _Optional[str] = ...) -> None: ...

class ListCasesRequest(_message.Message):
    __slots__ = ("kind", "status", "limit")
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    kind: CaseKind
    status: CaseStatus
    limit: int
    def __init__(self, kind: _Optional[_Union[CaseKind, str]] = ..., status: _Optional[_Union[CaseStatus, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListCasesResponse(_message.Message):
    __slots__ = ("cases",)
    CASES_FIELD_NUMBER: _ClassVar[int]
    cases: _containers.RepeatedCompositeFieldContainer[Case]
    def __init__(self, cases: _Optional[_Iterable[_Union[Case, _Mapping]]] = ...) -> None: ...

class ResolveCaseRequest(_message.Message):
    __slots__ = ("case_id", "outcome", "message")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    outcome: CaseStatus
    message: str
    def __init__(self, case_id: _Optional[str] = ..., outcome: _Optional[_Union[CaseStatus, str]] = ..., message: _Optional[str] = ...) -> None: ...

class ListDisputesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchDisputesRequest(_message.Message):
    __slots__ = ("follow",)
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    follow: bool
    def __init__(self, follow: _Optional[bool] = ...) -> None: ...
