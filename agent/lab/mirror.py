"""The lab's installer mirror: the install.sh emulator and the emulated /usr/local/mgr5 it downloads.

`python -m agent.lab.mirror --listen 198.18.0.1:8080 --state-dir DIR` (started by `lab up`).
Read on every request, so tests can change them while the mirror runs:
- DIR/config.json: {"license_url", "install_seconds", "license_retry_delay", "repo_retry_delay"},
  baked into the install.sh it serves;
- DIR/failing-clients: client IPs (one a line) whose repository requests get HTTP 503, as a
  broken or unreachable vendor repository would answer (lab profile `repo-failure`).
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EMULATOR_DIR = Path(__file__).with_name("installer_emulator")
CONFIG_FILE = "config.json"
FAILING_CLIENTS = "failing-clients"
DEFAULTS = {
    "license_url": "http://198.18.0.1:8443",
    "install_seconds": 1.0,
    "license_retry_delay": 2.0,  # the real installer's 2 s between licctl tries
    "repo_retry_delay": 0.2,  # the real one waits 20 s; the lab need not
}


def read_config(state_dir: Path, overrides: dict | None = None) -> dict:
    config = {**DEFAULTS, **(overrides or {})}
    try:
        config.update(json.loads((state_dir / CONFIG_FILE).read_text()))
    except (OSError, ValueError):
        pass
    return config


def write_config(state_dir: Path, **values) -> None:
    """Change the mirror's settings (for tests): merged into DIR/config.json."""
    current = {}
    try:
        current = json.loads((state_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        pass
    (state_dir / CONFIG_FILE).write_text(json.dumps({**current, **values}))


def install_script(mirror_url: str, config: dict) -> bytes:
    """The emulator's install.sh with the lab's URLs and timings filled in."""
    text = (EMULATOR_DIR / "install.sh").read_text()
    values = {
        "MIRROR_URL": mirror_url,
        "LICENSE_URL": config["license_url"],
        "INSTALL_SECONDS": config["install_seconds"],
        "LICENSE_RETRY_DELAY": config["license_retry_delay"],
        "REPO_RETRY_DELAY": config["repo_retry_delay"],
    }
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", str(value))
    return text.encode()


def panel_tarball() -> bytes:
    """The emulated /usr/local/mgr5 tree (mgrctl, licctl, ihttpd, core) as a .tar.gz."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted((EMULATOR_DIR / "mgr5").rglob("*")):
            info = archive.gettarinfo(str(path), str(path.relative_to(EMULATOR_DIR / "mgr5")))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if path.is_file():
                with open(path, "rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    return buffer.getvalue()


def failing_clients(state_dir: Path) -> set[str]:
    try:
        return {line.strip() for line in (state_dir / FAILING_CLIENTS).read_text().splitlines() if line.strip()}
    except OSError:
        return set()


def make_handler(state_dir: Path, mirror_url: str, overrides: dict):
    class Mirror(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/install.sh", "/install.eu.sh"):
                return self._send(200, install_script(mirror_url, read_config(state_dir, overrides)), "text/x-shellscript")
            if path == "/":
                return self._send(200, b'<a href="install.sh">install.sh</a>\n', "text/html")
            if path.startswith("/repo"):
                if self.client_address[0] in failing_clients(state_dir):
                    return self._send(503, b"repository unavailable\n", "text/plain")
                if path in ("/repo", "/repo/"):
                    return self._send(200, b'<a href="ispmanager/">ispmanager/</a>\n', "text/html")
                if path == "/repo/ispmanager/mgr5.tar.gz":
                    return self._send(200, panel_tarball(), "application/gzip")
            self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            print(f"{self.client_address[0]} {format % args}", flush=True)

    return Mirror


def serve(listen: str, state_dir: Path, overrides: dict | None = None) -> ThreadingHTTPServer:
    host, _, port = listen.rpartition(":")
    state_dir.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, int(port)), None)
    mirror_url = f"http://{host}:{server.server_address[1]}"
    server.RequestHandlerClass = make_handler(state_dir, mirror_url, overrides or {})
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="198.18.0.1:8080")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--license-url", help=f"license service for licctl (default {DEFAULTS['license_url']})")
    parser.add_argument("--install-seconds", type=float, help="how long the emulated install takes")
    args = parser.parse_args(argv)
    overrides = {}
    if args.license_url:
        overrides["license_url"] = args.license_url
    if args.install_seconds is not None:
        overrides["install_seconds"] = args.install_seconds
    serve(args.listen, args.state_dir, overrides).serve_forever()


if __name__ == "__main__":
    main()
