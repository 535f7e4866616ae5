"""install.sh, downloaded on the control node once per run and URL, checked against its pinned sha256."""

from __future__ import annotations

import hashlib
import threading
import urllib.error
import urllib.request

from agent.errors import InstallerFailed

DOWNLOAD_TIMEOUT = 60.0


class InstallerScripts:
    """The scripts a run has downloaded, by URL: hosts of one run share one download."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, bytes] = {}

    def fetch(self, url: str, sha256: str | None) -> bytes:
        """install.sh from `url`, checked against the pinned sha256 if one is set."""
        with self._lock:
            if url not in self._scripts:
                self._scripts[url] = _download(url)
            content = self._scripts[url]
        digest = hashlib.sha256(content).hexdigest()
        if sha256 and digest != sha256:
            raise InstallerFailed(
                f"{url} has sha256 {digest}, not the pinned {sha256}: nothing was run; "
                "check the script and update installer_sha256",
                "checksum",
            )
        return content


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise InstallerFailed(f"cannot download {url}: {reason}", "download") from None
