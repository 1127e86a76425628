"""The public web page on the exchange's HTTP side-port, for people who are not
gRPC clients: look a number up and read why, complain about a call, dispute a
label on one's own number, check a case by id. No account, no JavaScript, no
personal data in URLs (every form is a POST), nothing cached.

``start_web(listen, exchange, cases)`` serves it on a background thread;
``numrep.server.start_server`` calls ``serve_exchange_page`` when
``ServerConfig.http_listen`` is set."""

from __future__ import annotations

import threading

from numrep.cases import CaseDesk
from numrep.core.errors import NumrepError
from numrep.exchange import Exchange
from numrep.web._app import Request, Response, WebApp, WebLimits
from numrep.web._http import HttpLimits, PooledHTTPServer

__all__ = ["HttpLimits", "Request", "Response", "WebApp", "WebLimits", "WebServer", "parse_listen", "serve_exchange_page", "start_web"]


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a socket address."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise NumrepError(f"HTTP listen address {listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class WebServer:
    """The page's HTTP server on its own thread; ``stop`` waits for it."""

    def __init__(self, listen: str, app: WebApp, limits: HttpLimits | None = None) -> None:
        try:
            self._http = PooledHTTPServer(parse_listen(listen), app, limits or HttpLimits())
        except OSError as exc:
            raise NumrepError(f"cannot serve the web page on {listen}: {exc.strerror or exc}") from None
        self.app = app
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.2},
                                         name="numrep-web-accept", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._http.server_address[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    def start(self) -> "WebServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._http.shutdown()
            self._thread.join()
        self._http.server_close()


def start_web(listen: str, exchange: Exchange, cases: CaseDesk | None = None, limits: WebLimits | None = None,
              http_limits: HttpLimits | None = None) -> WebServer:
    """Serve the page on ``listen`` (port 0: any free port; see ``WebServer.address``)."""
    return WebServer(listen, WebApp(exchange, cases, limits), http_limits).start()


def serve_exchange_page(listen: str, exchange: Exchange) -> WebServer:
    """The page for a running exchange, sharing its one case desk
    (``CaseDesk.of``) with the gRPC CaseService."""
    return start_web(listen, exchange, CaseDesk.of(exchange))
