"""The one place where exchange errors become gRPC status codes."""

from __future__ import annotations

import grpc

from numrep.core import errors

STATUS_BY_ERROR: list[tuple[type[errors.NumrepError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.TooLarge, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.StoreTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.LabelRejected, grpc.StatusCode.INVALID_ARGUMENT),
]


def status_for(error: errors.NumrepError) -> grpc.StatusCode:
    for kind, code in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


# google.rpc.Code numbers, for per-item errors inside a batch response.
def code_number(code: grpc.StatusCode) -> int:
    return int(code.value[0])
