"""A real headless Chromium (Debian's `chromium` package) driven by Playwright for Python.

Playwright is pointed at the system browser (`executable_path`); its own browser download
(`playwright install`) is never used. The package is installed with apt-get when absent,
as tests/services/postgres.py does for PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from services.common import ServiceUnavailable

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Flags that work as root in a container, with nothing phoning home.
CHROMIUM_FLAGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-default-apps", "--mute-audio",
)


def find_chromium() -> Path | None:
    """The system Chromium binary, or None."""
    for candidate in (shutil.which("chromium"), *CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def install_chromium() -> None:
    """apt-get install Debian's `chromium`; raises ServiceUnavailable on failure."""
    if os.geteuid() != 0:
        raise ServiceUnavailable("Chromium is not installed and we are not root to apt-get it")
    if shutil.which("apt-get") is None:
        raise ServiceUnavailable("Chromium is not installed and apt-get is absent")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ServiceUnavailable(f"`{' '.join(cmd)}` failed: {' | '.join(last)}")


def ensure_chromium() -> Path:
    """The Chromium binary, installing the Debian package when it is absent."""
    found = find_chromium()
    if found is None:
        install_chromium()
        found = find_chromium()
    if found is None:
        raise ServiceUnavailable("apt-get installed chromium but no chromium binary was found")
    return found


@contextmanager
def running_chromium(extra_flags: tuple[str, ...] = ()) -> Iterator[object]:
    """A headless Chromium (a Playwright `Browser`) with a fresh profile, closed afterwards."""
    binary = ensure_chromium()
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        raise ServiceUnavailable("playwright is not installed: pip install playwright") from exc
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(
                executable_path=str(binary), headless=True,
                args=[*CHROMIUM_FLAGS, *extra_flags],
            )
        except Error as exc:
            raise ServiceUnavailable(f"Chromium did not start: {str(exc).splitlines()[0]}") from exc
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def another_chromium(browser: object, extra_flags: tuple[str, ...] = ()) -> Iterator[object]:
    """A second Chromium with more flags, from the Playwright that runs `browser` (one sync
    Playwright per thread), closed afterwards."""
    other = browser.browser_type.launch(  # type: ignore[attr-defined]
        executable_path=str(ensure_chromium()), headless=True,
        args=[*CHROMIUM_FLAGS, *extra_flags],
    )
    try:
        yield other
    finally:
        other.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """A headless Chromium (Playwright Browser) for the session, or skip with the reason."""
    try:
        with running_chromium() as browser:
            yield browser
    except ServiceUnavailable as exc:
        pytest.skip(f"Chromium unavailable: {exc}")
