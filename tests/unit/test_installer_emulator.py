"""The installer emulator against the real install.sh's recorded behaviour, without the lab.

Each case of tests/data/installer/emulator_cases.yaml runs the emulated install.sh, as served by the
lab's mirror (here on 127.0.0.1), under `sh` (dash) and under `bash`, against a throwaway directory
tree standing in for the server's root (ISPMGR_EMULATOR_ROOT), and checks its exit status, the
stage it reached, its key lines, its prompts and the files it leaves.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from harness.license_standin import LicenseStandin

from agent.installer.messages import classify_output
from agent.lab.mirror import serve, write_config, write_host_faults

CASES = yaml.safe_load((Path(__file__).parents[1] / "data/installer/emulator_cases.yaml").read_text())
SHELLS = ("sh", "bash")
NOBODY = 65534
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
PROMPT_TEXT = "Your choice is:"
HOSTNAME_PROMPT = "Enter new hostname"  # read -p's text as well: never shown without a terminal
HELPERS = "lsb-release\nwget\ngpg\npython\n"  # as the emulator notes the helpers it installed
OS_RELEASES = {
    "bookworm": ("12", "bookworm", "12.8"),
    "trixie": ("13", "trixie", "13.1"),
    "buster": ("10", "buster", "10.13"),
}


class Setup:
    """One mirror serving install.sh, with one repository fault (or none) for 127.0.0.1."""

    def __init__(self, base: Path, name: str, fault: str | None, license_url: str) -> None:
        self.dir = base / name  # the working directory: install.sh is run from here, as `sh install.sh`
        self.mirror_dir = self.dir / "mirror"
        self.mirror = serve("127.0.0.1:0", self.mirror_dir)
        self.url = f"http://127.0.0.1:{self.mirror.server_address[1]}"
        threading.Thread(target=self.mirror.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        write_config(
            self.mirror_dir, license_url=license_url, install_seconds=0, license_retry_delay=0, repo_retry_delay=0
        )
        write_host_faults(self.mirror_dir, {"127.0.0.1": fault} if fault else {})
        self.script = self.dir / "install.sh"
        self.script.write_bytes(urllib.request.urlopen(f"{self.url}/install.sh", timeout=10).read())
        self.script.chmod(0o755)

    def close(self) -> None:
        self.mirror.shutdown()
        self.mirror.server_close()


class Services:
    """Mirrors and license services on 127.0.0.1, one per situation, in a directory any user can read
    (the non-root cases run as nobody): cases of different situations can run at the same time."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="ispagent-installer-emulator-"))
        self.base.chmod(0o755)
        self.licenses = {
            False: LicenseStandin(address="127.0.0.1").start(),
            True: LicenseStandin(address="127.0.0.1", denied_ips={"127.0.0.1"}).start(),
        }
        self.setups: dict[tuple, Setup] = {}
        self.lock = threading.Lock()

    def setup(self, fault: str | None = None, license_denied: bool = False) -> Setup:
        with self.lock:
            key = (fault, license_denied)
            if key not in self.setups:
                name = f"{fault or 'ok'}-{'denied' if license_denied else 'licensed'}"
                self.setups[key] = Setup(self.base, name, fault, self.licenses[license_denied].url)
            return self.setups[key]

    def close(self) -> None:
        for setup in self.setups.values():
            setup.close()
        for standin in self.licenses.values():
            standin.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def services():
    services = Services()
    yield services
    services.close()


@dataclass
class Run:
    result: subprocess.CompletedProcess
    root: Path
    stages: list[str]
    mirror_url: str


@pytest.fixture(scope="module")
def runs(services) -> dict[tuple[str, str], Run]:
    """Every case under every shell, run four at a time (each in its own tree) before the checks."""

    def one(case: dict, shell: str) -> Run:
        situation = case.get("situation", {})
        setup = services.setup(situation.get("mirror_fault"), situation.get("license") == "denied")
        work = Path(tempfile.mkdtemp(prefix=f"{case['name']}-{shell}-", dir=services.base))
        work.chmod(0o755)
        root, trace = work / "root", work / "stages"
        make_tree(root, situation)
        trace.touch()
        trace.chmod(0o666)
        result = run_installer(setup, shell, case, root, trace)
        return Run(result, root, trace.read_text().split(), setup.url)

    jobs = [(case, shell) for case in CASES for shell in SHELLS]
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda job: one(*job), jobs))
    return {(case["name"], shell): run for (case, shell), run in zip(jobs, done)}


def make_tree(root: Path, situation: dict) -> None:
    """A server's root as the installer reads it (the defaults of the cases file)."""
    for directory in ("etc/apt/sources.list.d", "var/lib/apt/lists", "proc", "usr/local", "usr/sbin"):
        (root / directory).mkdir(parents=True)
    os_name = situation.get("os", "bookworm")
    if os_name != "none":
        version, codename, debian_version = OS_RELEASES[os_name]
        (root / "etc/os-release").write_text(
            f'PRETTY_NAME="Debian GNU/Linux {version} ({codename})"\nNAME="Debian GNU/Linux"\nVERSION_ID="{version}"\n'
            f"VERSION_CODENAME={codename}\nID=debian\n"
        )
        (root / "etc/debian_version").write_text(debian_version + "\n")
    ram = situation.get("ram_mb", 2048) * 1024
    (root / "proc/meminfo").write_text(f"MemTotal: {ram} kB\nMemFree: {ram // 2} kB\nMemAvailable: {ram // 2} kB\n")
    hostname = situation.get("hostname", "h1.lab.example")
    short = hostname.split(".")[0]
    names = f"{hostname} {short}" if hostname != short else short
    (root / "etc/hostname").write_text(short + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n198.18.0.2\t{names}\n")
    if situation.get("machine_id") != "missing":
        (root / "etc/machine-id").write_text("0" * 32 + "\n")
    if situation.get("helpers_installed"):
        (root / "var/lib/ispmanager-emulator").mkdir(parents=True)
        (root / "var/lib/ispmanager-emulator/helpers").write_text(HELPERS)
    if situation.get("dist_repository") == "unresolvable":  # offline: apt cannot resolve its mirror
        codename = OS_RELEASES[os_name][1]
        (root / "etc/apt/sources.list").write_text(f"deb http://deb.debian.invalid/debian {codename} main\n")
    if situation.get("no_default_route"):  # an `ip` that knows no route, as on an offline server
        (root.parent / "bin").mkdir()
        (root.parent / "bin/ip").write_text("#!/bin/sh\nexit 0\n")
        (root.parent / "bin/ip").chmod(0o755)
    lock = root / "var/lib/apt/lists/lock"
    lock.touch()
    lock.chmod(0o640)
    for path in situation.get("nobody_can_write", []):
        os.chown(root / path, NOBODY, NOBODY)
    if situation.get("installed"):
        panel = root / "usr/local/mgr5/etc"
        panel.mkdir(parents=True)
        (panel / "emulator-packages").write_text("coremanager\nispmanager-lite-common\n")
    if situation.get("selinux"):
        (root / "usr/sbin/selinuxenabled").write_text("#!/bin/sh\nexit 0\n")
        (root / "usr/sbin/selinuxenabled").chmod(0o755)
    if situation.get("old_panel"):
        (root / "usr/local/ispmgr").mkdir()
    if situation.get("dpkg_interrupted"):
        (root / "var/lib/dpkg/updates").mkdir(parents=True)
        (root / "var/lib/dpkg/updates/0000").touch()


def run_installer(setup: Setup, shell: str, case: dict, root: Path, trace: Path) -> subprocess.CompletedProcess:
    situation = case.get("situation", {})
    path = "/usr/sbin:/usr/bin:/sbin:/bin"
    if situation.get("no_default_route"):
        path = f"{root.parent / 'bin'}:{path}"
    env = {
        "PATH": path,
        "LANG": "C.UTF-8",
        "ISPMGR_EMULATOR_ROOT": str(root),
        "ISPMGR_EMULATOR_TRACE": str(trace),
        **situation.get("env", {}),
    }
    user = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if situation.get("user") == "nobody" else {}
    stdin = case.get("stdin")
    # A case that checks the order of lines gets stderr (apt's lines) in the same stream as stdout.
    stderr = subprocess.STDOUT if "order" in case else subprocess.PIPE
    return subprocess.run(
        [shell, "install.sh", *case.get("args", [])],
        cwd=setup.dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        input=stdin if stdin is not None else "",
        timeout=60,
        **user,
    )


def for_shell(value, shell: str):
    return value[shell] if isinstance(value, dict) and shell in value else value


def line_pattern(line: str, root: Path, mirror: str) -> re.Pattern:
    text = re.escape(line).replace(re.escape("{root}"), re.escape(str(root))).replace(re.escape("{n}"), r"\d+")
    text = text.replace(re.escape("{mirror_host}"), re.escape(mirror_host(mirror)))
    return re.compile(text.replace(re.escape("{mirror}"), re.escape(mirror)))


def mirror_host(mirror: str) -> str:
    """The mirror as the real script names it in its lines: host[:port], no scheme."""
    return mirror.split("://", 1)[1]


def in_order(expected: list[str], lines: list[str], root: Path, mirror: str) -> bool:
    """Whether the expected lines appear in this order (other lines may come between them)."""
    patterns = iter([line_pattern(line, root, mirror) for line in expected])
    wanted = next(patterns, None)
    for line in lines:
        if wanted is not None and wanted.fullmatch(line):
            wanted = next(patterns, None)
    return wanted is None


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_emulator_reproduces_the_real_installer(runs, case, shell):
    run = runs[(case["name"], shell)]
    result, root = run.result, run.root
    out, err = COLOUR.sub("", result.stdout), COLOUR.sub("", result.stderr or "")
    both = out + err
    where = f"[{shell}] exit {result.returncode}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"

    assert result.returncode == for_shell(case["exit"], shell), where
    assert (run.stages[-1] if run.stages else None) == case["stage"], f"stages {run.stages}\n{where}"
    searched = err if case.get("stream") == "stderr" else both
    lines = searched.splitlines()
    for expected in for_shell(case.get("lines", []), shell):
        pattern = line_pattern(expected, root, run.mirror_url)
        assert any(pattern.fullmatch(line) for line in lines), f"missing line {expected!r}\n{where}"
    if case.get("stream") == "stderr":
        assert out == "", where
    for prefix in case.get("prefixes", []):
        assert any(line.startswith(prefix) for line in both.splitlines()), f"no line starts {prefix!r}\n{where}"
    for text, times in case.get("count", {}).items():
        assert both.splitlines().count(text) == times, where
    for text in case.get("absent", []):
        assert text not in both, where
    if "order" in case:
        assert in_order(case["order"], both.splitlines(), root, run.mirror_url), f"lines out of order\n{where}"
    if "head" in case:
        assert searched.splitlines()[: len(case["head"])] == case["head"], f"first lines differ\n{where}"
    if "tail" in case:
        assert searched.splitlines()[-len(case["tail"]) :] == case["tail"], f"last lines differ\n{where}"
    for line in case.get("red", []):
        assert f"\x1b[1;31m{line}\x1b[0m\n" in result.stdout, f"{line!r} not red\n{where}"
    if "class" in case:
        assert classify_output(result.stdout + (result.stderr or ""), result.returncode).name == case["class"], where
    assert "ERROR:" not in both, where
    assert PROMPT_TEXT not in both and HOSTNAME_PROMPT not in both, where  # read -p: on a terminal only
    for path, content in case.get("files", {}).items():
        expected = content.replace("{mirror_host}", mirror_host(run.mirror_url)).replace("{mirror}", run.mirror_url)
        assert (root / path).read_text() == expected, path
    for path, mode in case.get("modes", {}).items():
        assert oct((root / path).stat().st_mode & 0o777) == oct(int(mode, 8)), path
    for path, pattern in case.get("file_patterns", {}).items():
        assert re.fullmatch(pattern, (root / path).read_text()), path
    for path in case.get("no_files", []):
        assert not (root / path).exists(), path


@pytest.mark.parametrize("shell", SHELLS)
def test_on_a_terminal_the_prompt_text_shows_and_typed_answers_are_read(services, shell, tmp_path):
    root = tmp_path / "root"
    make_tree(root, {"os": "buster"})
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "ISPMGR_EMULATOR_ROOT": str(root),
        "ISPMGR_EMULATOR_TRACE": str(tmp_path / "stages"),
    }
    command = f"{shell} {services.setup().script} --release stable ispmanager-lite"
    result = subprocess.run(
        ["script", "-qec", command, "/dev/null"], input="n\n", capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stdout
    assert "Continue installation? (y/N)" in result.stdout and PROMPT_TEXT in result.stdout


@pytest.mark.parametrize(
    "name",
    [
        "fresh-install",
        "vendor-repository-unreachable",
        "vendor-repository-answering-5xx",
        "distribution-repository-down",
    ],
)
def test_without_curl_or_wget_as_on_a_lab_host_the_repositories_behave_the_same(services, name, tmp_path):
    """Lab hosts have neither curl nor wget: the emulator then fetches with python3."""
    case = next(case for case in CASES if case["name"] == name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/bin", "/bin"):
        for tool in Path(directory).iterdir():
            if tool.name not in ("curl", "wget") and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    root = tmp_path / "root"
    make_tree(root, case.get("situation", {}))
    setup = services.setup(case.get("situation", {}).get("mirror_fault"))
    env = {
        "PATH": f"/usr/sbin:{bin_dir}",
        "ISPMGR_EMULATOR_ROOT": str(root),
        "ISPMGR_EMULATOR_TRACE": str(tmp_path / "stages"),
    }
    result = subprocess.run(
        ["sh", "install.sh", *case["args"]],
        cwd=setup.dir,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == case["exit"], result.stdout + result.stderr
    assert (tmp_path / "stages").read_text().split()[-1] == case["stage"]
    output = COLOUR.sub("", result.stdout + result.stderr).splitlines()
    for line in case["lines"]:
        assert line in output, result.stdout + result.stderr


def test_the_emulator_uses_no_bash_only_syntax(services):
    """dash parses it, and bash in POSIX mode runs the same checks (the real script runs under both)."""
    for shell in (["sh", "-n"], ["bash", "--posix", "-n"]):
        check = subprocess.run([*shell, str(services.setup().script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    assert "@@" not in services.setup().script.read_text(), "a placeholder the mirror did not fill in"


def test_the_eu_installer_points_the_panel_at_the_eu_billing(services, tmp_path):
    script = urllib.request.urlopen(f"{services.setup().url}/install.eu.sh", timeout=10).read().decode()
    assert 'EU="true"' in script and 'EU="false"' in services.setup().script.read_text()


# Every option of the real script's help text (--ispmgr6 is accepted but not listed; --mirror is hidden).
HELP_OPTIONS = (
    "--osfamily",
    "--osversion",
    "--release",
    "--noinstall",
    "--install-business",
    "--ignore-hostname",
    "--silent",
    "--no-letsencrypt",
    "--le-domain",
    "--disable-fail2ban",
    "--ispmgr5",
    "--openlitespeed",
    "--litespeed",
    "--dbtype",
    "--mysql-server",
    "--allow-eol-os",
    "--activation-key",
)


def test_help_lists_every_option_of_the_real_script_and_no_hidden_one(services):
    result = subprocess.run(["sh", str(services.setup().script), "--help"], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "")
    for option in HELP_OPTIONS:
        assert option in result.stderr, option
    assert "--ispmgr6" not in result.stderr and "--mirror" not in result.stderr
