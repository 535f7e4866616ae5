"""One mask for every output: registered secrets in every form our output gives them, URL passwords by
structure, and values echoed in messages escaped, on one line and shortened."""

from __future__ import annotations

import itertools
import json
import shlex
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.secrets import SHOWN_LIMIT, SecretRefused, forget_secrets, mask, masked, printable, register_secret, shown


@pytest.fixture(autouse=True)
def clean_registry():
    forget_secrets()
    yield
    forget_secrets()


def test_registered_secrets_are_masked_longest_first():
    register_secret("abcdefgh")
    register_secret("abcdefgh-1234")
    assert mask("key abcdefgh-1234 and abcdefgh, x") == "key *** and ***, x"
    forget_secrets()
    assert mask("abcdefgh") == "abcdefgh"


@pytest.mark.parametrize("short", ["x", "2026", "status", "1234567"])
def test_a_secret_too_short_to_mask_is_refused_not_masked_into_every_number(short):
    with pytest.raises(SecretRefused, match=f"{len(short)} characters is too short"):
        register_secret(short)
    assert mask(f"run 20261206T010203-abcdef {short}") == f"run 20261206T010203-abcdef {short}"
    register_secret(short, refuse_short=False)  # a key the partner account issued is not ours to refuse


@pytest.mark.parametrize(
    "url,expected",
    [
        ("postgresql+psycopg://ledger:LEDGERPW@127.0.0.1/db", "postgresql+psycopg://ledger:***@127.0.0.1/db"),
        ("https://partner:PASSWORD@api.example.com/billmgr", "https://partner:***@api.example.com/billmgr"),
        ("http://u:p@ss@w0rd@198.18.0.1:8/x", "http://u:***@198.18.0.1:8/x"),  # an unencoded @ hides nothing
        ("http://u:pa%40ss@h/", "http://u:***@h/"),
        ("https://api.example.com:443/billmgr", "https://api.example.com:443/billmgr"),  # no userinfo, nothing to mask
        ("ssh://jump@bastion:2222", "ssh://jump@bastion:2222"),  # a user alone is not a secret
    ],
)
def test_a_url_password_is_masked_by_structure_without_registering(url, expected):
    assert mask(f"ledger {url}: connection refused") == f"ledger {expected}: connection refused"
    assert json.loads(mask(json.dumps({"url": url}))) == {"url": expected}


@given(
    user=st.text(st.characters(blacklist_characters=":/@?#'\"<>", blacklist_categories=("Z", "C")), max_size=12),
    password=st.text(st.characters(blacklist_categories=("Z", "C"), blacklist_characters="'\"<>"), min_size=1),
)
@settings(max_examples=300)
def test_no_url_password_survives_the_mask(user, password):
    text = f"cannot connect to postgresql+psycopg://{user}:{password}@db.example.com/ledger (timeout)"
    out = mask(text)
    assert out.endswith("@db.example.com/ledger (timeout)")
    assert out.startswith(f"cannot connect to postgresql+psycopg://{user}:***@")


@pytest.mark.parametrize("secret", ["it's-secret", 'quo"te\\back', "pw preset=admin", "ключ-секрет", "a b'c\"d-e"])
def test_a_secret_is_masked_in_json_and_in_shell_quoted_command_lines(secret):
    register_secret(secret)
    line = shlex.join(["mgrctl", f"passwd={secret}"])
    sudo_line = shlex.join(["sudo", "-n", "--", "sh", "-c", line])
    for text in (
        line,
        sudo_line,
        json.dumps({"line": line}),
        json.dumps({"line": sudo_line}, ensure_ascii=False),
        quote(secret, safe=""),
    ):
        assert secret not in mask(text) and "***" in mask(text)


def test_masked_walks_json_ready_data():
    register_secret("s3cret-value")
    data = {"vars": {"key": "s3cret-value", "url": "https://u:pw12@h/x", "n": 3, "list": ["a s3cret-value"]}}
    assert masked(data) == {"vars": {"key": "***", "url": "https://u:***@h/x", "n": 3, "list": ["a ***"]}}


@pytest.mark.parametrize(
    "value,expected",
    [
        ("lte", "'lte'"),
        ("web1\n", "'web1\\n'"),
        ("\x1b[31mred\x1b[0m", "'\\x1b[31mred\\x1b[0m'"),
        ("abc\u202edef", "'abc\\u202edef'"),  # a bidi override would reorder the terminal line
        ("C:\\path", "'C:\\\\path'"),
        ("x" * 200, "'" + "x" * (SHOWN_LIMIT - 1) + "…'"),
        ("web1 address 198.18.0.2 activation_key KEY-1234-abcd", "'web1 address 198.18.0.2 activation_key ***'"),
        ("{web1: {vars: {activation_key: 'KEY 1234'}}}", "'{web1: {vars: {activation_key: ***}}}'"),
    ],
)
def test_shown_value_is_quoted_escaped_one_line_short_and_masked(value, expected):
    assert shown(value) == expected


@given(st.text())
@settings(max_examples=500)
def test_shown_is_always_one_short_line_without_control_characters(value):
    out = shown(value)
    assert len(out) <= SHOWN_LIMIT + 2 and out.startswith("'") and out.endswith("'")
    assert all(
        char.isprintable()
        or char == " "
        or char.isspace()
        and char not in "\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"
        for char in out
    )
    assert len(out.splitlines()) == 1


@given(st.text())
@settings(max_examples=300)
def test_printable_keeps_lines_and_tabs_and_escapes_every_other_control(text):
    out = printable(text)
    assert all(
        char.isprintable()
        or char in " \n\t"
        or char.isspace()
        and char.isprintable() is False
        and char not in "\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"
        for char in out
    )
    assert "\x1b" not in out and "\r" not in out
    assert "\n" not in printable(text, one_line=True)


@given(st.text(), st.booleans(), st.booleans())
@settings(max_examples=300)
def test_printable_text_kept_whole_reads_as_escaping_each_character_would(text, one_line, backslashes):
    """The fast path (all printable: returned as is) gives what the character-by-character escape gives."""
    from agent.secrets import _escaped

    each = mask(text).replace("\\", "\\\\") if backslashes else mask(text)
    assert printable(text, one_line=one_line, backslashes=backslashes) == "".join(
        _escaped(char, one_line) for char in each
    )


_SECRET_TEXT = st.text(alphabet="ab'\"\\ %é", min_size=1, max_size=10)


def every_occurrence_masked(text: str) -> str:
    """The reference: each run of characters that lies in an occurrence of any registered form, as `***`."""
    import agent.secrets

    hidden = [False] * len(text)
    for form in agent.secrets._secrets:
        for start in range(len(text) - len(form) + 1):
            if text.startswith(form, start):
                hidden[start : start + len(form)] = [True] * len(form)
    runs = itertools.groupby(zip(text, hidden), key=lambda pair: pair[1])
    return "".join("***" if masked_run else "".join(char for char, _ in run) for masked_run, run in runs)


@given(
    st.lists(_SECRET_TEXT, min_size=1, max_size=6),
    st.lists(st.one_of(st.integers(0, 5), _SECRET_TEXT), max_size=12),
)
@settings(max_examples=300, deadline=None)
def test_mask_tries_only_the_forms_that_fit_and_hides_every_occurrence(secrets, pieces):
    """mask() skips the registered forms longer than the text, and hides every character of every
    occurrence of the others: texts of whole secrets, their fragments and their overlaps."""
    for secret in secrets:
        register_secret(secret, refuse_short=False)
    text = "".join(secrets[piece % len(secrets)] if isinstance(piece, int) else piece for piece in pieces)
    assert mask(text) == every_occurrence_masked(text)
    for start in range(len(text)):
        fragment = text[start : start + 9]
        assert mask(fragment) == every_occurrence_masked(fragment)


@given(
    st.lists(st.text(alphabet="abc-1'", min_size=4, max_size=12), min_size=1, max_size=40),
    st.lists(st.one_of(st.integers(0, 1000), st.text(alphabet="abc-1' x", max_size=10)), max_size=16),
)
@settings(max_examples=60, deadline=None)
def test_a_run_with_thousands_of_secrets_masks_them_all_in_one_pass(secrets, pieces):
    """Past TRIED_ONE_BY_ONE forms (a key read for each of many servers) mask() finds them with an
    automaton, and still hides exactly what the reference hides, the newest forms included."""
    import agent.secrets

    keys = [f"{3100000 + n}-{n:08x}" for n in range(3 * agent.secrets.TRIED_ONE_BY_ONE)]
    for key in keys:
        register_secret(key)
    for secret in secrets:  # after the automaton was made: some are looked for one by one
        register_secret(secret, refuse_short=False)
    every = keys + secrets
    text = "".join(every[piece % len(every)] if isinstance(piece, int) else piece for piece in pieces)
    assert len(agent.secrets._forms.tried) <= agent.secrets.TRIED_ONE_BY_ONE
    assert agent.secrets._forms.levels  # the older forms are in automata
    assert mask(text) == every_occurrence_masked(text)
