"""What the operator's `~/.ssh/config` says about a host, so `ssh web1` and ispagent agree.

paramiko is imported only when a config file is actually read: it costs ~0.2 s of start-up, and
commands like `inventory check` on a machine without an ssh config should not pay it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import InputError
from agent.secrets import printable, shown
from agent.userpath import HomeUnknown, expand_home

if TYPE_CHECKING:
    import re

    import paramiko

SAID_LIMIT = 160
# The words ssh reads for a yes/no option, in any case (its readconf.c); it refuses the file on any other.
_YES_NO = {"yes": True, "true": True, "no": False, "false": False}


def default_ssh_config() -> Path | None:
    path = Path.home() / ".ssh" / "config"
    return path if path.is_file() else None


@dataclass(frozen=True)
class SshConfigEntry:
    """The settings ssh config gives a host; None where it is silent. Values are as written."""

    hostname: str | None = None
    user: str | None = None
    port: str | None = None
    identity_files: tuple[Path, ...] = ()  # the IdentityFile entries whose files exist, in order
    identities_only: bool = False
    proxy_jump: str | None = None
    proxy_command: str | None = None  # as written: its tokens are expanded (and quoted) by the loader


class SshConfig:
    """A parsed ssh config file (`Host`/`Match` blocks, first value wins, as ssh itself reads it)."""

    def __init__(self, path: Path, *, check_permissions: bool = False) -> None:
        """`check_permissions` for the user's own ~/.ssh/config, as ssh checks it (not a file given with -F)."""
        self.path = path
        self._config = None
        if check_permissions:
            from agent.inventory.sshinclude import check_owner_and_mode

            check_owner_and_mode(path)
        try:
            text = path.read_text()
        except OSError as error:
            raise InputError(f"{path}: cannot read ssh config: {error.strerror}") from None
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: cannot parse ssh config: {_said(error)}") from None
        if "include" in text.lower():  # only a config that includes others pays for reading them (glob)
            from agent.inventory.sshinclude import expand_includes

            text = expand_includes(text, path)
        if not _has_settings(text):  # /dev/null or comments only: no reason to load paramiko
            return
        try:
            self._config = _raw_proxy_command_config().from_text(text)
        except Exception as error:  # paramiko raises ConfigParseError and plain exceptions alike
            raise InputError(f"{path}: cannot parse ssh config: {_said(error)}") from None
        self._check_yes_no(text, "IdentitiesOnly", self._config.SETTINGS_REGEX)

    def lookup(self, name: str) -> SshConfigEntry:
        if self._config is None:
            return SshConfigEntry()
        try:
            found: dict[str, Any] = self._config.lookup(name)
        except ImportError:  # paramiko runs a `Match exec` command through invoke, an optional package
            raise InputError(
                f"{self.path}: a `Match exec` block runs its command through the invoke package, which is not "
                "installed: pip install invoke, or give --ssh-config a file without `Match exec`"
            ) from None
        except Exception as error:  # that command, or invoke's own config (~/.invoke.yaml), failed
            raise InputError(f"{self.path}: cannot look up {name} in the ssh config: {_said(error)}") from None
        # paramiko always answers `hostname` (the name itself when unset): only a change counts.
        hostname = found.get("hostname")
        return SshConfigEntry(
            hostname=hostname if hostname and hostname != name else None,
            user=found.get("user"),
            port=found.get("port"),
            identity_files=_existing(found.get("identityfile", [])),
            identities_only=self._yes_no(found, "IdentitiesOnly"),
            proxy_jump=_proxy_jump(found.get("proxyjump")),
            proxy_command=found.get("proxycommand"),  # paramiko reads `ProxyCommand none` as None
        )

    def _check_yes_no(self, text: str, option: str, setting_line: re.Pattern[str]) -> None:
        """Refuse the file for a word ssh does not take for yes/no `option`, in any block: ssh refuses
        the whole file, whichever host it was asked about. Lines are split as paramiko splits them."""
        for line in text.splitlines():
            setting = setting_line.match(line.strip())
            if setting is not None and setting[1].lower() == option.lower():
                self._flag_of(option, setting[2])

    def _yes_no(self, found: dict[str, Any], option: str) -> bool:
        return self._flag_of(option, str(found.get(option.lower(), "no")))

    def _flag_of(self, option: str, value: str) -> bool:
        read = _flag(value)
        if read is None:
            raise InputError(
                f"{self.path}: {option} {shown(value.strip())}: ssh takes yes or no there (and refuses the file)"
            )
        return read


def _flag(value: str) -> bool | None:
    """What ssh reads a yes/no option's value as: one word (quoted or not), a comment after it allowed;
    None for anything else."""
    words = value.split()
    if not words or (len(words) > 1 and not words[1].startswith("#")):
        return None
    word = words[0]
    word = word[1:-1] if len(word) > 1 and word[0] == word[-1] == '"' else word
    return _YES_NO.get(word.lower())


def _raw_proxy_command_config() -> type[paramiko.SSHConfig]:
    """paramiko's SSHConfig, leaving ProxyCommand's tokens alone: it pastes values in unquoted, and
    expand_proxy_command quotes each for where it stands."""
    import paramiko

    class RawProxyCommandConfig(paramiko.SSHConfig):
        TOKENS_BY_CONFIG_KEY = {**paramiko.SSHConfig.TOKENS_BY_CONFIG_KEY, "proxycommand": []}

    return RawProxyCommandConfig


def _said(error: Exception) -> str:
    """paramiko's message, which quotes the line it could not read: escaped, on one line, cut short."""
    text = printable(str(error), one_line=True, backslashes=True)
    return text if len(text) <= SAID_LIMIT else text[: SAID_LIMIT - 1] + "…"


def _has_settings(text: str) -> bool:
    return any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines())


def _existing(candidates: list[str]) -> tuple[Path, ...]:
    """ssh tries each IdentityFile in turn and skips missing ones: those it would try, in its order."""
    found: list[Path] = []
    for candidate in candidates:
        try:
            path = expand_home(candidate)
        except HomeUnknown:
            continue  # ssh skips an IdentityFile it cannot find; so do we
        path = path if path.is_absolute() else Path.home() / path
        try:
            exists = path.is_file()
        except OSError:  # a name too long for the file system, say: ssh cannot find it either
            continue
        if exists and path not in found:
            found.append(path)
    return tuple(found)


def _proxy_jump(value: str | None) -> str | None:
    if value is None or value.strip().lower() == "none":
        return None
    return value.strip()
