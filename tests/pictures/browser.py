"""Headless Chromium (the system package) for the page tests: `load(page)` opens a file, returns its DOM
after the scripts ran and the console lines Chromium logged, and saves a screenshot into
$RNNCONVERT_SCREENSHOTS (CI's artifact folder) or beside the page.  Where CI runs (CI or
RNNCONVERT_SCREENSHOTS set) a missing browser fails the test instead of skipping it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
         "--enable-logging=stderr", "--v=0", "--no-first-run", "--disable-extensions"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        if os.environ.get("CI") or os.environ.get("RNNCONVERT_SCREENSHOTS"):
            pytest.fail("chromium is not installed (CI installs it: apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return path


def load(page: Path, name: str, size=(1280, 1800)) -> tuple[str, list[str]]:
    """(DOM after load, the console lines) of `page`; a screenshot `name`.png saved."""
    exe, url = chromium(), page.resolve().as_uri()
    r = subprocess.run([exe, *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if re.search(r":CONSOLE[:(]|Uncaught", line)]
    folder = Path(os.environ.get("RNNCONVERT_SCREENSHOTS") or page.parent)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / f"{name}.png"
    s = subprocess.run([exe, *FLAGS, f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", url],
                       capture_output=True, text=True, timeout=120)
    assert s.returncode == 0 and shot.stat().st_size > 500, s.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return r.stdout, console


class Elements(HTMLParser):
    """Every start tag as (tag, attributes) in document order."""

    def __init__(self, dom: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def all(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.found if t == tag and all(a.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())]
