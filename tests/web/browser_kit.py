"""Real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed
by infra/browser.sh) driven through Selenium, with everything the privacy
assertions need: every URL the browser requested, its history after it quit,
and full-page screenshots in var/screenshots/ for review."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--disable-dev-shm-usage", "--window-size=1100,1400", "--lang=en-US",
)


def browser_missing() -> str:
    """Why the browser tests cannot run here, or "" when they can."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    return f"{' and '.join(missing)} missing: run infra/browser.sh (make test does)" if missing else ""


class Browser:
    """One Chromium with a fresh profile in ``profile``."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        self.driver.set_page_load_timeout(20)
        self.visited: list[str] = []   # current_url after every step
        self.requested: list[str] = []  # every URL the browser fetched (DevTools network log)
        self.console: list[str] = []
        self._closed = False

    # --- acting --------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.driver.get(url)
        self._note()

    def fill(self, element_id: str, text: str) -> None:
        field = self.find(element_id)
        field.clear()
        field.send_keys(text)

    def keys(self, *keys: str, loads_page: bool = False) -> None:
        """Type at whatever has the focus, as a keyboard user does; with
        ``loads_page``, wait for the page the keys submit."""
        marker = self._mark_page() if loads_page else ""
        ActionChains(self.driver).send_keys(*keys).perform()
        if loads_page:
            self._wait_for_new_page(marker)
        self._note()

    def submit(self, button_id: str) -> None:
        """Click a form's button and wait until the answer page has loaded."""
        marker = self._mark_page()
        self.find(button_id).click()
        self._wait_for_new_page(marker)
        self._note()

    def _mark_page(self) -> str:
        """Tag the current document so the next one can be told apart from it."""
        marker = secrets.token_hex(8)
        self.driver.execute_script("window.__numrepPage = arguments[0]", marker)
        return marker

    def _wait_for_new_page(self, marker: str) -> None:
        # Asking about the old page while Chromium swaps documents can fail in
        # several ways (stale element, "node does not belong to the document",
        # a destroyed JS context): all of them mean "not loaded yet", so retry.
        # A tag on the old window object is what tells the new page apart.
        wait = WebDriverWait(self.driver, 20, ignored_exceptions=(WebDriverException,))
        wait.until(lambda d: d.execute_script(
            "return window.__numrepPage !== arguments[0] && document.readyState === 'complete'", marker))

    def find(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return self.find(element_id).text

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def active_id(self) -> str:
        return str(self.driver.switch_to.active_element.get_attribute("id") or "")

    def screenshot(self, name: str) -> Path:
        """A full-page PNG in var/screenshots/ (kept for review)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path = SCREENSHOTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def _note(self) -> None:
        self.visited.append(self.driver.current_url)
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
        self.console.extend(entry["message"] for entry in self.driver.get_log("browser"))

    # --- after ---------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.driver.quit()

    def quit(self) -> list[str]:
        """Quit Chromium (it writes its history on the way out) and return every
        URL in the profile's history."""
        self.close()
        history = self.profile / "Default" / "History"
        if not history.exists():
            return []
        copy = self.profile / "history-copy.sqlite"
        shutil.copyfile(history, copy)
        with closing(sqlite3.connect(copy)) as db:
            return [row[0] for row in db.execute("SELECT url FROM urls")]
