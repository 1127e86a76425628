"""Helpers for the web page's tests: seeding a federation over gRPC, plain HTTP
requests with chosen headers, reading the page's HTML structure."""

from __future__ import annotations

import http.client
import json
import logging
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urlsplit

from numrep.core.model import Action, Role
from numrep.server import RunningServer
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import sign_label
from numrep.web import WebServer
from numrep_client import ExchangeClient

from numrep_testkit import ROLE_PB

SPAM = "+12025550143"      # labelled fraud by the regulator and a carrier
CLEAN = "+12025550100"     # labelled legitimate by two carriers
DISPUTED = "+12025550177"  # labelled robocall marketing by one carrier, then disputed by its owner


class AccessLog(logging.Handler):
    """Collects what the page logs, formatted, for the privacy assertions."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_lines:
            self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")

    def text(self) -> str:
        with self._lock_lines:
            return "\n".join(self.lines)


@dataclass
class Site:
    running: RunningServer
    regulator: Identity
    carriers: tuple[Identity, Identity]

    @property
    def web(self) -> WebServer:
        assert self.running.web is not None
        return self.running.web

    @property
    def url(self) -> str:
        return self.web.url

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    def verdict_action(self, number: str) -> Action:
        return self.running.exchange.lookup(number).action


def seed_federation(running: RunningServer) -> Site:
    """A regulator (registered by the operator) registers two carriers over gRPC;
    they and the regulator publish signed labels through PublishService."""
    regulator = generate_identity("ftc", Role.REGULATOR, "EdDSA")
    north = generate_identity("carrier-north", Role.CARRIER, "ES256")
    south = generate_identity("carrier-south", Role.CARRIER, "EdDSA")
    running.exchange.register_participant("ftc", Role.REGULATOR, "Regulator", [json.dumps(regulator.public_jwk())])
    with ExchangeClient(running.address, regulator) as client:
        for member in (north, south):
            client.register_participant(member.participant_id, ROLE_PB[member.role], [json.dumps(member.public_jwk())],
                                        member.participant_id.title())
        _publish(client, [sign_label(regulator, SPAM, "fraud.impersonation", 0.95)])
    with ExchangeClient(running.address, north) as client:
        _publish(client, [sign_label(north, SPAM, "fraud.impersonation", 0.9), sign_label(north, CLEAN, "legitimate", 0.9),
                          sign_label(north, DISPUTED, "marketing.robocall", 0.8)])
    with ExchangeClient(running.address, south) as client:
        _publish(client, [sign_label(south, CLEAN, "legitimate", 0.8), sign_label(south, DISPUTED, "marketing.robocall", 0.7)])
    return Site(running, regulator, (north, south))


def _publish(client: ExchangeClient, tokens: list[str]) -> None:
    results = client.publish(tokens)
    assert [r.reason for r in results] == [""] * len(tokens), results


# --- plain HTTP -----------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def request(url: str, method: str = "GET", path: str = "/", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> Reply:
    """One request with exactly these headers (http.client adds Host and, with a
    body, Content-Length), the answer read whatever its status."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode("utf-8"))
    finally:
        connection.close()


def post_form(site: Site, path: str, fields: dict[str, str], origin: str | None = "same", **headers: str) -> Reply:
    sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    if origin is not None:
        sent["Origin"] = site.origin if origin == "same" else origin
    return request(site.url, "POST", path, urlencode(fields).encode(), sent)


# --- reading HTML -----------------------------------------------------------------------
@dataclass
class PageOutline(HTMLParser):
    """The structure the accessibility rules are about."""

    html_lang: str = ""
    mains: int = 0
    headings: list[str] = field(default_factory=list)
    controls: list[dict[str, str]] = field(default_factory=list)  # input (not hidden), select, textarea
    label_fors: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)  # ids of role=alert elements
    scripts: int = 0
    form_actions: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "html":
            self.html_lang = a.get("lang", "")
        elif tag == "main":
            self.mains += 1
        elif tag in ("h1", "h2", "h3"):
            self.headings.append(tag)
        elif tag in ("select", "textarea") or (tag == "input" and a.get("type") != "hidden"):
            self.controls.append({"tag": tag, **a})
        elif tag == "label" and "for" in a:
            self.label_fors.append(a["for"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "form":
            self.form_actions.append((a.get("method", ""), a.get("action", "")))
        if a.get("role") == "alert":
            self.alerts.append(a.get("id", ""))


def outline(body: str) -> PageOutline:
    page = PageOutline()
    page.feed(body)
    page.close()
    return page
