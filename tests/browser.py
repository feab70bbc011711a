"""A real headless Chromium driven by Selenium, for the web viewer's tests.

The system's browser and driver (Debian packages ``chromium`` and ``chromium-driver``,
which ``.ci/run`` installs) are used; Selenium downloads nothing (its manager is never
asked: both paths are given).  A missing browser or driver FAILS the test, never skips
it.  Each browser gets a fresh profile folder and no network beyond the page's own
server (no background networking, no component updates, no sync).

Tests import :func:`chromium` and :func:`wait_until` directly (``from browser import
...``) and make their own fixture of the scope they need.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: The flags every browser of the tests runs with.
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-extensions", "--disable-default-apps",
)
#: The window the tests (and the screenshots in docs/img) see the pages in.
WINDOW = (1400, 1000)

T = TypeVar("T")


def require_browser() -> tuple[str, str]:
    """The paths of Chromium and its driver; fails the calling test when one is missing."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            pytest.fail(f"{path} is missing: install the Debian package {package}", pytrace=False)
    return CHROMIUM, CHROMEDRIVER


@contextlib.contextmanager
def chromium(window: tuple[int, int] = WINDOW) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, closed (and its profile removed) after."""
    binary, driver_path = require_browser()
    profile = tempfile.mkdtemp(prefix="ecg-dicom-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    # The browser's console, so a test can fail on a script error of the pages.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_until(check: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
    """Poll ``check`` until it returns something true; its value is returned.

    A stale element or a transient driver error counts as "not yet" (pages redraw
    while they poll); after ``timeout`` seconds the test fails, naming ``what``.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (StaleElementReferenceException, WebDriverException) as exc:
            last = exc
        time.sleep(0.1)
    why = f" ({last})" if last else ""
    raise AssertionError(f"not within {timeout} s: {what or check}{why}")


def script_errors(driver: webdriver.Chrome) -> list[str]:
    """The SEVERE messages in the browser's console since the last call (script errors,
    failed loads), except the 4xx answers a test provokes on purpose."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "the server responded with a status of 4" not in
            entry["message"]]
