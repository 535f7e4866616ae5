"""The lab's mirror: the install.sh emulator, the vendor's repository and the distribution's, as lab hosts see them.

`python -m agent.lab.mirror --listen ADDRESS:8080 --state-dir DIR [--license-url URL]` (started by
`lab up` on its lab's bridge address).

- `/install.sh`, `/install.eu.sh`: the emulator (agent/lab/installer_emulator/install.sh) with the
  lab's URLs and timings filled in; `/` lists install.sh, as the vendor's download host does.
- `/repo/...`: the vendor's repository (suites, the emulated /usr/local/mgr5 as one tarball).
- `/debian/...`: the distribution's own repository, where install.sh gets lsb-release, wget, gpg.

Read on every request, so tests can change them while the mirror runs:
- DIR/config.json: {"license_url", "install_seconds", "license_retry_delay", "repo_retry_delay"},
  baked into the install.sh it serves (license_url: by default the partner emulator on the mirror's
  own address, port 8443);
- DIR/host-faults.json: {client IP: fault}, the repository a profiled lab host cannot use:
  `repo-failure` (the vendor's repository answers HTTP 503), `repo-unreachable` (it never answers:
  the connection is reset), `dist-repo-down` (the distribution's repository never answers).
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import struct
import tarfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from agent.lab.services import license_url as partner_url

EMULATOR_DIR = Path(__file__).with_name("installer_emulator")
CONFIG_FILE = "config.json"
HOST_FAULTS = "host-faults.json"
DEFAULTS = {
    "install_seconds": 1.0,
    "license_retry_delay": 2.0,  # the real installer's 2 s between licctl tries
    "repo_retry_delay": 0.2,  # the real one waits 20 s; the lab need not
}
# fault -> (path prefix it hits, what the client gets)
FAULTS = {
    "repo-failure": ("/repo", "503"),
    "repo-unreachable": ("/repo", "reset"),
    "dist-repo-down": ("/debian", "reset"),
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


def write_host_faults(state_dir: Path, faults: dict[str, str]) -> None:
    """Which client IPs meet which repository fault (see FAULTS)."""
    unknown = set(faults.values()) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown mirror faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_dir / f".{HOST_FAULTS}.new"
    temporary.write_text(json.dumps(faults, indent=1, sort_keys=True))
    temporary.replace(state_dir / HOST_FAULTS)


def host_faults(state_dir: Path) -> dict[str, str]:
    try:
        return json.loads((state_dir / HOST_FAULTS).read_text())
    except (OSError, ValueError):
        return {}


def install_script(mirror_url: str, config: dict, eu: bool = False) -> bytes:
    """The emulator's install.sh with the lab's URLs and timings filled in."""
    text = (EMULATOR_DIR / "install.sh").read_text()
    values = {
        "MIRROR_URL": mirror_url,
        "DIST_URL": f"{mirror_url}/debian",
        "LICENSE_URL": config["license_url"],
        "INSTALL_SECONDS": config["install_seconds"],
        "LICENSE_RETRY_DELAY": config["license_retry_delay"],
        "REPO_RETRY_DELAY": config["repo_retry_delay"],
        "EU": "true" if eu else "false",
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


def _release_file(path: str) -> bytes:
    suite = path.rstrip("/").split("/")[-2]
    return f"Origin: ispagent lab\nSuite: {suite}\nCodename: {suite}\nComponents: main\n".encode()


def make_handler(state_dir: Path, mirror_url: str, overrides: dict):
    class Mirror(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/install.sh", "/install.eu.sh"):
                script = install_script(mirror_url, read_config(state_dir, overrides), eu=path == "/install.eu.sh")
                return self._send(200, script, "text/x-shellscript")
            if path == "/":
                return self._send(200, b'<a href="install.sh">install.sh</a>\n', "text/html")
            fault = FAULTS.get(host_faults(state_dir).get(self.client_address[0], ""))
            if fault and path.startswith(fault[0]):
                if fault[1] == "503":
                    return self._send(503, b"repository unavailable\n", "text/plain")
                return self._reset()
            if path.startswith("/repo"):
                return self._repository(path)
            if path.startswith("/debian/"):
                if path.endswith("/Release") or path.endswith("/InRelease"):
                    return self._send(200, _release_file(path), "text/plain")
                return self._send(200, b"", "text/plain")
            self._send(404, b"not found\n", "text/plain")

        def _repository(self, path: str) -> None:
            if path in ("/repo", "/repo/"):
                return self._send(
                    200, b'<a href="debian/">debian/</a> <a href="ispmanager/">ispmanager/</a>\n', "text/html"
                )
            if path == "/repo/ispmanager/mgr5.tar.gz":
                return self._send(200, panel_tarball(), "application/gzip")
            if path.endswith("/Release") or path.endswith("/InRelease"):
                return self._send(200, _release_file(path), "text/plain")
            if path.endswith(".gpg") or path.endswith(".gpg.key"):
                return self._send(200, b"ispagent lab repository key\n", "application/octet-stream")
            self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _reset(self) -> None:
            """No answer at all: the connection is reset, as from a host that is down or filtered."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def finish(self) -> None:
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, format: str, *args) -> None:
            print(f"{self.client_address[0]} {format % args}", flush=True)

    return Mirror


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        print(f"{client_address[0]} request failed", flush=True)


def serve(listen: str, state_dir: Path, overrides: dict | None = None) -> ThreadingHTTPServer:
    host, _, port = listen.rpartition(":")
    state_dir.mkdir(parents=True, exist_ok=True)
    server = _Server((host, int(port)), None)
    mirror_url = f"http://{host}:{server.server_address[1]}"
    # The lab's partner emulator listens beside the mirror, on the same (bridge) address.
    overrides = {"license_url": partner_url(host), **(overrides or {})}
    server.RequestHandlerClass = make_handler(state_dir, mirror_url, overrides)
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT, the lab's bridge address")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--license-url", help="license service for licctl (default: port 8443 of the --listen address)")
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
