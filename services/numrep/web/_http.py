"""The HTTP side-port: a small stdlib HTTP/1.0 server whose requests run on a
fixed pool of worker threads (the exchange is called from worker threads, as
the gRPC servicers do; a fixed pool also bounds the store connections the
SQLite store opens per thread).

Every response carries a strict Content-Security-Policy and ``Cache-Control:
no-store``. POSTs must come from the page's own origin (``Origin``, else
``Referer``), be form-encoded and fit ``max_body_bytes``. The access log names
the route and status only: no query string, no body, no client-supplied path."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

from numrep.web._app import ROUTES, Request, Response, WebApp

access_log = logging.getLogger("numrep.web.access")
log = logging.getLogger("numrep.web")

DEFAULT_MAX_BODY_BYTES = 16 * 1024
DRAIN_LIMIT_BYTES = 1024 * 1024  # read (and drop) an oversize body up to this, so the client sees the 413
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


@dataclass(frozen=True)
class HttpLimits:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    workers: int = 8
    max_pending: int = 64          # connections queued or in progress; beyond that: 503 at once
    timeout_seconds: float = 10.0  # per socket operation: a slow client cannot hold a worker
    public_origin: str = ""        # e.g. https://numrep.example behind a TLS proxy; "" = http://<Host>


class _Handler(BaseHTTPRequestHandler):
    server: "PooledHTTPServer"
    server_version = "numrep-web"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        self.timeout = self.server.limits.timeout_seconds
        super().setup()

    # --- methods ----------------------------------------------------------------------
    def do_GET(self) -> None:
        self._respond(self._dispatch(Request("GET", self._route(), b"", self.client_address[0])))

    def do_HEAD(self) -> None:
        self._respond(self._dispatch(Request("GET", self._route(), b"", self.client_address[0])), body=False)

    def do_POST(self) -> None:
        app, limits = self.server.app, self.server.limits
        if not self._same_origin():
            self._respond(app.error(HTTPStatus.FORBIDDEN, "Form not accepted",
                                    "This form was sent from another site. Please use the form on this page."))
            return
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length_text is None or not length_text.isdigit():
            self._respond(app.error(HTTPStatus.LENGTH_REQUIRED, "Form not accepted", "The form was sent without its length."))
            return
        length = int(length_text)
        if length > limits.max_body_bytes:
            self._drain(length)
            self._respond(app.error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Form too large",
                                    f"The form was larger than {limits.max_body_bytes // 1024} KiB. Please shorten the text."))
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            self._drain(length)
            self._respond(app.error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Form not accepted", "Please use the form on this page."))
            return
        body = self.rfile.read(length)
        self._respond(self._dispatch(Request("POST", self._route(), body, self.client_address[0])))

    def _dispatch(self, request: Request) -> Response:
        """The app's answer; an unexpected failure is a friendly 500 page, never a traceback."""
        try:
            return self.server.app.handle(request)
        except Exception:
            log_failure()
            return self.server.app.error(HTTPStatus.INTERNAL_SERVER_ERROR, "Something went wrong",
                                         "The page could not be shown. Please try again later.")

    # --- checks -----------------------------------------------------------------------
    def _route(self) -> str:
        """The path without query or fragment (a query is never read, nor logged)."""
        return urlsplit(self.path).path or "/"

    def _same_origin(self) -> bool:
        """CSRF: the form must come from this site. Browsers send ``Origin`` with
        every POST (``Referrer-Policy: same-origin`` keeps it on our own pages)."""
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = self.headers.get("Origin")
        if origin is None or origin == "null":
            referer = self.headers.get("Referer")
            if not referer:
                return False
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        expected = self.server.limits.public_origin or f"http://{self.headers.get('Host', '')}"
        return origin.rstrip("/").lower() == expected.rstrip("/").lower()

    def _drain(self, length: int) -> None:
        """Read and drop up to DRAIN_LIMIT_BYTES of an unwanted body, so closing the
        socket does not reset the connection before the client reads the answer."""
        remaining = min(length, DRAIN_LIMIT_BYTES)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 64 * 1024))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    # --- responses ----------------------------------------------------------------------
    def _respond(self, response: Response, body: bool = True) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in {**SECURITY_HEADERS, **response.headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors the stdlib finds before a route runs (bad request line, unknown
        method, over-long headers): our page, our headers, and nothing echoed."""
        status = HTTPStatus(code)
        self.close_connection = True
        self.request_version = "HTTP/1.0"  # a malformed request line left 0.9 here: answer with headers
        page = self.server.app.error(status, status.phrase, status.description or status.phrase)
        if status is HTTPStatus.NOT_IMPLEMENTED:
            page = Response(status, page.body, headers={"Allow": "GET, HEAD, POST"})
        try:
            self._respond(page, body=self.command != "HEAD" and code >= 200 and code not in (204, 304))
        except OSError:
            pass

    # --- logging: routes and statuses only ------------------------------------------------
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        command = self.command if self.command in ("GET", "HEAD", "POST") else "OTHER"
        path = getattr(self, "path", None)
        route = self._route() if path is not None else "-"
        access_log.info("%s %s %s", command, route if route in ROUTES else "(other)", code)

    def log_error(self, format: str, *args: Any) -> None:
        pass  # the stdlib's messages quote the raw request line; send_error logs the status

    def log_message(self, format: str, *args: Any) -> None:
        pass


def log_failure() -> None:
    """Log where a request failed, not the exception's message (it may quote a number)."""
    kind, _, tb = sys.exc_info()
    frames = "".join(traceback.format_tb(tb)) if tb else ""
    log.error("web request failed: %s\n%s", kind.__name__ if kind else "?", frames.rstrip())


class PooledHTTPServer(HTTPServer):
    """``HTTPServer`` whose connections are handled by a fixed thread pool."""

    allow_reuse_address = True
    request_queue_size = 128  # listen backlog (the stdlib's 5 drops connections in a burst: 1 s SYN retries)

    def __init__(self, address: tuple[str, int], app: WebApp, limits: HttpLimits) -> None:
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app = app
        self.limits = limits
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="numrep-web")
        self._slots = threading.BoundedSemaphore(limits.max_pending)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        self._pool.submit(self._work, request, client_address)

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log_failure()

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=True, cancel_futures=True)

