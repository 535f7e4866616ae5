"""`ProxyCommand` as users write it (in `~/.ssh/config` or the inventory): checked, and its tokens expanded.

Like OpenSSH, the command runs under `/bin/sh -c` with `%h` (the address), `%p` (the port), `%r` (the
user), `%n` (the host as named) and `%%` replaced. OpenSSH pastes values in as they are; here each value
is quoted for the place in the shell line it lands in (bare, inside '...', inside "...", inside
$(...)), so a user name like `$(id)` is a word, never a command. Backquotes are refused around a token:
their nesting rules differ between shells, and $(...) says the same.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from agent.secrets import shown

TOKENS = ("h", "n", "p", "r")
MAX_LENGTH = 4096

_PLAIN, _SINGLE, _DOUBLE, _SUBST, _PAREN, _BACKQUOTE = "plain", "single", "double", "subst", "paren", "backquote"


class ProxyCommandError(ValueError):
    """What is wrong with a ProxyCommand as written (a message without the command itself)."""


@dataclass(frozen=True)
class TokenValues:
    """What the tokens stand for, for one connection."""

    address: str  # %h
    port: int  # %p
    user: str  # %r
    name: str  # %n

    def of(self, token: str) -> str:
        return {"h": self.address, "p": str(self.port), "r": self.user, "n": self.name}[token]


def check_proxy_command(text: str) -> None:
    """Raise ProxyCommandError unless `text` is a ProxyCommand this module can expand and /bin/sh can read."""
    _check_shell_syntax(expand_proxy_command(text, TokenValues("192.0.2.1", 22, "root", "host")))


@lru_cache(maxsize=256)  # an inventory's hosts share a few commands
def _check_shell_syntax(line: str) -> None:
    """The command is run as `/bin/sh -c 'exec LINE'`, as OpenSSH runs it: a line the shell cannot parse
    (`<<` with no word after it, a `|` with nothing after it) fails here, with the shell's own words,
    instead of at every connection. `sh -n` reads the line and runs nothing."""
    try:
        parsed = subprocess.run(["/bin/sh", "-n", "-c", f"exec {line}"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ProxyCommandError(f"could not be checked with /bin/sh -n ({type(error).__name__})") from None
    if parsed.returncode != 0:
        said = parsed.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise ProxyCommandError(f"is not a command /bin/sh can read ({shown(said[-1].removeprefix('/bin/sh: '))})")


def expand_proxy_command(text: str, values: TokenValues) -> str:
    """The shell line to run: `text` with each token replaced by its value, quoted for where it stands."""
    if not text.strip():
        raise ProxyCommandError("is empty")
    if len(text) > MAX_LENGTH:
        raise ProxyCommandError(f"is longer than {MAX_LENGTH} characters")
    if not text.isprintable():
        raise ProxyCommandError("holds a line break or control character")
    out: list[str] = []
    contexts = [_PLAIN]
    index = 0
    while index < len(text):
        index = _step(text, index, contexts, out, values)
    if contexts != [_PLAIN]:
        raise ProxyCommandError(_UNCLOSED[contexts[-1]])
    return "".join(out)


_UNCLOSED = {
    _SINGLE: "has a ' that is not closed",
    _DOUBLE: 'has a " that is not closed',
    _SUBST: "has a $( that is not closed",
    _PAREN: "has a ( that is not closed",
    _BACKQUOTE: "has a ` that is not closed",
}


def _step(text: str, index: int, contexts: list[str], out: list[str], values: TokenValues) -> int:
    """Copy (or expand) what starts at `index`, track the shell's quoting; the index after it."""
    char, context = text[index], contexts[-1]
    if char == "%":
        return _token(text, index, context, out, values)
    if context == _SINGLE:
        if char == "'":
            contexts.pop()
        out.append(char)
        return index + 1
    if char == "\\":
        if text[index + 1 : index + 2] == "%":  # `\%h`: the backslash would undo the value's quoting
            raise ProxyCommandError("has a backslash right before a % token")
        out.append(text[index : index + 2])
        return index + 2
    if text.startswith("$(", index):
        contexts.append(_SUBST)
        out.append("$(")
        return index + 2
    _track(char, contexts)
    out.append(char)
    return index + 1


def _track(char: str, contexts: list[str]) -> None:
    context = contexts[-1]
    if char == "`":
        if context == _BACKQUOTE:
            contexts.pop()
        else:
            contexts.append(_BACKQUOTE)
    elif context == _DOUBLE:
        if char == '"':
            contexts.pop()
    elif char == "'":
        contexts.append(_SINGLE)
    elif char == '"':
        contexts.append(_DOUBLE)
    elif char == "(":
        contexts.append(_PAREN)
    elif char == ")" and context in (_SUBST, _PAREN):
        contexts.pop()


def _token(text: str, index: int, context: str, out: list[str], values: TokenValues) -> int:
    token = text[index + 1 : index + 2]
    if token == "%":
        out.append("%")
        return index + 2
    if token not in TOKENS:
        shown = f"%{token}" if token.isprintable() and token else "a lone %"
        raise ProxyCommandError(f"has {shown}: the tokens are %h %p %r %n, and %% for a %")
    if context == _BACKQUOTE:
        raise ProxyCommandError(f"has %{token} inside backquotes: write $(...) instead")
    out.append(quoted_for(values.of(token), context))
    return index + 2


def quoted_for(value: str, context: str) -> str:
    """`value` as one literal piece of text at a place of the given quoting context."""
    if context == _SINGLE:  # close the quote, the value quoted on its own, open it again
        return "'" + shlex.quote(value) + "'"
    if context == _DOUBLE:
        return "".join("\\" + char if char in '\\$`"' else char for char in value)
    return shlex.quote(value)
