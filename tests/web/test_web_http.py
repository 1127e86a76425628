"""The web page over plain HTTP: statuses, security headers, CSRF, size limits,
escaping, accessibility structure and privacy of the access log."""

from __future__ import annotations

import socket
from html import escape
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from numrep.core.model import Action
from numrep.limits import Rate
from numrep.web import WebLimits, start_web

from web_kit import CLEAN, SPAM, AccessLog, Site, outline, post_form, request

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_home_page_has_four_post_forms_and_strict_headers(site: Site) -> None:
    reply = request(site.url)
    assert reply.status == 200
    assert reply.header("content-type") == "text/html; charset=utf-8"
    csp = reply.header("content-security-policy")
    for directive in ("default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp
    assert "script-src" not in csp and "unsafe-inline" not in csp
    assert reply.header("cache-control") == "no-store"
    assert reply.header("x-content-type-options") == "nosniff"
    assert reply.header("referrer-policy") == "same-origin"
    page = outline(reply.body)
    assert page.form_actions == [("post", "/lookup"), ("post", "/complaint"), ("post", "/dispute"), ("post", "/case")]
    assert page.scripts == 0


def test_every_control_has_a_label_and_the_page_has_landmarks(site: Site) -> None:
    page = outline(request(site.url).body)
    assert page.html_lang == "en"
    assert page.mains == 1
    assert page.headings[0] == "h1" and page.headings.count("h1") == 1
    assert len(page.controls) >= 9
    for control in page.controls:
        assert control["id"] in page.label_fors, control
        for described in control.get("aria-describedby", "").split():
            assert described in page.ids, (control, described)
    assert len(page.ids) == len(set(page.ids)), "ids are unique"


def test_stylesheet_is_served_from_the_same_origin(site: Site) -> None:
    reply = request(site.url, path="/static/style.css")
    assert reply.status == 200
    assert reply.header("content-type").startswith("text/css")
    assert "main" in request(site.url).body and "/static/style.css" in request(site.url).body


def test_lookup_shows_the_exchanges_verdict_with_its_explanation(site: Site) -> None:
    verdict = site.running.exchange.lookup(SPAM)
    assert verdict.action in (Action.BLOCK, Action.WARN)
    reply = post_form(site, "/lookup", {"number": "(202) 555-0143"})
    assert reply.status == 200
    assert f'id="verdict-action">{verdict.action.value.upper()}<' in reply.body
    assert f'id="verdict-probability">{verdict.spam_probability:.0%}<' in reply.body
    for contribution in verdict.contributions:
        assert escape(contribution.explanation) in reply.body
    assert "Impersonation of officials or businesses (fraud.impersonation)" in reply.body


def test_lookup_of_a_number_labelled_legitimate_says_allow(site: Site) -> None:
    assert site.verdict_action(CLEAN) is Action.ALLOW
    reply = post_form(site, "/lookup", {"number": CLEAN})
    assert reply.status == 200
    assert 'id="verdict-action">ALLOW<' in reply.body


def test_malformed_number_is_a_400_with_the_message_linked_to_the_field(site: Site) -> None:
    reply = post_form(site, "/lookup", {"number": "12-34"})
    assert reply.status == 400
    page = outline(reply.body)
    assert page.alerts == ["lookup-number-error"]
    [number] = [c for c in page.controls if c["id"] == "lookup-number"]
    assert number["aria-invalid"] == "true"
    assert "lookup-number-error" in number["aria-describedby"].split()
    assert "Invalid phone number" in reply.body and "Traceback" not in reply.body


def test_empty_number_asks_for_one(site: Site) -> None:
    reply = post_form(site, "/lookup", {"number": "  "})
    assert reply.status == 400
    assert "Please enter a phone number." in reply.body


@pytest.mark.parametrize("path,fields", [
    ("/lookup", {"number": HOSTILE}),
    ("/case", {"case_id": HOSTILE}),
    ("/complaint", {"number": HOSTILE, "category": "fraud", "text": HOSTILE}),
    ("/dispute", {"number": HOSTILE, "contact": HOSTILE, "evidence": "</textarea>" + HOSTILE}),
])
def test_hostile_input_is_escaped_wherever_it_is_echoed(site: Site, path: str, fields: dict[str, str]) -> None:
    reply = post_form(site, path, fields)
    assert reply.status in (400, 404)
    assert "<script>" not in reply.body and "<img" not in reply.body and "</textarea><script>" not in reply.body
    assert "&lt;script&gt;" in reply.body
    assert outline(reply.body).scripts == 0


@pytest.mark.parametrize("origin,extra", [
    (None, {}),                                              # no Origin, no Referer
    ("http://evil.example", {}),                             # another site
    ("null", {}),                                            # opaque origin (sandboxed frame, data: URL)
    ("same", {"Sec-Fetch-Site": "cross-site"}),              # the browser says it came from elsewhere
])
def test_cross_origin_posts_are_refused(site: Site, origin: str | None, extra: dict[str, str]) -> None:
    reply = post_form(site, "/lookup", {"number": SPAM}, origin=origin, **extra)
    assert reply.status == 403
    assert "another site" in reply.body
    assert SPAM not in reply.body


def test_a_same_origin_referer_is_enough_without_origin(site: Site) -> None:
    reply = post_form(site, "/lookup", {"number": SPAM}, origin=None, Referer=site.url)
    assert reply.status == 200


def test_oversize_body_is_413(site: Site) -> None:
    reply = post_form(site, "/complaint", {"number": SPAM, "category": "fraud", "text": "x" * 64 * 1024})
    assert reply.status == 413
    assert "Form too large" in reply.body


def test_only_form_encoded_bodies_are_read(site: Site) -> None:
    reply = request(site.url, "POST", "/lookup", b'{"number": "+12025550143"}',
                    {"Content-Type": "application/json", "Origin": site.origin})
    assert reply.status == 415


@pytest.mark.parametrize("body,message", [
    (b"number=%FF%FE", "not sent as UTF-8"),
    (b"number=%2B12025550143&number=%2B12025550188", "sent twice"),
    (b"&".join(b"f%d=1" % i for i in range(40)), "too many fields"),
    (b"number=" + b"1" * 65, "too long"),
    (b"number=%2B1202555%00", "control characters"),
])
def test_malformed_forms_are_a_400_with_a_message(site: Site, body: bytes, message: str) -> None:
    reply = request(site.url, "POST", "/lookup", body,
                    {"Content-Type": "application/x-www-form-urlencoded", "Origin": site.origin})
    assert reply.status == 400
    assert message in reply.body and "Traceback" not in reply.body


def test_form_addresses_answer_only_post(site: Site) -> None:
    reply = request(site.url, path="/lookup")
    assert reply.status == 405
    assert reply.header("allow") == "POST"


def test_unknown_method_and_path_get_the_page_headers(site: Site) -> None:
    reply = request(site.url, "PUT", "/lookup", b"", {"Origin": site.origin})
    assert reply.status == 501
    assert reply.header("cache-control") == "no-store" and "default-src 'none'" in reply.header("content-security-policy")
    assert request(site.url, path="/nowhere").status == 404


def test_a_query_string_is_never_read(site: Site) -> None:
    reply = request(site.url, path=f"/?number={SPAM}&case_id=abc")
    assert reply.status == 200
    controls = {c["id"]: c for c in outline(reply.body).controls}
    assert "value" not in controls["lookup-number"] and "value" not in controls["case-case_id"]


def test_head_answers_headers_only(site: Site) -> None:
    reply = request(site.url, "HEAD", "/")
    assert reply.status == 200 and reply.body == ""
    assert int(reply.header("content-length")) > 0


def test_garbage_request_line_gets_a_clean_400(site: Site) -> None:
    parts = urlsplit(site.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as conn:
        conn.sendall(f"GET /{SPAM} HTTP/1.1 extra words\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400")
    assert b"no-store" in head
    assert SPAM.encode() not in body and b"Traceback" not in body


def test_complaint_with_unknown_category_names_that_field(site: Site) -> None:
    reply = post_form(site, "/complaint", {"number": SPAM, "category": "legitimate", "text": "hi"})
    assert reply.status == 400
    assert outline(reply.body).alerts == ["complaint-category-error"]


def test_complaint_time_is_read_in_the_chosen_zone_and_never_in_the_future(site: Site) -> None:
    future = (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    reply = post_form(site, "/complaint", {"number": SPAM, "category": "fraud", "occurred_at": future, "tz": "+00:00",
                                           "text": "a recorded voice"})
    assert reply.status == 400
    assert outline(reply.body).alerts == ["complaint-occurred_at-error"]
    local = datetime.now(timezone(timedelta(hours=5, minutes=30))) - timedelta(hours=1)
    reply = post_form(site, "/complaint", {"number": SPAM, "category": "fraud", "text": "a recorded voice",
                                           "occurred_at": local.strftime("%Y-%m-%dT%H:%M"), "tz": "+05:30"})
    assert reply.status == 200
    case_id = _case_id(reply.body)
    case = site.web.app.cases.get(case_id)  # type: ignore[union-attr]
    assert case.occurred_at == local.replace(second=0, microsecond=0).astimezone(timezone.utc)


def test_a_resent_complaint_form_files_one_case(site: Site) -> None:
    fields = {"number": SPAM, "category": "harassment.silent", "text": "rang twice", "submission": "tok-resend-1"}
    first, second = post_form(site, "/complaint", fields), post_form(site, "/complaint", fields)
    assert first.status == second.status == 200
    assert _case_id(first.body) == _case_id(second.body)
    assert _case_id(post_form(site, "/complaint", {**fields, "submission": "tok-resend-2"}).body) != _case_id(first.body)
    dispute = post_form(site, "/dispute", {"number": SPAM, "contact": "a@example.org", "evidence": "mine",
                                           "submission": "tok-resend-1"})  # the same page's other form
    assert dispute.status == 200
    assert _case_id(dispute.body) != _case_id(first.body) and 'id="case-kind">dispute<' in dispute.body


def test_unknown_case_id_is_404_with_a_message_on_the_case_field(site: Site) -> None:
    reply = post_form(site, "/case", {"case_id": "no-such-case-id"})
    assert reply.status == 404
    assert outline(reply.body).alerts == ["case-case_id-error"]
    assert "There is no case with this id" in reply.body


def test_dispute_needs_contact_and_evidence(site: Site) -> None:
    reply = post_form(site, "/dispute", {"number": SPAM, "contact": "", "evidence": "mine"})
    assert reply.status == 400
    assert outline(reply.body).alerts == ["dispute-contact-error"]


def test_over_the_rate_a_client_gets_429_with_retry_after(site: Site) -> None:
    tight = start_web("127.0.0.1:0", site.running.exchange, site.web.app.cases, WebLimits(lookups=Rate(0.01, 2)))
    try:
        statuses = [request(tight.url, "POST", "/lookup", f"number=%2B{SPAM[1:]}".encode(),
                            {"Content-Type": "application/x-www-form-urlencoded", "Origin": tight.url.rstrip("/")})
                    for _ in range(3)]
    finally:
        tight.stop()
    assert [s.status for s in statuses] == [200, 200, 429]
    assert int(statuses[2].header("retry-after")) >= 1
    assert "Too many requests" in statuses[2].body


def test_access_log_names_routes_and_statuses_but_no_numbers_or_case_ids(site: Site, access_log: AccessLog) -> None:
    filed = post_form(site, "/dispute", {"number": SPAM, "contact": "owner@example.org", "evidence": "it is my shop"})
    case_id = _case_id(filed.body)
    post_form(site, "/case", {"case_id": case_id})
    request(site.url, path=f"/{SPAM}?number={SPAM}")
    log = access_log.text()
    assert "numrep.web.access INFO POST /dispute 200" in log
    assert "numrep.web.access INFO POST /case 200" in log
    assert "numrep.web.access INFO GET (other) 404" in log
    for secret in (SPAM, SPAM[1:], "555-0143", "5550143", case_id, "owner@example.org", "it is my shop"):
        assert secret not in log


def _case_id(body: str) -> str:
    marker = 'id="case-id">'
    start = body.index(marker) + len(marker)
    return body[start:body.index("<", start)]
