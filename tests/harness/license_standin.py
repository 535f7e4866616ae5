"""A stand-in license service (`licctl fetch`) the installer tests drive directly: it records requests and refuses chosen IPs.

Contract (shared with issue 4): `GET /licctl/fetch?licname=ispmgr&key=<key or empty>` -> 200 JSON
{"licid", "panel_name", "expire", "ip"}; errors 403 JSON {"error": "Invalid activation key"} or
{"error": "You have no commercial license for this IP"}. Without a key the license is found by the
client's IP; with one, by the key.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXPIRE = "2099-12-31"


@dataclass
class LicenseStandin:
    """Licenses by IP (every IP has one unless denied) and by activation key."""

    address: str  # where lab hosts reach it: the lab's bridge address (Lab.bridge_address)
    panel_name: str = "ISPmanager Lite"
    denied_ips: set[str] = field(default_factory=set)
    keys: dict[str, str] = field(default_factory=dict)  # activation key -> licid
    requests: list[tuple[str, str]] = field(default_factory=list)  # (client ip, key)
    _server: ThreadingHTTPServer | None = None

    @staticmethod
    def licid_for(ip: str) -> str:
        """The licid the stand-in gives an IP: stable, so tests can predict it."""
        a, b, c, d = (int(part) for part in ip.split("."))
        return str(5_000_000 + c * 256 + d)

    def answer(self, ip: str, key: str) -> tuple[int, dict]:
        self.requests.append((ip, key))
        if key:
            if key not in self.keys:
                return 403, {"error": "Invalid activation key"}
            return 200, self._license(self.keys[key], ip)
        if ip in self.denied_ips:
            return 403, {"error": "You have no commercial license for this IP"}
        return 200, self._license(self.licid_for(ip), ip)

    def _license(self, licid: str, ip: str) -> dict:
        return {"licid": licid, "panel_name": self.panel_name, "expire": EXPIRE, "ip": ip}

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.address}:{self._server.server_address[1]}"

    def start(self, port: int = 0) -> LicenseStandin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
                if parsed.path != "/licctl/fetch" or query.get("licname") != ["ispmgr"]:
                    code, body = 404, {"error": "not found"}
                else:
                    code, body = standin.answer(self.client_address[0], (query.get("key") or [""])[0])
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer((self.address, port), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
