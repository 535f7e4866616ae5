"""Headless Chromium (Debian's chromium package) on an HTML report: its DOM, or a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--hide-scrollbars",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: .ci/setup installs Debian's chromium package"
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def dump_dom(page: Path) -> str:
    result = _run(["--dump-dom", page.absolute().as_uri()])
    assert result.returncode == 0 and "<body" in result.stdout, result.stderr[-2000:]
    return result.stdout


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 1800) -> Path:
    result = _run([f"--screenshot={png}", f"--window-size={width},{height}", page.absolute().as_uri()])
    assert result.returncode == 0 and png.exists(), result.stderr[-2000:]
    return png
