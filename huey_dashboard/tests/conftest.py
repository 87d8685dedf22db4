"""Fixtures for the dashboard tests: the app under test in process (Starlette's TestClient), and
headless Chromium from Debian driven through Debian's chromedriver (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from huey_core.testing import require_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags for a browser that talks to nothing but the dashboard on loopback.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium (selenium WebDriver) with a fresh profile; quit afterwards."""
    require_server(
        "chromium and chromedriver (apt-get install chromium chromium-driver)",
        lambda: os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK),
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path / "chromium-profile"
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshots(tmp_path: Path) -> Iterator[Any]:
    """save(driver, name): a PNG in tmp_path/screenshots, and in $HUEY_DASHBOARD_SCREENSHOTS
    when set (how docs/img is refreshed)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    extra = os.environ.get("HUEY_DASHBOARD_SCREENSHOTS")

    def save(driver: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        assert driver.save_screenshot(str(path)), f"could not save {path}"
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    yield save
