"""The page's routes: a decoded request in, a response out, independent of the
HTTP server that carries them. Every exchange error becomes a friendly message
on the page with its HTTP status, in exactly one place (``status_for``)."""

from __future__ import annotations

import enum
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Callable, Mapping

from numrep.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NumrepError,
    PermissionDenied,
    RateLimited,
    StoreTimeout,
    StoreUnavailable,
    TooLarge,
)
from numrep.cases import Case, CaseDesk
from numrep.exchange import Exchange
from numrep.limits import Rate, TokenBuckets
from numrep.web import _pages
from numrep.web._forms import FieldError, case_id_input, complaint_input, dispute_input, parse_form
from numrep.web._html import Html
from numrep.web._style import STYLESHEET

HTML = "text/html; charset=utf-8"
ROUTES = ("/", "/static/style.css", "/favicon.ico", "/lookup", "/complaint", "/dispute", "/case")


@dataclass(frozen=True)
class WebLimits:
    """Per client address: the page works without an account, so this is what
    stops one client from scraping every verdict or flooding the regulator."""

    lookups: Rate = Rate(per_second=2.0, burst=30.0)
    filings: Rate = Rate(per_second=0.05, burst=10.0)  # complaints and disputes
    case_checks: Rate = Rate(per_second=1.0, burst=20.0)
    remembered_submissions: int = 10_000  # resent forms (reload, double click) answer the first case


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    client: str  # the peer's address: the rate limit key


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str = HTML
    headers: Mapping[str, str] = field(default_factory=dict)


class WebApp:
    def __init__(self, exchange: Exchange, cases: CaseDesk | None = None, limits: WebLimits | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.exchange = exchange
        self.cases = cases
        self.limits = limits or WebLimits()
        self.clock = clock or exchange.clock
        self._buckets = TokenBuckets()
        self._submissions: OrderedDict[str, str] = OrderedDict()
        self._submissions_lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        if request.path == "/static/style.css" and request.method == "GET":
            return Response(HTTPStatus.OK, STYLESHEET.encode(), "text/css; charset=utf-8")
        if request.path == "/favicon.ico" and request.method == "GET":  # browsers ask; there is none
            return Response(HTTPStatus.NO_CONTENT, b"")
        if request.path == "/" and request.method == "GET":
            return self._page(HTTPStatus.OK, self._home({}))
        action = _ACTIONS.get(request.path)
        if action is None:
            return self.error(HTTPStatus.NOT_FOUND, "Page not found", "There is no page at this address.")
        if request.method != "POST":
            response = self.error(HTTPStatus.METHOD_NOT_ALLOWED, "Please use the form",
                                  "This address only answers forms sent from the start page.")
            return Response(response.status, response.body, headers={"Allow": "POST"})
        form_name, method = action
        form: dict[str, str] = {}
        try:
            form = parse_form(request.body)
            return method(self, request, form)
        except NumrepError as exc:
            return self._form_error(form_name, form, exc)

    def error(self, status: HTTPStatus, heading: str, message: str) -> Response:
        return self._page(status, _pages.error_page(status.value, heading, message))

    # --- the four forms ----------------------------------------------------------------
    def _lookup(self, request: Request, form: dict[str, str]) -> Response:
        number = form.get("number", "").strip()
        if not number:
            raise FieldError("number", "Please enter a phone number.")
        self._take(request, "lookup", self.limits.lookups)
        return self._page(HTTPStatus.OK, _pages.verdict_page(self.exchange.lookup(number)))

    def _complaint(self, request: Request, form: dict[str, str]) -> Response:
        desk = self._desk()
        complaint = complaint_input(form, self.clock())
        case = self._resent("complaint", form)
        if case is None:
            self._take(request, "filing", self.limits.filings)
            case = desk.file_complaint(complaint.number, complaint.category, complaint.occurred_at, complaint.text)
            self._remember("complaint", form, case.case_id)
        return self._page(HTTPStatus.OK, _pages.case_filed_page(self._view(case)))

    def _dispute(self, request: Request, form: dict[str, str]) -> Response:
        desk = self._desk()
        dispute = dispute_input(form)
        case = self._resent("dispute", form)
        if case is None:
            self._take(request, "filing", self.limits.filings)
            case = desk.file_dispute(dispute.number, dispute.contact, dispute.evidence)
            self._remember("dispute", form, case.case_id)
        return self._page(HTTPStatus.OK, _pages.case_filed_page(self._view(case)))

    def _case(self, request: Request, form: dict[str, str]) -> Response:
        desk = self._desk()
        case_id = case_id_input(form)
        self._take(request, "case", self.limits.case_checks)
        try:
            case = desk.get(case_id)
        except NotFound:
            raise NotFound("There is no case with this id. Check it against the one you were given.", "unknown_case") from None
        return self._page(HTTPStatus.OK, _pages.case_page(self._view(case)))

    # --- helpers ----------------------------------------------------------------------
    def _desk(self) -> CaseDesk:
        if self.cases is None:
            raise StoreUnavailable("Complaints and disputes are not available on this exchange yet.")
        return self.cases

    def _take(self, request: Request, kind: str, rate: Rate) -> None:
        wait = self._buckets.take((request.client, kind), rate)
        if wait:
            raise RateLimited(f"Too many requests from your address; please try again in {max(1, round(wait))} seconds.", wait)

    def _resent(self, kind: str, form: dict[str, str]) -> Case | None:
        """The case a resent form (reload, double click) already filed, or None."""
        token = form.get("submission", "")
        with self._submissions_lock:
            case_id = self._submissions.get(f"{kind}:{token}") if token else None
        return None if case_id is None else self._desk().get(case_id)

    def _remember(self, kind: str, form: dict[str, str], case_id: str) -> None:
        token = form.get("submission", "")
        if not token:
            return
        with self._submissions_lock:
            self._submissions[f"{kind}:{token}"] = case_id
            while len(self._submissions) > self.limits.remembered_submissions:
                self._submissions.popitem(last=False)

    def _view(self, case: Case) -> _pages.CaseView:
        now = self.clock()
        return _pages.CaseView(
            case_id=case.case_id,
            kind=_enum_word(case.kind),
            number=case.number,
            category=case.category,
            status=_enum_word(case.status),
            filed_at=case.filed_at,
            deadline=case.deadline,
            resolved_at=case.resolved_at,
            outcome=case.outcome,
            label_count=len(case.label_ids),
            age=case.age(now),
            overdue=case.overdue(now),
            occurred_at=case.occurred_at,
        )

    def _home(self, states: Mapping[str, _pages.FormState], title: str = "Check a number, report a call") -> Html:
        return _pages.home(states, secrets.token_urlsafe(16), self.cases is not None, title)

    def _form_error(self, form_name: str, form: dict[str, str], exc: NumrepError) -> Response:
        status = status_for(exc)
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            message = exc.message if isinstance(exc, StoreUnavailable) and self.cases is None else \
                "The exchange cannot answer right now. Please try again in a minute."
        else:
            message = user_message(exc)
        if self.cases is None and form_name != "lookup":
            return self.error(status, "Not available", message)
        field_name = exc.field if isinstance(exc, FieldError) else field_of(exc)
        if field_name not in _FORM_FIELDS[form_name]:
            field_name = ""  # shown above the form instead
        values = {k: v for k, v in form.items() if k != "submission"}
        state = _pages.FormState(values, message, field_name)
        response = self._page(status, self._home({form_name: state}, title=f"Error: {message}"))
        if isinstance(exc, RateLimited):
            return Response(response.status, response.body, headers={"Retry-After": str(max(1, round(exc.retry_after)))})
        return response

    @staticmethod
    def _page(status: HTTPStatus, page: Html) -> Response:
        return Response(status, page.encode())


_ACTIONS: dict[str, tuple[str, Callable[[WebApp, Request, dict[str, str]], Response]]] = {
    "/lookup": ("lookup", WebApp._lookup),
    "/complaint": ("complaint", WebApp._complaint),
    "/dispute": ("dispute", WebApp._dispute),
    "/case": ("case", WebApp._case),
}


def status_for(exc: NumrepError) -> HTTPStatus:
    """The HTTP status for an exchange error (the web twin of ``numrep.api.errors``)."""
    for kind, status in (
        (TooLarge, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
        (InvalidArgument, HTTPStatus.BAD_REQUEST),
        (NotFound, HTTPStatus.NOT_FOUND),
        (AlreadyExists, HTTPStatus.CONFLICT),
        (FailedPrecondition, HTTPStatus.CONFLICT),
        (PermissionDenied, HTTPStatus.FORBIDDEN),
        (RateLimited, HTTPStatus.TOO_MANY_REQUESTS),
        (StoreUnavailable, HTTPStatus.SERVICE_UNAVAILABLE),
        (StoreTimeout, HTTPStatus.SERVICE_UNAVAILABLE),
    ):
        if isinstance(exc, kind):
            return status
    return HTTPStatus.INTERNAL_SERVER_ERROR


def user_message(exc: NumrepError) -> str:
    if exc.reason == "invalid_number":
        return f"{exc.message[0].upper()}{exc.message[1:]}. Please use the international format, for example +12025550143."
    text = exc.message
    return text[0].upper() + text[1:] if text else "The request could not be handled."


_FORM_FIELDS = {
    "lookup": {"number"},
    "complaint": {"number", "category", "occurred_at", "tz", "text"},
    "dispute": {"number", "contact", "evidence"},
    "case": {"case_id"},
}
_FIELD_BY_REASON = {"invalid_number": "number", "unknown_category": "category", "bad_time": "occurred_at",
                    "time_in_future": "occurred_at", "too_old": "occurred_at", "bad_case_id": "case_id", "unknown_case": "case_id"}
_FIELD_BY_SUBJECT = {"complaint text": "text", "contact": "contact", "evidence": "evidence"}


def field_of(exc: NumrepError) -> str:
    """The form field a case desk or exchange error is about ("" if none): its
    reason, or for text checks the subject its message starts with."""
    if exc.reason in _FIELD_BY_REASON:
        return _FIELD_BY_REASON[exc.reason]
    for subject, name in _FIELD_BY_SUBJECT.items():
        if exc.message.startswith(subject + " "):
            return name
    return ""


def _enum_word(value: enum.Enum) -> str:
    return str(value.value).lower()
