"""The system's Chromium, driven by selenium, for the page's browser test and its screenshot.

Debian's `chromium` and `chromium-driver` packages (.ci/run installs them; nothing is
downloaded at run time): /usr/bin/chromium through /usr/bin/chromedriver, headless, with a
fresh profile and no network services of its own (no sync, updates, first-run pages), and
downloads going to a given folder without asking.  selenium comes with the `test` extra.
"""
from __future__ import annotations

import pathlib
import shutil

CHROMIUM_NAMES = ("chromium", "chromium-browser")
DRIVER_NAMES = ("chromedriver",)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) paths when both are installed, else None."""
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    driver = next((p for p in map(shutil.which, DRIVER_NAMES) if p), None)
    return (browser, driver) if browser and driver else None


def chromium_driver(profile: pathlib.Path, downloads: pathlib.Path, size=(1280, 900)):
    """A selenium WebDriver on the system's Chromium (find_chromium must have found it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    return webdriver.Chrome(service=Service(driver), options=options)
