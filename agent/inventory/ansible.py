"""Inventory YAML from an Ansible inventory (INI or YAML, with group_vars/ and host_vars/).

Read with ansible-core's own parser (the optional extra: `pip install 'ispagent[ansible]'`), so
every quirk of Ansible's formats (ranges like web[1:9], :children, :vars, vars plugins) means what
it means to Ansible. Each host's vars are Ansible's merged vars for it; the ones every host shares
go to `defaults.vars`. The connection vars ispagent has a key for become that key; every other
`ansible_*` var is reported (by name: it may be a password) and left out, never dropped silently.

Vault-encrypted values (`!vault` vars, encrypted vars files) are decrypted with ansible-core's own
vault code and the secret of `--vault-password-file`; without it a `!vault` var is refused in one
line naming its file and var. Every comment in the written YAML goes through `comment_line`, so a
value (a host var, a file name) can never end a comment and start a YAML line of its own.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.errors import InputError
from agent.inputfile import read_input_bytes
from agent.secrets import SECRET_FIELDS, masked, printable, shown
from agent.userpath import expand_home
from agent.yamlnodes import MAX_ALIASED_VALUES, MAX_DEPTH

ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
PORT_VARS = ("ansible_port", "ansible_ssh_port")
USER_VARS = ("ansible_user", "ansible_ssh_user", "ansible_remote_user")
KEY_VARS = ("ansible_ssh_private_key_file", "ansible_private_key_file")
BECOME_VARS = ("ansible_become", "ansible_become_method", "ansible_become_user")
MAPPED = (*ADDRESS_VARS, *PORT_VARS, *USER_VARS, *KEY_VARS, *BECOME_VARS, "ansible_connection")
# Vars that are named in notes but not written (become_method and become_user: ispagent uses sudo to root).
_LEFT_OUT = ("ansible_become_method", "ansible_become_user", "ansible_connection")
_SECRET_WORDS = (*SECRET_FIELDS, "secret", "token", "private_key", "api_key")
_TRUE = ("true", "yes", "on", "1", "y", "t")
_FALSE = ("false", "no", "off", "0", "n", "f", "")


@dataclass(frozen=True)
class AnsibleHost:
    name: str
    vars: dict[str, Any]  # Ansible's merged vars for the host (magic vars left out)
    vaulted: frozenset[str] = frozenset()  # the vars whose value (or part of it) was vault-encrypted


@dataclass(frozen=True)
class AnsibleGroup:
    name: str
    children: tuple[str, ...]
    hosts: tuple[str, ...]  # direct members


@dataclass(frozen=True)
class Conversion:
    text: str  # inventory YAML
    hosts: int
    notes: tuple[str, ...]  # what was left out, and why
    secret: bool = False  # the YAML holds a secret (a vault value, a password, a key): 0600, never stdout


def read_ansible_inventory(
    path: Path, vault_password_file: Path | None = None
) -> tuple[list[AnsibleHost], list[AnsibleGroup]]:
    """Hosts and groups as ansible-core reads `path` (a file or an inventory directory).

    `vault_password_file` holds the vault password (as `ansible-playbook --vault-password-file`
    takes it, a plain file: a password script is not run).
    """
    if not Path(path).exists():
        raise InputError(f"{path}: no such file or directory")
    _start_ansible()
    from ansible import constants
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    vault = _Vault(str(path), read_vault_secrets(vault_password_file) if vault_password_file else [])
    if vault.secrets:
        loader.set_vault_secrets(vault.secrets)  # vars files encrypted whole
    try:
        with _silenced():
            inventory = InventoryManager(loader=loader, sources=[str(path)])
            manager = VariableManager(loader=loader, inventory=inventory)
            internal = set(constants.INTERNAL_STATIC_VARS) | {"omit"}
            hosts = [
                _host(
                    str(host.name),
                    {
                        str(k): v
                        for k, v in manager.get_vars(host=host, include_hostvars=False, stage="all").items()
                        if k not in internal
                    },
                    vault,
                )
                for host in inventory.get_hosts()
            ]
    except AnsibleError as error:
        raise InputError(f"{path}: ansible cannot read it: {_first_line(error)}") from None
    groups = [
        AnsibleGroup(
            str(name), tuple(str(child.name) for child in group.child_groups), tuple(str(h.name) for h in group.hosts)
        )
        for name, group in inventory.groups.items()
        if name not in ("all", "ungrouped")
    ]
    if not hosts:
        raise InputError(f"{path}: the Ansible inventory has no hosts")
    return hosts, groups


def _start_ansible() -> None:
    """Import ansible-core, which reads its configuration (ansible.cfg, ANSIBLE_* vars) as it loads.

    Its local temp dir is one of this process's own: a fixed path under /tmp is one another local
    user can take first (a file there, a dir of theirs, a link). A configuration ansible refuses, or
    any other failure of its start, is one line; the warnings it prints of one it takes (a deprecated
    setting: several lines) are not ours.
    """
    if "ansible.vars.manager" in sys.modules:
        return  # started: its configuration is read once per process, as it loads
    ours = {"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"}  # a file Ansible cannot read is an error
    if "ANSIBLE_LOCAL_TEMP" not in os.environ:
        private = tempfile.mkdtemp(prefix="ispagent-ansible-")
        atexit.register(shutil.rmtree, private, ignore_errors=True)
        ours["ANSIBLE_LOCAL_TEMP"] = private
    try:
        # and ansible patches whatever stdout and stderr are as it loads
        with _silenced(), _environment_while_loading(ours):
            import ansible.inventory.manager  # noqa: F401  (imports ansible.constants: the configuration)
            import ansible.vars.manager  # noqa: F401
    except ImportError:
        raise InputError("from-ansible reads inventories with ansible-core: pip install 'ispagent[ansible]'") from None
    except Exception as error:  # ansible-core's configuration is read by its import: AnsibleError and OSError
        raise InputError(
            f"ansible-core cannot start: {_first_line(error)} (it reads an ansible.cfg and ANSIBLE_* variables "
            "as it starts)"
        ) from None


@contextlib.contextmanager
def _environment_while_loading(settings: dict[str, str]) -> Iterator[None]:
    """`settings` in os.environ, those the user did not set already, only while ansible-core loads:
    it reads them into its constants then, and a program that embeds ispagent keeps its environment."""
    added = {name: value for name, value in settings.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Ansible's own warnings kept off the terminal: they quote the lines of a file it cannot parse
    (a password in them too), unmasked and on many lines, and its configuration's deprecations, which
    are not ours to report. What made it fail is our one error line."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def read_vault_secrets(path: Path) -> list[tuple[str, Any]]:
    """Ansible's vault secrets for the password in the file at `path` (stripped, as Ansible reads it)."""
    from ansible.parsing.vault import VaultSecret

    what = "vault password file"
    if os.access(path, os.X_OK) and not os.path.isdir(path):
        raise InputError(
            f"{path}: the vault password file is executable, and Ansible would run it as a script; "
            "ispagent runs no scripts: write the password into a plain (0600) file"
        )
    password = read_input_bytes(path, InputError, what=what, max_bytes=64 * 1024).data.strip()
    if not password:
        raise InputError(f"{path}: the vault password file is empty; write the vault password into it")
    return [("default", VaultSecret(password))]


@dataclass(frozen=True)
class _Vault:
    source: str  # the inventory, named when Ansible does not say which file a value came from
    secrets: list[tuple[str, Any]]

    def reveal(self, value: Any, ciphertext: Any, host: str, var: str) -> str:
        from ansible.errors import AnsibleError
        from ansible.parsing.vault import VaultLib

        where = _origin(value) or self.source
        if not self.secrets:
            raise InputError(
                f"{where}: var {shown(var)} (host {shown(host)}) is vault-encrypted; give its vault "
                "password with --vault-password-file FILE"
            )
        try:
            plaintext: str = VaultLib(self.secrets).decrypt(ciphertext).decode("utf-8")
            return plaintext
        except (AnsibleError, UnicodeDecodeError) as error:
            raise InputError(
                f"{where}: var {shown(var)} (host {shown(host)}) cannot be decrypted with the vault "
                f"password given ({shown(_first_line(error))}); give the password it was encrypted "
                "with"
            ) from None


def _host(name: str, values: dict[str, Any], vault: _Vault) -> AnsibleHost:
    vaulted: set[str] = set()
    plain_values: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("ansible_") and key not in MAPPED:
            plain_values[key] = None  # left out and named only (often ansible_become_password: !vault)
            continue
        budget = _Budget(f"host {shown(name)}: var {shown(key)}")
        plain_values[key] = plain(value, lambda v, c: vault.reveal(v, c, name, key), budget)
        if budget.vaulted:
            vaulted.add(key)
    return AnsibleHost(name, plain_values, frozenset(vaulted))


class _Budget:
    """How much of one var `plain` has walked: YAML aliases (`&a [*a, *a, ...]`) make a few lines
    into billions of values, which Ansible keeps shared but a copy would expand."""

    def __init__(self, where: str) -> None:
        self.where, self.values, self.vaulted = where, 0, False

    def spend(self, depth: int) -> None:
        self.values += 1
        if self.values > MAX_ALIASED_VALUES:
            raise InputError(
                f"{self.where} holds more than {MAX_ALIASED_VALUES} values (YAML aliases repeated?); "
                "write the var out, smaller"
            )
        if depth > MAX_DEPTH:
            raise InputError(f"{self.where} is nested more than {MAX_DEPTH} levels deep; flatten it")


def _ciphertext(value: Any) -> Any:
    """The vault ciphertext `value` was decrypted from or is to be, None for a value never vaulted."""
    try:
        from ansible.parsing.vault import VaultHelper  # ansible-core 2.19 and later
    except ImportError:
        return getattr(value, "_ciphertext", None)  # AnsibleVaultEncryptedUnicode before 2.19
    return VaultHelper.get_ciphertext(value, with_tags=False)


def _origin(value: Any) -> str | None:
    """`file:line` of where Ansible read `value`, when this ansible-core says."""
    try:
        from ansible._internal._datatag._tags import Origin  # no public API names it (2.19)
    except ImportError:
        origin = getattr(value, "ansible_pos", None)  # before 2.19: (file, line, column)
        return f"{origin[0]}:{origin[1]}" if origin else None
    tag = Origin.get_tag(value)
    return f"{tag.path}:{tag.line_num}" if tag is not None and tag.path else None


def plain(value: Any, reveal: Any = None, budget: _Budget | None = None, depth: int = 0) -> Any:
    """Ansible's tagged values (its own str, dict and list types) as plain YAML-safe ones.

    A vault value is given to `reveal(value, ciphertext)` for its plaintext; `budget` limits the
    values and nesting walked (an InputError past them), and notes that a vault value was seen.
    """
    budget = budget or _Budget("a var")
    budget.spend(depth)
    ciphertext = _ciphertext(value)
    if ciphertext is not None:
        if reveal is None:
            raise InputError(f"{budget.where} is vault-encrypted: give the vault password")
        budget.vaulted = True
        return reveal(value, ciphertext)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(key): plain(item, reveal, budget, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(item, reveal, budget, depth + 1) for item in value]
    return str(value)


def _first_line(error: Exception, limit: int = 300) -> str:
    """What ansible says went wrong: its message's first line, shortened (the rest quotes the file)."""
    text = str(getattr(error, "message", "") or error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def convert(
    hosts: list[AnsibleHost],
    groups: list[AnsibleGroup],
    *,
    source: str,
    known_hosts: str,
    host_key_policy: str = "strict",
    base_dir: Path | None = None,
) -> Conversion:
    """Our inventory YAML for Ansible's hosts and groups. `base_dir` resolves relative key paths."""
    notes: dict[str, list[str]] = {}
    entries = {host.name: _host_entry(host, notes, base_dir or Path.cwd()) for host in hosts}
    shared = _shared_vars([entry.get("vars", {}) for entry in entries.values()])
    for entry in entries.values():
        own = {k: v for k, v in entry.pop("vars", {}).items() if k not in shared}
        if own:
            entry["vars"] = own
    document: dict[str, Any] = {"ssh": {"known_hosts": known_hosts, "host_key_policy": host_key_policy}}
    if shared:
        document["defaults"] = {"vars": shared}
    group_entries = {group.name: _group_entry(group) for group in groups if group.children or group.hosts}
    if group_entries:
        document["groups"] = group_entries
    document["hosts"] = entries
    lines = [f"{what} ({_named(names)})" for what, names in notes.items()]
    header = comment_line(f"Made by `ispagent inventory from-ansible` from {source}.")
    header += "".join(comment_line(f"left out: {line}") for line in lines)
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    written = {name for host in hosts for name in host.vaulted if name not in _LEFT_OUT}
    return Conversion(header + body, len(hosts), tuple(lines), secret=bool(written) or holds_secret(document))


def holds_secret(data: Any) -> bool:
    """True when `data` has a secret-named key (`activation_key`, `*password*`, `*token*`...) or a
    value the mask would change (a URL's password, a registered secret): its file must be 0600."""
    if isinstance(data, dict):
        return any(
            any(word in str(key).lower() for word in _SECRET_WORDS) or holds_secret(value)
            for key, value in data.items()
        )
    if isinstance(data, list):
        return any(holds_secret(item) for item in data)
    return isinstance(data, str) and masked(data) != data


def comment_line(text: str) -> str:
    """`text` as one YAML comment line: control characters and line breaks (YAML's own too, like
    U+2028 and NEL) written as escapes, secrets masked; the one way text reaches a comment."""
    return f"# {printable(text, one_line=True, backslashes=True)}\n"


def _host_entry(host: AnsibleHost, notes: dict[str, list[str]], base_dir: Path) -> dict[str, Any]:
    values = dict(host.vars)
    entry: dict[str, Any] = {}
    connection = str(values.get("ansible_connection", "ssh"))
    if connection not in ("ssh", "paramiko", "smart"):
        notes.setdefault(
            f"ansible_connection={_note_value(host, 'ansible_connection', connection)} (ispagent connects over SSH)", []
        ).append(host.name)
    address = _first(values, ADDRESS_VARS)
    if address is not None:
        entry["address"] = _text(host, "ansible_host", address)
    port = _first(values, PORT_VARS)
    if port is not None:
        entry["port"] = _port(host, port)
    user = _first(values, USER_VARS)
    if user is not None:
        entry["user"] = _text(host, "ansible_user", user)
    key = _first(values, KEY_VARS)
    if key is not None:
        written = expand_home(_text(host, "ansible_ssh_private_key_file", key))
        entry["identity_file"] = str(written if written.is_absolute() else base_dir / written)
    if "ansible_become" in values:
        entry["sudo"] = _boolean(host, "ansible_become", values["ansible_become"])
        _check_become(host, values, notes)
    free = {}
    for name, value in values.items():
        if name in MAPPED:
            continue
        if name.startswith("ansible_"):
            notes.setdefault(name, []).append(host.name)
            continue
        free[name] = value
    if free:
        entry["vars"] = free
    return entry


def _check_become(host: AnsibleHost, values: dict[str, Any], notes: dict[str, list[str]]) -> None:
    method = str(values.get("ansible_become_method", "sudo"))
    user = str(values.get("ansible_become_user", "root"))
    if method != "sudo":
        notes.setdefault(
            f"ansible_become_method={_note_value(host, 'ansible_become_method', method)} (ispagent uses sudo -n)", []
        ).append(host.name)
    if user != "root":
        notes.setdefault(
            f"ansible_become_user={_note_value(host, 'ansible_become_user', user)} (ispagent becomes root)", []
        ).append(host.name)


def _note_value(host: AnsibleHost, name: str, value: str) -> str:
    """A value as a note shows it: escaped and shortened, never a vault value's plaintext."""
    return "(vault-encrypted)" if name in host.vaulted else shown(value, 40)


def _first(values: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((values[name] for name in names if values.get(name) is not None), None)


def _text(host: AnsibleHost, name: str, value: Any) -> str:
    text = str(value)
    if "{{" in text or "{%" in text:
        raise InputError(f"host {host.name}: {name} is a Jinja2 template Ansible would render; write its value")
    return text


def _port(host: AnsibleHost, value: Any) -> int:
    text = _text(host, "ansible_port", value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InputError(f"host {host.name}: ansible_port {text!r} is not a TCP port (1-65535)")
    return int(text)


def _boolean(host: AnsibleHost, name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise InputError(f"host {host.name}: {name} {value!r} is not a boolean (true/false)")


def _shared_vars(all_vars: list[dict[str, Any]]) -> dict[str, Any]:
    """The vars every host has with the same value (written once, under defaults.vars)."""
    if not all_vars:
        return {}
    first = all_vars[0]
    return {
        key: value for key, value in first.items() if all(key in other and other[key] == value for other in all_vars)
    }


def _group_entry(group: AnsibleGroup) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if group.children:
        entry["children"] = list(group.children)
    if group.hosts:
        entry["hosts"] = list(group.hosts)
    return entry


def _named(names: list[str]) -> str:
    listed = ", ".join(printable(name, one_line=True) for name in names[:5])
    return f"{len(names)} host(s): {listed}" + (f", +{len(names) - 5} more" if len(names) > 5 else "")
