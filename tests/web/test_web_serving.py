"""How the page is served: ``numrep serve --http`` / NUMREP_HTTP_LISTEN start it
with the gRPC services and stop it with them; a busy port is one clear error;
a failure inside a request is a friendly 500 page whose log line quotes
nothing the person typed."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from numrep.cases import CaseDesk
from numrep.config import ServerConfig
from numrep.core.errors import NumrepError
from numrep.core.model import Action
from numrep.store.cases_sqlite import SqliteCaseStore
from numrep.web import start_web

from web_kit import SPAM, AccessLog, Site, post_form, request

NUMREP = [sys.executable, "-m", "numrep.cli.main"]


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start ``numrep serve`` and return it with the web page's URL from its output."""
    process = subprocess.Popen([*NUMREP, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("numrep: web page on "):
            return process, line.split()[-1]
    process.kill()
    pytest.fail(f"numrep serve printed no web page address: {process.communicate()[0]}")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    return out


def test_serve_with_http_flag_serves_the_page_until_stopped(tmp_path: Path) -> None:
    process, url = _serve(tmp_path, "--http", "127.0.0.1:0")
    try:
        page = request(url)
        assert page.status == 200 and "Look up a number" in page.body
        lookup = request(url, "POST", "/lookup", b"number=%2B12025550143",
                         {"Content-Type": "application/x-www-form-urlencoded", "Origin": url.rstrip("/")})
        assert lookup.status == 200 and 'id="verdict-action">UNKNOWN<' in lookup.body
    finally:
        out = _stop(process)
    assert process.returncode == 0
    assert "numrep: stopped" in out and "Traceback" not in out
    with pytest.raises(OSError):
        request(url)


def test_serve_reads_the_side_port_from_the_environment(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port, named explicitly
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process, url = _serve(tmp_path, env={"NUMREP_HTTP_LISTEN": f"127.0.0.1:{port}"})
    try:
        assert url == f"http://127.0.0.1:{port}/"
        assert request(url).status == 200
    finally:
        _stop(process)


def test_without_a_side_port_there_is_no_page() -> None:
    assert ServerConfig().http_listen == ""
    assert ServerConfig.from_env(http_listen=None).http_listen == os.environ.get("NUMREP_HTTP_LISTEN", "")


def test_a_busy_port_is_one_clear_error(site: Site) -> None:
    with pytest.raises(NumrepError, match="cannot serve the web page on"):
        start_web(site.web.address, site.running.exchange)


def test_concurrent_lookups_are_all_answered(site: Site) -> None:
    expected = site.running.exchange.lookup(SPAM).action
    assert expected in (Action.BLOCK, Action.WARN)
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda _: post_form(site, "/lookup", {"number": SPAM}).status, range(24)))
    assert replies == [200] * 24


def test_a_failure_inside_a_request_is_a_friendly_500_without_details(site: Site, access_log: AccessLog,
                                                                       tmp_path: Path) -> None:
    path = tmp_path / "cases.sqlite3"
    broken = CaseDesk(SqliteCaseStore(path), site.running.exchange)
    with closing(sqlite3.connect(path)) as db:  # the table goes away under the desk: an error no layer expects
        db.execute("DROP TABLE cases")
        db.commit()
    web = start_web("127.0.0.1:0", site.running.exchange, broken)
    try:
        reply = request(web.url, "POST", "/case", b"case_id=secret-case-id-123",
                        {"Content-Type": "application/x-www-form-urlencoded", "Origin": web.url.rstrip("/")})
    finally:
        web.stop()
        broken.close()
    assert reply.status == 500
    assert "Something went wrong" in reply.body
    assert "Traceback" not in reply.body and 'role="alert"' in reply.body
    assert reply.header("cache-control") == "no-store"
    assert "numrep.web ERROR web request failed: OperationalError" in access_log.text()
    assert "secret-case-id-123" not in access_log.text()
