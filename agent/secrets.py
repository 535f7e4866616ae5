"""What leaves the process: secrets masked, values a user wrote escaped and shortened.

Every log line, report, journal event, JSON output and error passes `mask`, which replaces

- values registered where they enter (inventory vars, credentials files, panel passwords, keys
  from the account), in every form our output gives them: as written, JSON-escaped, shell-quoted
  once and twice (sudo wraps a command line in `sh -c`), percent-encoded;
- the password of any URL (`scheme://user:PASSWORD@host`), found by the URL's structure, so a URL
  needs no registering to be printed safely.

`shown` is the one way a value a user wrote is echoed in a message: masked (and, since the value may
be a mangled setting that was never read as one, anything after a secret field's name such as
`activation_key` is masked too), control characters escaped, one line, at most 80 characters.
`printable` is how a whole message or output reaches a terminal: masked, control characters escaped.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from bisect import bisect_left
from typing import Any
from urllib.parse import quote, unquote

MASK = "***"
_MIN_LENGTH = 4  # a form of a secret shorter than this is not looked for (a 1-character escape would garble output)
# A secret shorter than this is refused where it is read: "masking" a panel password `2026` or
# `status` hides every year and every word that holds it, and protects nothing.
MIN_SECRET_LENGTH = 8
# Fields whose values ispagent makes itself (ids, times, states): never masked, so a secret that
# happens to be a fragment of one cannot corrupt a record or a resume hint.
PLAIN_FIELDS: frozenset[str] = frozenset(
    {"run_id", "started_at", "finished_at", "resumed_at", "at", "status", "event", "playbook_sha256", "pid"}
)
SHOWN_LIMIT = 80
# Names of settings whose values are secret, wherever they are written (YAML keys, mgrctl params).
SECRET_FIELDS: tuple[str, ...] = ("activation_key", "password", "passwd", "confirm", "authinfo")

# scheme://user:password@ — the password runs to the last `@` of the word: an unencoded `@` in a
# password must not leave its tail in clear (over-masking a `host:port/path@x` is the lesser harm).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:'\"<>]*:)[^\s'\"<>]*@")
# A secret field's value inside a value a user wrote: `activation_key: K`, `passwd=K`, `"password": "K"`.
_SECRET_FIELD = re.compile(
    r"(?P<head>\b(?:" + "|".join(SECRET_FIELDS) + r")[\"']?(?:\s*[:=]\s*|\s+))"
    r"(?:\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s,;&}\])]+)",
    re.IGNORECASE,
)
# A run id or a timestamp, as ispagent writes them: a value of this shape is ours, never a secret.
_OURS = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{6}|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(?:[+-][0-9:]+|Z)?")
_OURS_SPLIT = re.compile(f"({_OURS.pattern})")
_LIKE_OURS = (
    "the secret holds a run id or a timestamp (like 20261206T010203-a1b2c3 or 2026-12-06T01:02), which "
    "ispagent never masks; choose another"
)
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class SecretRefused(ValueError):
    """A secret that cannot be masked safely; the caller says where it was read (an InputError line)."""


def too_short(text: str) -> str:
    return (
        f"a secret of {len(text)} characters is too short to keep out of logs and reports (masking it would "
        f"hide every word or number that holds it); use at least {MIN_SECRET_LENGTH} characters"
    )


_lock = threading.Lock()
_secrets: set[str] = set()
# Up to this many forms, `mask` looks for each with `in` (C's substring search): a few dozen cost less
# than one pass of a matcher. A run that reads an activation key for each of a thousand servers
# registers a thousand, and trying each then cost about 0.2 ms for every masked line, event and
# report value (bench/masking.py); past this many they go into Aho-Corasick automata, which find
# every one of them in one pass over the text, however many there are.
TRIED_ONE_BY_ONE = 64


class _Forms:
    """Every registered form, as `mask` reads them: one value, replaced whole on each registration,
    so a reader never sees half an update.

    The newest forms (up to TRIED_ONE_BY_ONE) are `tried` one by one, longest first; older ones sit
    in automata of doubling sizes (`levels`, largest first), merged as a binary counter carries: a
    form is built into an automaton about log2(forms / 64) times, not once per 64 registrations
    (20 000 keys took 54 s to register that way), and a text is scanned once per level."""

    def __init__(
        self,
        levels: tuple[tuple[frozenset[str], Any], ...] = (),
        tried: tuple[str, ...] = (),
        shortest: int | None = None,
    ) -> None:
        self.levels = levels
        self.tried = tried
        self.tried_lengths = tuple(-len(form) for form in tried)  # ascending: where the forms that fit begin
        self.shortest = shortest  # None: nothing registered

    def added(self, forms: set[str]) -> _Forms:
        shortest = min(len(form) for form in forms)
        shortest = shortest if self.shortest is None else min(shortest, self.shortest)
        tried = set(self.tried) | forms
        if len(tried) <= TRIED_ONE_BY_ONE:
            return _Forms(self.levels, tuple(sorted(tried, key=len, reverse=True)), shortest)
        levels, words = list(self.levels), frozenset(tried)
        while levels and len(levels[-1][0]) <= len(words):
            words |= levels.pop()[0]
        return _Forms((*levels, (words, _automaton(words))), (), shortest)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where registered forms occur in `text`, as (start, end), overlapping ones included."""
        if self.shortest is None or len(text) < self.shortest:
            return []
        found = [(end + 1 - length, end + 1) for _, automaton in self.levels for end, length in automaton.iter(text)]
        for index in range(bisect_left(self.tried_lengths, -len(text)), len(self.tried)):
            form = self.tried[index]
            at = text.find(form)
            while at >= 0:
                found.append((at, at + len(form)))
                at = text.find(form, at + 1)
        return found


def _automaton(forms: frozenset[str]) -> Any:
    # pyahocorasick: a C Aho-Corasick automaton; imported only by a run that registers this many.
    import ahocorasick

    automaton = ahocorasick.Automaton(ahocorasick.STORE_LENGTH)
    for form in forms:
        automaton.add_word(form)
    automaton.make_automaton()
    return automaton


_forms = _Forms()


def register_secret(value: object, *, refuse_short: bool = True) -> None:
    """Mark `value` as secret: from now on `mask` replaces it wherever it appears.

    Empty is ignored (the reader says what is missing); 1 to MIN_SECRET_LENGTH-1 characters raise
    SecretRefused, for the reader to refuse in one line that names where it was read. A value from
    an outside system (a key the partner account issued) is not ours to refuse: `refuse_short=False`
    registers it as before (forms of at least 4 characters).
    """
    global _forms
    text = str(value) if value is not None else ""
    if not text:
        return
    if len(text) < MIN_SECRET_LENGTH or _OURS.search(text):
        if refuse_short:
            raise SecretRefused(too_short(text) if len(text) < MIN_SECRET_LENGTH else _LIKE_OURS)
        if len(text) < _MIN_LENGTH:
            return
    forms = _forms_of(text)
    with _lock:
        new = forms - _secrets
        if not new:
            return
        _secrets.update(new)
        _forms = _forms.added(new)


def register_url_password(url: str) -> None:
    """Register the password of `url` (as written and percent-decoded): an error that quotes it
    outside the URL, as a database driver may, still masks it."""
    match = _URL_PASSWORD.search(url)
    if match:
        password = match[0][len(match["head"]) : -1]
        register_secret(password)
        register_secret(unquote(password))


def _forms_of(text: str) -> set[str]:
    """`text` as it appears in our output: a journal's JSON, a logged command line, a URL."""
    shell_once = text.replace("'", "'\"'\"'")
    quoted = (text, shell_once, shell_once.replace("'", "'\"'\"'"))
    forms = {quote(text, safe="")}
    for form in quoted:
        forms |= {form, json.dumps(form)[1:-1], json.dumps(form, ensure_ascii=False)[1:-1]}
    return {form for form in forms if len(form) >= _MIN_LENGTH}


def mask(text: str) -> str:
    """`text` with every registered secret and every URL's password replaced by `***`.

    Run ids and timestamps in it are left whole (a secret may not hold one: register_secret).
    Every character of every occurrence is hidden: secrets that overlap or touch become one `***`.
    """
    forms = _forms
    if (forms.shortest is None or len(text) < forms.shortest) and "://" not in text:
        return text  # no form fits: a report's thousands of ids, dates and names cost one test each
    spans = forms.spans(text)
    if not spans:
        return _url_masked(text)  # the common text: no secret in it, and no id to look for either
    if _OURS.search(text):
        parts = _OURS_SPLIT.split(text)  # odd indexes are the ids and times
        return "".join(part if index % 2 else _mask_secrets(part) for index, part in enumerate(parts))
    return _url_masked(_masked_spans(text, spans))


def _mask_secrets(text: str) -> str:
    spans = _forms.spans(text)
    return _url_masked(_masked_spans(text, spans) if spans else text)


def _url_masked(text: str) -> str:
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda match: f"{match['head']}{MASK}@", text)


def _masked_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each stretch that `spans` cover (spans that overlap or touch are one) replaced by MASK."""
    spans.sort()
    parts, kept = [], 0
    start, end = spans[0]
    for next_start, next_end in spans[1:]:
        if next_start <= end:
            end = max(end, next_end)
            continue
        parts += [text[kept:start], MASK]
        kept, (start, end) = end, (next_start, next_end)
    parts += [text[kept:start], MASK, text[end:]]
    return "".join(parts)


def masked(data: Any) -> Any:
    """JSON-ready `data` (dicts, lists, scalars) with every string passed through `mask`, and the
    value of every secret field (`activation_key`, `password`...) replaced whole.

    Masking the data, not its JSON (or HTML, XML) text, also catches a secret that the encoding would
    escape, and never touches structure: keys, numbers and PLAIN_FIELDS (ids, times) stay as they are."""
    if isinstance(data, str):
        return mask(data)  # which keeps a run id or a timestamp whole
    if isinstance(data, dict):
        return {key: _masked_field(key, value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [masked(item) for item in data]
    return data


def _masked_field(key: Any, value: Any) -> Any:
    # A report's 20 000 expiring licenses are 100 000 fields: a field name is classified once, and
    # a text value goes straight to `mask`.
    kind = _field_kinds.get(key)
    if kind is None:
        name = str(key).lower()
        kind = "secret" if name in SECRET_FIELDS else "plain" if name in PLAIN_FIELDS else ""
        if len(_field_kinds) < FIELD_KINDS_KEPT:  # dicts keyed by host names pass here too
            _field_kinds[key] = kind
    if kind == "secret" and value is not None:
        return MASK
    if kind == "plain":
        return value
    return mask(value) if type(value) is str else masked(value)


# field name -> "secret", "plain" or "" (masked as any value): the names a run writes are a few dozen
_field_kinds: dict[Any, str] = {}
FIELD_KINDS_KEPT = 4096


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """`value` as a message may echo it: masked, escaped, on one line, at most `limit` characters,
    and quoted when it is text (`'lte'`; a number reads as itself: `644`)."""
    text = _SECRET_FIELD.sub(lambda match: match["head"] + MASK, mask(str(value)))
    escaped = printable(text, one_line=True, backslashes=True)
    if len(escaped) > limit:
        escaped = escaped[: limit - 1] + "…"
    return f"'{escaped}'" if isinstance(value, str) else escaped


def printable(text: str, *, one_line: bool = False, backslashes: bool = False) -> str:
    """`text` safe for a terminal and a line-based log: masked, control and format characters
    (escape sequences, bidi overrides) written as escapes; with `one_line`, line breaks too."""
    return escape_controls(mask(text), one_line=one_line, backslashes=backslashes)


def escape_controls(text: str, *, one_line: bool = False, backslashes: bool = False) -> str:
    """printable() of a text already masked (a line of a masked block: the host log)."""
    if backslashes:
        text = text.replace("\\", "\\\\")
    if text.isprintable():  # the common line, kept whole: escaping char by char cost ~1 ms per host of a run
        return text
    return "".join(_escaped(char, one_line) for char in text)


def _escaped(char: str, one_line: bool) -> str:
    if char in "\n\t" and not one_line:
        return char
    if char.isprintable() or char == " ":
        return char
    if char in _ESCAPES:
        return _ESCAPES[char]
    if unicodedata.category(char) == "Zs":  # spaces other than " " (no-break, em...) are harmless
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def forget_secrets() -> None:
    """Clear the registry (tests only)."""
    global _forms
    with _lock:
        _secrets.clear()
        _forms = _Forms()
