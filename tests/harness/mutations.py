"""The one mutator of the shipped examples: what a careless user, an editor or a bad merge does to a file.

Used by the fuzz harness (harness/fuzz.py, cases drawn from a seeded random.Random) and by the
property tests (hypothesis: `st.randoms()` gives the same interface, shrinkable), so both try the
same damage: types, control characters, bytes that are not UTF-8, a byte order mark, aliases and
merge keys, huge values, duplicate keys, deep nesting, digits of other scripts.
"""

from __future__ import annotations

import random
import re
import shlex
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The recorded `vagrant ssh-config` names key files of the machine it was recorded on; cases name these.
VAGRANT_KEYS = Path(tempfile.gettempdir()) / "ispagent-fuzz-vagrant-keys"
MAX_CASE_BYTES = 80 * 1024 * 1024  # past the readers' 64 MiB limit, so that refusal is tried too

# ---------------------------------------------------------------- what a mutation puts in

CONTROL = [
    b"\x00",
    b"\x07",
    b"\x08",
    b"\x1b[31m",
    b"\x7f",
    b"\r",
    b"\t",
    b"\x0b",
    b"\x0c",
    "\x85".encode(),
    "\u2028".encode(),
    "\u2029".encode(),
    "\ufeff".encode(),
    "\u202e".encode(),
    b"\x9b".decode("latin-1").encode(),
]
NOT_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xfe\xff", b"\x80", b"\xf4\x90\x80\x80"]
OTHER_DIGITS = [
    d.encode() for d in ("\u0663", "\u00b2", "\uff12", "\u07c1", "\u0e53", "\U0001d7d7", "\u2460", "\u0969")
]
YAML_TOKENS = [
    b":",
    b": ",
    b"- ",
    b"  ",
    b"\n",
    b"#",
    b"&a ",
    b"*a",
    b"<<: *a",
    b"!x ",
    b"!!int ",
    b"!!python/object:os.system ",
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b"'",
    b"? ",
    b"|",
    b">",
    b"%",
    b"@",
    b"`",
    b",",
    b"~",
    b"---\n",
    b"...\n",
    b"\\",
    b"\\x",
    b"\\u",
    b"&",
    b"*",
]
YAML_VALUES = [
    b"2026-13-45",
    b"2026-02-30",
    b"!!int abc",
    b"!!bool maybe",
    b"!!float x",
    b"!x y",
    b"!vault |\n  abc",
    b"!!binary aGVsbG8=",
    b"!!python/name:os.system",
    b"!!set {a, b}",
    b"!!omap [a: 1]",
    b"*a",
    b"*nosuch",
    b"&a [*a]",
    b"&a {k: *a}",
    b"{<<: *a}",
    b"{<<: x}",
    b"{<<: [x]}",
    b"<<",
    b"=",
    b"~",
    b"null",
    b"[]",
    b"{}",
    b"[a, b]",
    b"{a: 1, a: 2}",
    b"''",
    b'""',
    b"-1",
    b"0",
    b"-0",
    b"1e999",
    b"-1e999",
    b".nan",
    b".inf",
    b"0x1F",
    b"0o17",
    b"017",
    b"0b101",
    b"1_000",
    b"1:30",
    b"yes",
    b"no",
    b"on",
    b"8.2",
    b"1.5",
    b"3.",
    b"99999999999999999999999",
    b"9" * 5000,
    b"x" * 100_000,
    b'"' + b"\\n" * 3 + b'line"',
    b'"a\\nb"',
    b'"\\x1b[31mred"',
    b'"\\0"',
    b'"\\t"',
    b"|\n  one\n  two",
    b">-\n  folded",
    b"[" * 150 + b"]" * 150,
    b"[" * 99 + b"]" * 99,
    b"{a: " * 120 + b"1" + b"}" * 120,
    b"? [a]\n: b",
    b"? {a: 1}\n: b",
    b"true",
    b"false",
    b"12:30:45",
    b"2001-12-14t21:59:43.10-05:00",
]
YAML_VALUES += [digit * 2 for digit in OTHER_DIGITS] + [b"1" + digit for digit in OTHER_DIGITS]
YAML_KEYS = [
    b"<<",
    b"? x",
    b"[a]",
    b"{a: 1}",
    b"&k name",
    b"*k",
    b"!x key",
    b"~",
    b"null",
    b"1",
    b"1.5",
    b"true",
    b"'a\\nb'",
    b'"a\\nb"',
    b"x" * 5000,
    b"-",
]

BOMB = b"".join(
    [b"lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    + [f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n".encode() for i in range(1, 9)]
)

CSV_VALUES = [
    b"",
    b" ",
    b"2026-02-30",
    b"2026-1-5",
    b"26-01-05",
    b"05.01.2026",
    b"9999-12-31",
    b"0000-01-01",
    b"2026-01-05T10:00",
    "\uff12\uff10\uff12\uff16-01-05".encode(),
    "\u0662\u0660\u0662\u0666-01-05".encode(),
    b"1e999",
    b"1E3",
    b"NaN",
    b"Infinity",
    b"-1",
    b"-0",
    b"0",
    b"10,00",
    b"1 000",
    b"1000000.01",
    b"1000000",
    b"0.001",
    b".5",
    b"5.",
    b"+5",
    b"\xd9\xa3",
    b"\xc2\xb2",
    b"\xef\xbc\x92",
    b"x" * 200_000,
    b"9" * 5000,
    b'"unclosed',
    b'"a\nb"',
    b'"a""b"',
    b'"' + b"x" * 150_000 + b'"',
    b'=HYPERLINK("x")',
    b"\x00",
    b"\r",
    b"\x1b[2J",
    b"ACTIVATION",
    b"Renewal",
    b" payment ",
    b"refund",
    b"LITE",
    b"Pro ",
    b"yearly",
    b"3100001",
    b"3100001/../x",
    b"-x",
    b"a" * 65,
    b"\xd0\xbb\xd0\xb8\xd1\x86",
    b"31 00001",
    b"null",
]
CSV_HEADERS = [
    b"date,license_id,edition,period,kind",
    b"Date,License_ID,Edition,Period,Kind,Price",
    b"date;license_id;edition;period;kind;price",
    b"\xef\xbb\xbfdate,license_id,edition,period,kind,price",
    b"price,date,license_id,edition,period,kind",
    b"",
    b"date,license_id,edition,period,kind,price,extra",
]

VAGRANT_VALUES = {
    b"host": [
        b"",
        b"*",
        b"web 1",
        b"web1 web2",
        b"\xc3\xbc",
        "\u0663".encode(),
        b"a" * 300,
        b"-oProxyCommand=x",
        b"host#1",
        b"../etc",
        b'"quoted name"',
        b'"a b"',
        b"name: x",
        b"&a",
        b"*a",
        b"!x",
        b"[x]",
        b"{x}",
        b"null",
        b"true",
        b"1.5",
        b"127.1",
        b"2130706433",
        b"~",
        b"-",
        b"default",
        b"debian12",
        b"a,b",
        b"web1.",
        b".web1",
        b"x\\y",
        b"%h",
        b"\t",
    ],
    b"hostname": [
        b"",
        b"::1",
        b"[::1]",
        b"not an ip",
        b"1.2.3.4.5",
        b"127.1",
        b"0x7f.1",
        b"2130706433",
        b"a" * 300,
        "\u0661\u0662\u0667.0.0.1".encode(),
        b"127.0.0.1\\n",
        b"-oProxyCommand=x",
        b"%h",
        b"fe80::1%eth0",
        b"localhost",
        b"host name",
    ],
    b"port": [
        b"",
        b"\xef\xbc\x92\xef\xbc\x92",
        "\u0662\u0662".encode(),
        b"\xc2\xb2",
        b"99999",
        b"65536",
        b"0",
        b"-1",
        b"22 22",
        b"0x16",
        b"022",
        b"1e3",
        b"2222.0",
        b"+22",
        b"9" * 400,
        b"22\x00",
    ],
    b"user": [b"", b"root", b"a b", b"-oX", b"\xc3\xbc", b"a" * 300, b"user:pw", b"$(id)", b"null", b"007"],
    b"identityfile": [
        b"",
        b'"/path with spaces/key"',
        b'"unclosed',
        b"~/.ssh/id",
        b"/dev/zero",
        b"a\\nb",
        b"%d/key",
        b"x" * 5000,
        b'""',
    ],
}
VAGRANT_KEYWORDS = [
    b"Host",
    b"HOST",
    b"host",
    b"HostName",
    b"Port",
    b"PORT",
    b"User",
    b"IdentityFile",
    b"Match all",
    b"Include other",
    b"Port=2200",
    b"Port = 2200",
    b"Port\t2200",
    b"Host=a",
    b"Host  =  a",
    b"#Host x",
    b"  # comment",
    b"Hostname\t\t127.0.0.1",
    b"ProxyCommand nc %h %p",
    b"IdentitiesOnly yes",
]


# `schedule add`'s words (one a line in a case): options, and values a unit or a cron line could misread.
SCHEDULE_WORDS = [
    b"--at",
    b"25:00",
    b"2:5",
    b"02:30\n",
    b"--name",
    b"Nightly",
    b"a" * 60,
    b"../x",
    b"-x",
    b"--cron",
    b"--print",
    b"--only-drifted",
    b"--state-dir",
    b"--env-file",
    b"--metrics-file",
    b"--report-html",
    b"--keep-runs",
    b"0",
    b"-1",
    b"99999999999999999999",
    b"--random-delay",
    b"1441",
    b"--ispagent",
    b"--",
    b"-",
    b"",
    b" ",
    b"rel/dir",
    b"/srv/a b",
    b"/srv/$HOME",
    b"/srv/50%",
    b"/srv/x\\",
    b"/srv/x\\%",
    b"/srv/'q'\"",
    b"/srv/`id`",
    b"/srv/;id",
    b"/srv/x\ny",
    b"/srv/\x00",
    b"/srv/\xff",
    b"/srv/\xe2\x80\xa8",
    b"/srv/\xc2\x85",
    b"/srv/\x1b[31m",
    b"/srv/" + b"x" * 5000,
    b"/dev/null",
    b"playbooks/reprovision.yaml",
    b"playbooks",
    b"/",
    b"--help",
    b"-h",
    b"--version",
]
# Directory names given to `ispagent init DIR` (relative: a case never names a place outside its sandbox).
INIT_WORDS = [
    b"..",
    b".",
    b"../..",
    b"",
    b" ",
    b"-",
    b"--help",
    b"a/../b",
    b"fleet/",
    b"fleet//x",
    b"x" * 300,
    b"x/" * 2100,
    b"\x00",
    b"\xff",
    b"~",
    b"fleet\n",
    b"\x1b[31m",
    b"\xe2\x80\xae",
    b"inventory.yaml",
    b"playbooks",
    b"$HOME",
    b"`id`",
    b"a b",
    b"'q'\"",
    b"*",
    b"x\\y",
    b".ispagent-init-x",
]
# Lines of an env file: what systemd and a shell could read apart, and what neither takes.
ENV_LINES = [
    b"A=back\\slash",
    b"A=x\\",
    b"export A=1",
    b"A='half",
    b'A="half',
    b"A='x'y'",
    b'A=a"b"c',
    b"=x",
    b"A",
    b"A==",
    b" A = b ",
    b"A=$(id)",
    b"A=`id`",
    b"A=$$",
    b"A=;touch /tmp/x",
    b"1A=x",
    b"A-B=x",
    b"A.B=x",
    b"A=x\x00y",
    b"A=\x1b[31m",
    b"A=\xe2\x80\xa8",
    b"#A=1",
    b";A=1",
    b"A=" + b"x" * 100_000,
    b"\xc3\xbc=1",
    b"A=\xff",
    b"A='two words'",
    b'A="two words"',
    b"A=''",
    b"A=",
    b"A = 'x' ",
    b"\t A=1",
    b"ISPAGENT_STATE_DIR=/elsewhere",
    b"PATH=/nowhere",
    b"A=1\r",
    b"[Section]",
    b"A=%h",
    b"A=${HOME}",
]
# Values of an Ansible INI host line or :vars section, and lines of one.
ANSIBLE_VALUES = [
    b"{{ x }}",
    b"{% if %}",
    b"eighty",
    b"99999",
    b"0",
    b"-1",
    b"22.5",
    b'"a\\nb"',
    b'"a\\ndefaults: x"',
    b"'x'",
    b"''",
    b"yes",
    b"maybe",
    b"local",
    b"winrm",
    b"~/.ssh/nope",
    b"/dev/null",
    b"::1",
    b"fe80::1%eth0",
    b"198.18.0.7 extra=1",
    b"a#b",
    b"a;b",
    b"[1, 2]",
    b"{a: 1}",
    b"!vault |",
    b"None",
    "\u0663\u0662".encode(),
    b"x" * 5000,
]
ANSIBLE_LINES = [
    b"[g:children]",
    b"[g:vars]",
    b"[web:children]\nweb",
    b"[db:children]\npanels",
    b"[all:vars]",
    b"[panels:vars]\nedition=enterprise",
    b"web[1:30]",
    b"web[a:c]",
    b"web[3:1]",
    b"web[1:2:0]",
    b"web1 ansible_connection=local",
    b"web1 ansible_host=198.18.0.8",
    b"db1 ansible_port=2222",
    b'web1 ansible_become_user="a\\ndefaults:\\n  gateway: x@203.0.113.6"',
    b"[",
    b"[]",
    b"[a b]",
    b"x=1",
    b"web1 fqdn=web1.lab.example",
    b"web1 activation_key=short",
    b"web2 edition=pro period=x",
    b"- web1",
    b"web1: {}",
    b"web1 ansible_ssh_private_key_file=/nonexistent/key",
]
# Values of a run record (run.json) or a journal event: ids and paths that would point elsewhere.
RECORD_VALUES = [
    b'"../../victim"',
    b'"/tmp"',
    b'"20261101T020000-00abcd/../.."',
    b'"."',
    b'""',
    b"null",
    b"true",
    b"1e999",
    b"-1",
    b"[]",
    b"{}",
    b'"\\n20261101T020000-00beef  finished"',
    b'"\\u001b[2J"',
    b'"running"',
    b'"finished"',
    b'"interrupted"',
    b'"2026-13-45T99:99:99"',
    b'"x"',
    b"99999999999999999999",
    b'"' + b"x" * 100_000 + b'"',
    b"[" * 5000 + b"]" * 5000,
    b'{"a": ' * 200 + b"1" + b"}" * 200,
]

# Values and lines of a Prometheus textfile (the previous --metrics-file, which a run reads its last success from).
METRIC_VALUES = [
    b"NaN",
    b"+Inf",
    b"-Inf",
    b"1e999",
    b"-1e999",
    b"-1",
    b"x",
    b"",
    b"1.5.5",
    b"9" * 400,
    b"0x10",
    b"1_000",
    b"\xff",
    b"1 2 3",
    b"{",
    b"1764122400 1764122400000",
    b"\x00",
    "\u0663".encode(),
]
METRIC_LINES = [
    b"# TYPE ispagent_last_success_timestamp_seconds counter",
    b"# HELP",
    b"# TYPE x nonsense",
    b"ispagent_last_success_timestamp_seconds 1e999",
    b"ispagent_last_success_timestamp_seconds NaN",
    b"ispagent_last_success_timestamp_seconds -1",
    b"ispagent_last_success_timestamp_seconds",
    b'ispagent_run_hosts{result="ok} 1',
    b'x{a="\\"} 1',
    b'x{a="\n"} 1',
    b"ispagent_run_hosts{} 1",
    b"ispagent_last_success_timestamp_seconds 1 2",
    b"{} 1",
    b"# EOF",
    b"x" * 5000 + b" 1",
]


def _pick(rng: random.Random, choices: list):
    return choices[rng.randrange(len(choices))]


def _insertion(rng: random.Random, kind: str) -> bytes:
    roll = rng.random()
    if roll < 0.25:
        return _pick(rng, CONTROL + NOT_UTF8 + OTHER_DIGITS)
    if roll < 0.35:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
    if roll < 0.45:
        return chr(rng.randrange(0x20, 0x3000)).encode("utf-8", "replace")
    if kind == "billing":
        return _pick(rng, [b",", b'"', b"\n", b"\r\n", b"\r", b" ", b";", b"-", b".", b"0", b"9"])
    if kind == "vagrant":
        return _pick(rng, [b" ", b"=", b"\n", b'"', b"#", b"\t", b"*", b"0", b"9", b"Host ", b"Port "])
    return _pick(rng, YAML_TOKENS)


# ------------------------------------------------------------------------- mutation operators


def _insert(rng, data: bytes, kind: str) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + _insertion(rng, kind) + data[at:]


def _delete(rng, data: bytes, kind: str) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + data[at + rng.randint(1, 16) :]


def _truncate(rng, data: bytes, kind: str) -> bytes:
    return data[: rng.randint(0, len(data))]


def _lines_op(change):
    def operator(rng, data: bytes, kind: str) -> bytes:
        lines = data.splitlines(keepends=True) or [b""]
        index = rng.randrange(len(lines))
        return b"".join(lines[:index] + change(rng, lines[index], kind) + lines[index + 1 :])

    return operator


def _duplicate_line(rng, line: bytes, kind: str) -> list[bytes]:
    return [line, line] if line.endswith(b"\n") else [line + b"\n", line]


def _delete_line(rng, line: bytes, kind: str) -> list[bytes]:
    return []


def _reindent(rng, line: bytes, kind: str) -> list[bytes]:
    stripped = line.lstrip(b" ")
    indent = len(line) - len(stripped)
    return (
        [b" " * max(0, indent + rng.choice([-4, -2, -1, 1, 2, 4])) + stripped]
        if rng.random() < 0.8
        else [b"\t" + stripped]
    )


def _yaml_value(rng, line: bytes, kind: str) -> list[bytes]:
    key, colon, _ = line.partition(b": ")
    if not colon:
        if line.rstrip().endswith(b":"):  # a block's key: give it a scalar or flow value instead
            return [line.rstrip() + b" " + _pick(rng, YAML_VALUES) + b"\n"]
        stripped = line.lstrip()
        if stripped.startswith(b"- "):  # a list item
            return [line[: len(line) - len(stripped)] + b"- " + _pick(rng, YAML_VALUES) + b"\n"]
        return [line]
    value = _pick(rng, YAML_VALUES)
    if b"\n" in value:  # a block scalar's lines go below the key, indented past it
        indent = b" " * (len(key) - len(key.lstrip()) + 2)
        value = value.replace(b"\n", b"\n" + indent)
    return [key + colon + value + b"\n"]


def _yaml_key(rng, line: bytes, kind: str) -> list[bytes]:
    key, colon, rest = line.partition(b":")
    if not colon:
        return [line]
    indent = key[: len(key) - len(key.lstrip())]
    return [indent + _pick(rng, YAML_KEYS) + colon + rest]


def _merge_key(rng, data: bytes, kind: str) -> bytes:
    """An anchor on one block mapping and `<<: *m` (or a broken variant) in another."""
    lines = data.splitlines(keepends=True)
    blocks = [i for i, line in enumerate(lines) if re.match(rb"^\s*[\w.-]+:\s*(#.*)?$", line)]
    if not blocks:
        return data
    anchored = _pick(rng, blocks)
    lines[anchored] = lines[anchored].split(b"#")[0].rstrip() + b" &m\n"
    target = rng.randrange(len(lines))
    line = lines[target]
    indent = line[: len(line) - len(line.lstrip())]
    merge = _pick(
        rng,
        [
            b"<<: *m",
            b"<<: [*m, *m]",
            b"<<: *nosuch",
            b"<<: x",
            b"<<: [x]",
            b"<<: {a: 1}",
            b"<<: *m\n" + indent + b"<<: *m",
        ],
    )
    lines.insert(target, indent + merge + b"\n")
    return b"".join(lines)


def _alias_bomb(rng, data: bytes, kind: str) -> bytes:
    return data.rstrip(b"\n") + b"\n" + BOMB if rng.random() < 0.5 else BOMB + data


def _deep_nesting(rng, data: bytes, kind: str) -> bytes:
    depth = _pick(rng, [90, 101, 150, 1000, 20_000])
    if rng.random() < 0.5:
        nested = b"".join(b"  " * level + b"k:\n" for level in range(depth)) + b"  " * depth + b"v\n"
    else:
        nested = b"deep: " + b"[" * depth + b"]" * depth + b"\n"
    return data.rstrip(b"\n") + b"\n" + nested


def _bom(rng, data: bytes, kind: str) -> bytes:
    return _pick(rng, [b"\xef\xbb\xbf", b"\xef\xbb\xbf\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]) + data


def _line_endings(rng, data: bytes, kind: str) -> bytes:
    return data.replace(b"\n", _pick(rng, [b"\r\n", b"\r", "\u2028".encode(), "\x85".encode()]))


def _utf16(rng, data: bytes, kind: str) -> bytes:
    return data.decode("utf-8", "replace").encode(_pick(rng, ["utf-16", "utf-16-le", "latin-1"]), "replace")


def _huge(rng, data: bytes, kind: str) -> bytes:
    """Many copies of one line or of the whole text: a file far bigger than the example."""
    lines = data.splitlines(keepends=True) or [b"\n"]
    line = _pick(rng, lines)
    return data + line * rng.choice([100, 2000]) if rng.random() < 0.7 else data * rng.choice([10, 100])


def _csv_cell(rng, line: bytes, kind: str) -> list[bytes]:
    cells = line.rstrip(b"\r\n").split(b",")
    cells[rng.randrange(len(cells))] = _pick(rng, CSV_VALUES)
    return [b",".join(cells) + b"\n"]


def _csv_shape(rng, line: bytes, kind: str) -> list[bytes]:
    cells = line.rstrip(b"\r\n").split(b",")
    roll = rng.random()
    if roll < 0.3:
        cells.insert(rng.randint(0, len(cells)), _pick(rng, CSV_VALUES))
    elif roll < 0.6 and len(cells) > 1:
        del cells[rng.randrange(len(cells))]
    else:
        rng.shuffle(cells)
    return [b",".join(cells) + b"\n"]


def _csv_header(rng, data: bytes, kind: str) -> bytes:
    _, newline, rest = data.partition(b"\n")
    return _pick(rng, CSV_HEADERS) + newline + rest


def _vagrant_value(rng, line: bytes, kind: str) -> list[bytes]:
    stripped = line.strip()
    keyword, _, _ = stripped.partition(b" ")
    values = VAGRANT_VALUES.get(keyword.lower())
    if values is None:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    return [indent + keyword + b" " + _pick(rng, values) + b"\n"]


def _vagrant_keyword(rng, line: bytes, kind: str) -> list[bytes]:
    return (
        [line, b"  " + _pick(rng, VAGRANT_KEYWORDS) + b"\n"]
        if rng.random() < 0.5
        else [_pick(rng, VAGRANT_KEYWORDS) + b"\n"]
    )


def _vagrant_block(rng, data: bytes, kind: str) -> bytes:
    """A Host block repeated (two machines of one name) or a lone Host line."""
    blocks = re.split(rb"(?m)^(?=Host )", data)
    blocks = [block for block in blocks if block]
    block = _pick(rng, blocks)
    return data + (block if rng.random() < 0.7 else b"Host lonely\n")


def _word(rng, line: bytes, kind: str) -> list[bytes]:
    """A `schedule add` word replaced, or another put before it."""
    word = _pick(rng, SCHEDULE_WORDS)
    return [word + b"\n", line] if rng.random() < 0.5 else [word + b"\n"]


def _init_word(rng, data: bytes, kind: str) -> bytes:
    """The directory replaced by a word, or a word put before or after it as a path component."""
    word, roll = _pick(rng, INIT_WORDS), rng.random()
    return word if roll < 0.4 else word + b"/" + data if roll < 0.7 else data + b"/" + word


def _env_line(rng, line: bytes, kind: str) -> list[bytes]:
    return [_pick(rng, ENV_LINES) + b"\n"] if rng.random() < 0.6 else [line, _pick(rng, ENV_LINES) + b"\n"]


def _ini_value(rng, line: bytes, kind: str) -> list[bytes]:
    """One `key=value` of an INI host line or :vars line given another value."""
    pairs = [match.span(1) for match in re.finditer(rb"=(\S*)", line)]
    if not pairs:
        return [line]
    start, end = _pick(rng, pairs)
    return [line[:start] + _pick(rng, ANSIBLE_VALUES) + line[end:]]


def _ini_line(rng, line: bytes, kind: str) -> list[bytes]:
    return [line, _pick(rng, ANSIBLE_LINES) + b"\n"] if rng.random() < 0.7 else [_pick(rng, ANSIBLE_LINES) + b"\n"]


def _record_value(rng, data: bytes, kind: str) -> bytes:
    """One JSON value (after a `": `) of a run record or event replaced."""
    values = [match.end() for match in re.finditer(rb'": ', data)]
    if not values:
        return data
    at = _pick(rng, values)
    end = re.compile(rb'"(?:[^"\\]|\\.)*"|[^,}\]]*').match(data, at).end()
    return data[:at] + _pick(rng, RECORD_VALUES) + data[end:]


def _metric_value(rng, line: bytes, kind: str) -> list[bytes]:
    """A sample's value replaced (a line that is not a comment: its last word)."""
    if line.startswith(b"#") or b" " not in line:
        return [line]
    name, _, value = line.rstrip(b"\n").rpartition(b" ")
    return [name + b" " + _pick(rng, METRIC_VALUES) + b"\n"]


def _metric_line(rng, line: bytes, kind: str) -> list[bytes]:
    return [line, _pick(rng, METRIC_LINES) + b"\n"] if rng.random() < 0.7 else [_pick(rng, METRIC_LINES) + b"\n"]


_BYTES = [_insert, _insert, _delete, _truncate]
_WHOLE = [_bom, _line_endings, _utf16, _huge]
_YAML = [
    _lines_op(_duplicate_line),
    _lines_op(_delete_line),
    _lines_op(_reindent),
    _lines_op(_yaml_value),
    _lines_op(_yaml_value),
    _lines_op(_yaml_value),
    _lines_op(_yaml_key),
    _merge_key,
    _alias_bomb,
    _deep_nesting,
]
OPERATORS = {
    "inventory": _BYTES + _WHOLE + _YAML,
    "playbook": _BYTES + _WHOLE + _YAML,
    "program": _BYTES + _WHOLE + _YAML,
    "billing": _BYTES
    + _WHOLE
    + [
        _lines_op(_duplicate_line),
        _lines_op(_delete_line),
        _lines_op(_csv_cell),
        _lines_op(_csv_cell),
        _lines_op(_csv_cell),
        _lines_op(_csv_shape),
        _csv_header,
    ],
    "vagrant": _BYTES
    + _WHOLE
    + [
        _lines_op(_duplicate_line),
        _lines_op(_delete_line),
        _lines_op(_vagrant_value),
        _lines_op(_vagrant_value),
        _lines_op(_vagrant_value),
        _lines_op(_vagrant_keyword),
        _vagrant_block,
    ],
    "schedule": [
        _insert,
        _delete,
        _lines_op(_duplicate_line),
        _lines_op(_delete_line),
        _lines_op(_word),
        _lines_op(_word),
        _lines_op(_word),
    ],
    "init": [_insert, _insert, _delete, _truncate, _init_word, _init_word, _init_word],
    "env": _BYTES
    + _WHOLE
    + [
        _lines_op(_duplicate_line),
        _lines_op(_delete_line),
        _lines_op(_env_line),
        _lines_op(_env_line),
        _lines_op(_env_line),
    ],
    "ansible-ini": _BYTES
    + _WHOLE
    + [
        _lines_op(_duplicate_line),
        _lines_op(_delete_line),
        _lines_op(_ini_value),
        _lines_op(_ini_value),
        _lines_op(_ini_line),
        _lines_op(_ini_line),
    ],
    "ansible-yaml": _BYTES + _WHOLE + _YAML,
    "run-record": _BYTES
    + [_lines_op(_duplicate_line), _lines_op(_delete_line), _record_value, _record_value, _record_value, _deep_nesting],
    "metrics": _BYTES
    + _WHOLE
    + [
        _lines_op(_duplicate_line),
        _lines_op(_delete_line),
        _lines_op(_metric_value),
        _lines_op(_metric_value),
        _lines_op(_metric_value),
        _lines_op(_metric_line),
        _lines_op(_metric_line),
    ],
}


def originals(kind: str) -> list[bytes]:
    """The shipped examples a kind's cases start from."""
    if kind == "inventory":  # 198.18.0.2 is a lab host's address: another lab on this machine may be up
        example = (REPO / "inventory.example.yaml").read_bytes().replace(b"198.18.0.2", b"127.0.0.1")
        return [example, OFFLINE_INVENTORY.encode()]
    if kind == "playbook":
        return [path.read_bytes() for path in sorted((REPO / "playbooks").glob("*.yaml"))]
    if kind == "program":
        return [(REPO / "agent" / "program.yaml").read_bytes()]
    if kind == "billing":
        return [(REPO / "billing.example.csv").read_bytes()]
    if kind == "schedule":  # docs/schedule.md's example, one word a line (its inventory: where a case puts one)
        documented = (REPO / "docs" / "schedule.md").read_text().splitlines()
        line = next(line for line in documented if line.startswith("ispagent schedule add"))
        return ["\n".join(shlex.split(line)[3:]).encode()]
    if kind == "env":
        return [(REPO / "ispagent.env.example").read_bytes()]
    if kind == "init":  # the directory of docs/install.md's `ispagent init` example
        lines = (REPO / "docs" / "install.md").read_text().splitlines()
        line = next(line for line in lines if line.startswith("ispagent init "))
        return [shlex.split(line)[2].encode()]
    if kind == "ansible-ini":
        return [(REPO / "tests" / "data" / "ansible" / "ini" / "hosts.ini").read_bytes()]
    if kind == "ansible-yaml":  # the inventory and its vars files: group_vars/ and host_vars/ are YAML too
        return [path.read_bytes() for path in sorted((REPO / "tests" / "data" / "ansible" / "yaml").rglob("*.y*ml"))]
    if kind == "run-record":
        return [RUN_RECORD.encode(), RUN_EVENTS.encode()]
    if kind == "metrics":
        return [_metrics_example()]
    recorded = (REPO / "tests" / "data" / "vagrant" / "ssh-config.txt").read_bytes()
    return [recorded.replace(b"/home/alex/src/ispagent/vagrant/.vagrant/machines", str(VAGRANT_KEYS).encode())]


def mutate(rng: random.Random, kind: str) -> bytes:
    """One case of `kind`: a shipped example with one to four mutations, all drawn from `rng`."""
    return mutated(rng, _pick(rng, originals(kind)), kind)


def mutated(rng: random.Random, data: bytes, kind: str, limit: int = MAX_CASE_BYTES) -> bytes:
    """`data` (a file of `kind`) with one to four mutations drawn from `rng`; none makes it exceed `limit` bytes."""
    for _ in range(rng.randint(1, 4)):
        changed = _pick(rng, OPERATORS[kind])(rng, data, kind)
        data = changed if len(changed) <= limit else data  # _huge twice would not fit in memory
    return data


def case_input(kind: str, seed: int, index: int) -> bytes:
    return mutate(random.Random(f"{seed}/{kind}/{index}"), kind)


# A valid inventory whose one host is a closed port on this machine: `run --dry-run` of a playbook
# that loads ends with the host unreachable, and nothing anywhere is contacted.
OFFLINE_INVENTORY = """\
defaults:
  vars: {edition: lite, period: monthly, release: stable, partner_api_url: "https://127.0.0.1:1/billmgr",
         partner_credentials_file: partner.cred}
ssh:
  known_hosts: known_hosts
  connect_timeout: 2
hosts:
  web1:
    address: 127.0.0.1
    port: 1
    vars:
      fqdn: web1.example.com
      activation_key: ISPFUZZ-7f3a-SECRET-KEY
"""


# A run record as `ispagent run` writes run.json (runner/journal.py RunRecord), for the state-dir cases.
RUN_RECORD = """\
{"run_id": "20261101T020000-00abcd", "playbook": "/srv/playbooks/reprovision.yaml", "playbook_sha256": "x",
 "inventory": "/etc/ispagent/fleet.yaml", "hosts": ["web1", "web2"], "options": {"only_drifted": true},
 "started_at": "2026-11-01T02:00:00+00:00", "status": "finished", "pid": 4242,
 "finished_at": "2026-11-01T02:10:00+00:00", "summary": {"ok": 2}}
"""
# Its events.jsonl (what `run --resume` replays), one JSON object a line.
RUN_EVENTS = """\
{"event": "host_started", "host": "web1", "at": "2026-11-01T02:00:01+00:00"}
{"event": "step_finished", "host": "web1", "step": "preflight", "status": "ok", "changed": false, "duration_s": 1.5, "message": ""}
{"event": "host_finished", "host": "web1", "status": "ok", "at": "2026-11-01T02:05:00+00:00"}
{"event": "host_started", "host": "web2", "at": "2026-11-01T02:00:01+00:00"}
"""


def _metrics_example() -> bytes:
    """What `run --metrics-file` writes (agent/runner/metrics.py) for a finished run of two hosts with the
    account read: the file the next run reads its last success from. Written by the product, not by hand."""
    from decimal import Decimal

    from agent.runner.events import HostOutcome, StepRecord
    from agent.runner.metrics import metrics_text
    from agent.runner.run import RunResult
    from agent.runner.standing import AccountStanding

    hosts = [
        HostOutcome(
            name,
            f"198.18.0.{n}",
            "ok",
            (StepRecord("facts", "ok", False, 0.2, ""),),
            None,
            {"license": {"id": f"310000{n}", "edition": "lite", "period": "monthly", "action": "existing"}},
        )
        for n, name in enumerate(("web1", "web2"), start=2)
    ]
    result = RunResult(
        RUN_RECORD_ID,
        "/srv/playbooks/reprovision.yaml",
        "/etc/ispagent/fleet.yaml",
        "2026-11-01T02:00:00+00:00",
        False,
        hosts,
        "2026-11-01T02:10:00+00:00",
        standing=AccountStanding(month="2026-11", turnover=Decimal("120.00"), tier=1, months_under=0, currency="EUR"),
    )
    return metrics_text(result, exit_code=0, now=1761962400.0, last_success=1761876000.0)


RUN_RECORD_ID = "20261101T020000-00abcd"
