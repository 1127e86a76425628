"""The web page in a real headless Chromium: a person looks numbers up, files a
complaint and a dispute, and follows both cases by id, by typing into the
forms and reading the pages; nothing personal ever appears in a URL the
browser visited or in the server's access log. Screenshots go to
var/screenshots/ for review."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from numrep.cases import CaseStatus
from numrep.core.model import Action

from browser_kit import Browser, browser_missing
from web_kit import CLEAN, DISPUTED, SPAM, AccessLog, Site

pytestmark = pytest.mark.skipif(bool(browser_missing()), reason=browser_missing() or "browser present")

CONTACT = "owner.of.0177@example.org"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    chromium = Browser(tmp_path / "chromium-profile")
    yield chromium
    chromium.close()


def _private_strings(*numbers: str) -> list[str]:
    """Each number as E.164, bare digits and its national significant digits."""
    out = []
    for number in numbers:
        out += [number, number[1:], number[2:], "%2B" + number[1:]]
    return out


def _assert_nothing_private_in_urls(browser: Browser, access_log: AccessLog, secrets: list[str]) -> None:
    assert browser.visited, "the test visited pages"
    history = browser.quit()
    assert history, "Chromium kept a history to inspect"
    urls = browser.visited + browser.requested + history
    assert {u.split("?")[0].split("#")[0] for u in urls if u.startswith("http")} <= {
        browser.visited[0] + p.lstrip("/") for p in ("/", "/static/style.css", "/favicon.ico", "/lookup", "/complaint", "/dispute", "/case")
    }
    log = access_log.text()
    for secret in secrets:
        for url in urls:
            assert secret not in url, (secret, url)
        assert secret not in log, secret


def test_a_person_looks_numbers_up_and_reads_why(site: Site, browser: Browser, access_log: AccessLog) -> None:
    browser.open(site.url)
    assert browser.js("return document.documentElement.lang") == "en"
    assert browser.js("return getComputedStyle(document.querySelector('.skip')).position") == "absolute", "stylesheet applied under the CSP"
    browser.screenshot("home")

    # keyboard only: Tab to the skip link, Enter, Tab into the lookup field, type, Enter
    browser.keys(Keys.TAB)
    assert browser.driver.switch_to.active_element.get_attribute("class") == "skip"
    browser.keys(Keys.ENTER, Keys.TAB)
    assert browser.active_id() == "lookup-number"
    browser.keys("(202) 555-0143", Keys.ENTER, loads_page=True)

    expected = site.running.exchange.lookup(SPAM)
    assert expected.action in (Action.BLOCK, Action.WARN)
    assert browser.text("verdict-action") == expected.action.value.upper()
    assert browser.text("verdict-category") == "Impersonation of officials or businesses (fraud.impersonation)"
    assert browser.text("verdict-probability") == f"{expected.spam_probability:.0%}"
    assert browser.text("verdict-explanation") == expected.explanation
    shown = [li.text for li in browser.find("contributions").find_elements("tag name", "li")]
    assert shown == [c.explanation for c in expected.contributions]
    assert any("ftc (regulator) labelled it impersonation" in line for line in shown)
    browser.screenshot("lookup-spam")

    browser.fill("lookup-number", CLEAN)
    browser.submit("lookup-submit")
    assert site.verdict_action(CLEAN) is Action.ALLOW
    assert browser.text("verdict-action") == "ALLOW"
    shown = [li.text for li in browser.find("contributions").find_elements("tag name", "li")]
    assert shown == [c.explanation for c in site.running.exchange.lookup(CLEAN).contributions]
    assert shown[0].startswith(("carrier-north (carrier)", "carrier-south (carrier)"))
    browser.screenshot("lookup-clean")

    browser.fill("lookup-number", "555-01")
    browser.submit("lookup-submit")
    error = browser.find("lookup-number-error")
    assert error.get_attribute("role") == "alert"
    assert error.text.startswith("Invalid phone number '555-01'")
    field = browser.find("lookup-number")
    assert field.get_attribute("aria-invalid") == "true"
    assert "lookup-number-error" in (field.get_attribute("aria-describedby") or "").split()
    assert field.get_attribute("value") == "555-01"
    assert browser.active_id() == "lookup-number", "the invalid field has the focus"
    assert browser.js("return document.title").startswith("Error: ")
    browser.screenshot("lookup-error")

    assert not [line for line in browser.console if "Content Security Policy" in line]
    _assert_nothing_private_in_urls(browser, access_log, _private_strings(SPAM, CLEAN) + ["555-01"])


def test_a_person_files_a_complaint_and_a_dispute_and_follows_both(site: Site, browser: Browser, access_log: AccessLog) -> None:
    desk = site.web.app.cases
    assert desk is not None
    regulator = site.running.exchange.get_participant("ftc")
    browser.open(site.url)

    # a complaint: number, kind of call, when (in the caller's zone), what happened
    browser.fill("complaint-number", SPAM)
    Select(browser.find("complaint-category")).select_by_value("fraud.impersonation")
    called = datetime.now(timezone(timedelta(hours=-5))) - timedelta(hours=2)
    # a datetime-local control takes typed segments in the browser's locale order: set its value instead
    browser.js("arguments[0].value = arguments[1]", browser.find("complaint-occurred_at"), called.strftime("%Y-%m-%dT%H:%M"))
    Select(browser.find("complaint-tz")).select_by_value("-05:00")
    browser.fill("complaint-text", "Said to be the tax office and asked for a card number.")
    browser.screenshot("complaint-form")
    browser.submit("complaint-submit")
    complaint_id = browser.text("case-id")
    assert len(complaint_id) >= 20
    assert browser.text("case-status") == "OPEN"
    assert browser.text("case-kind") == "complaint"
    browser.screenshot("complaint-filed")

    # a dispute by the owner of a labelled number
    assert site.verdict_action(DISPUTED) in (Action.BLOCK, Action.WARN)
    browser.open(site.url)
    browser.fill("dispute-number", DISPUTED)
    browser.fill("dispute-contact", CONTACT)
    browser.fill("dispute-evidence", "This is the front desk of our dental practice; we call patients about appointments.")
    browser.submit("dispute-submit")
    dispute_id = browser.text("case-id")
    assert dispute_id != complaint_id
    assert browser.text("case-status") == "OPEN"
    assert CONTACT not in browser.driver.page_source
    browser.screenshot("dispute-filed")

    # both are open when checked by id
    for case_id, kind in ((complaint_id, "complaint"), (dispute_id, "dispute")):
        browser.open(site.url)
        browser.fill("case-case_id", case_id)
        browser.submit("case-submit")
        assert browser.text("case-status") == "OPEN"
        assert browser.text("case-kind") == kind
        assert browser.text("case-age") in ("less than a minute", "1 minute")
    browser.screenshot("case-open")

    # the regulator decides; the people read the outcome by id
    desk.resolve(regulator, complaint_id, CaseStatus.CONFIRMED, "Confirmed: the number impersonated the tax office.")
    desk.resolve(regulator, dispute_id, CaseStatus.UPHELD, "The practice's calls are legitimate; the labels are withdrawn.")
    for case_id, status, outcome in ((complaint_id, "CONFIRMED", "impersonated the tax office"),
                                     (dispute_id, "UPHELD", "labels are withdrawn")):
        browser.fill("case-case_id", case_id)
        browser.submit("case-submit")
        assert browser.text("case-status") == status
        assert outcome in browser.text("case-outcome")
    browser.screenshot("case-upheld")

    # the upheld dispute withdrew the labels: the page's lookup no longer warns
    browser.open(site.url)
    browser.fill("lookup-number", DISPUTED)
    browser.submit("lookup-submit")
    after = site.running.exchange.lookup(DISPUTED)
    assert after.action not in (Action.BLOCK, Action.WARN)
    assert browser.text("verdict-action") == after.action.value.upper()

    _assert_nothing_private_in_urls(browser, access_log, _private_strings(SPAM, DISPUTED) + [complaint_id, dispute_id, CONTACT])
