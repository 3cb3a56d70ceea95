"""Headless Chromium driven by selenium, for the browser tests and the README's screenshots.

Debian's `chromium` and `chromium-driver` (`make system-deps` installs them). The flags keep
Chromium from waiting on the network (updates, sync, first-run pages) on a closed machine; a
fresh profile directory per browser keeps runs independent. selenium is a test dependency,
imported here only when a browser is started.
"""
from __future__ import annotations

from pathlib import Path

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run")


def start_chrome(user_data_dir: Path, width: int = 1400, height: int = 1000,
                 timeout_s: float = 30.0):
    """A selenium Chrome driver on the system Chromium that keeps the browser console log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [exe for exe in (CHROMIUM, CHROMEDRIVER) if not Path(exe).exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing: 'make system-deps' installs the "
                                "Debian packages chromium and chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in FLAGS + (f"--window-size={width},{height}", f"--user-data-dir={user_data_dir}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(timeout_s)
    driver.set_script_timeout(timeout_s)
    return driver


def plot_version(driver, el_id: str = "plot") -> int:
    """How many times the page has drawn the plot `el_id` (app.js counts in data-version)."""
    return int(driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? Number(e.dataset.version "
        "|| 0) : 0;", el_id))


def wait_for(driver, condition, what: str, timeout_s: float = 30.0):
    """Poll `condition(driver)` until it is truthy; a TimeoutException naming `what`."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.05).until(
        condition, message=f"timed out waiting for {what}")
