"""The installer step's own logic: status lines from the server, and a pinned sha256."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.errors import InstallerFailed
from agent.installer.download import InstallerScripts
from agent.steps.installer import parse_status

SCRIPT = b"#!/bin/sh\necho installing\n"


@pytest.mark.parametrize(
    "line,expected",
    [
        ("status running=1 rc= size=120 collected=0", (True, None, 120, False)),
        ("status running=0 rc=0 size=4096 collected=0", (False, 0, 4096, False)),
        ("status running=0 rc=1 size=10 collected=1", (False, 1, 10, True)),
        ("status running=0 rc= size=0 collected=0", (False, None, 0, False)),
    ],
)
def test_server_status_line_parses(line, expected):
    status = parse_status(line)
    assert (status.running, status.rc, status.size, status.collected) == expected


@pytest.mark.parametrize(
    "line,interrupted",
    [
        ("status running=0 rc= size=300 collected=0 started=1", True),  # launched, gone, no exit status: a reboot
        ("status running=1 rc= size=300 collected=0 started=1", False),
        ("status running=0 rc=0 size=300 collected=0 started=1", False),
        ("status running=0 rc= size=0 collected=0 started=0", False),  # never launched
    ],
)
def test_an_install_that_left_no_exit_status_is_interrupted(line, interrupted):
    assert parse_status(line).interrupted is interrupted


@pytest.fixture
def script_url():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(SCRIPT)))
            self.end_headers()
            self.wfile.write(SCRIPT)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/install.sh"
    server.shutdown()
    server.server_close()


def test_pinned_sha256_accepts_the_script(script_url):
    assert InstallerScripts().fetch(script_url, hashlib.sha256(SCRIPT).hexdigest()) == SCRIPT


def test_pinned_sha256_mismatch_fails_and_runs_nothing(script_url):
    with pytest.raises(InstallerFailed) as error:
        InstallerScripts().fetch(script_url, "0" * 64)
    assert error.value.failure_class == "checksum"
    assert f"not the pinned {'0' * 64}: nothing was run" in str(error.value)


def test_unreachable_installer_url_is_a_download_failure():
    with pytest.raises(InstallerFailed) as error:
        InstallerScripts().fetch("http://127.0.0.1:9/install.sh", None)
    assert error.value.failure_class == "download"


def test_a_run_downloads_each_script_once_and_a_new_run_downloads_again(script_url, monkeypatch):
    import agent.installer.download as download

    served = []
    original = download._download
    monkeypatch.setattr(download, "_download", lambda url: served.append(url) or original(url))
    scripts = InstallerScripts()
    for _ in range(3):
        scripts.fetch(script_url, None)
    InstallerScripts().fetch(script_url, None)
    assert served == [script_url, script_url]
