"""The exchange's error hierarchy. Each error names the kind of failure; the gRPC
layer maps kinds to status codes in exactly one place (``numrep.api.errors``)."""

from __future__ import annotations


class NumrepError(Exception):
    """Base of every error the exchange reports to a caller."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or type(self).__name__


class InvalidArgument(NumrepError):
    """The request is malformed: a bad number, category, field or size."""


class InvalidNumber(InvalidArgument):
    def __init__(self, raw: str, why: str) -> None:
        super().__init__(f"invalid phone number {raw!r}: {why}", reason="invalid_number")
        self.raw = raw


class Unauthenticated(NumrepError):
    """No credentials, or credentials that do not verify."""


class PermissionDenied(NumrepError):
    """The caller is known but its role may not do this."""


class NotFound(NumrepError):
    """The thing asked for does not exist."""


class AlreadyExists(NumrepError):
    """Creating something that exists already."""


class FailedPrecondition(NumrepError):
    """The request is well formed but the thing it acts on is not in a state that
    allows it (resolving a case that is closed already)."""


class TooLarge(NumrepError):
    """A request exceeds a configured maximum."""


class RateLimited(NumrepError):
    """The caller is over its rate; it may retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float, reason: str = "rate_limited") -> None:
        super().__init__(message, reason)
        self.retry_after = retry_after


class StoreUnavailable(NumrepError):
    """The store cannot be reached now; the caller may retry."""


class StoreTimeout(NumrepError):
    """The store did not answer in time."""


class LabelRejected(NumrepError):
    """A signed label failed verification; ``reason`` says which check."""
