"""Where the installer step keeps its files on a server, and what it tells later steps."""

from __future__ import annotations

from typing import Literal

from agent.hoststate import StateKey

INSTALLER_DIR = "/var/lib/ispagent/installer"  # install.sh, its log, pid and exit status, on the server

InstallOutcome = Literal["installed", "would install"]
INSTALL: StateKey[InstallOutcome] = StateKey("install", "what the installer step did (the installer step)")
