"""vagrant/Vagrantfile checked by Debian's vagrant itself (`vagrant validate`); VMs cannot boot here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"


def _validate(directory: Path, **env: str) -> subprocess.CompletedProcess:
    vagrant = shutil.which("vagrant")
    assert vagrant, "vagrant is not installed: .ci/setup installs Debian's vagrant package"
    # --ignore-provider: the libvirt/virtualbox providers are not installed here, their blocks are skipped.
    return subprocess.run(
        [vagrant, "validate", "--ignore-provider"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(directory), "VAGRANT_CHECKPOINT_DISABLE": "1", **env},
    )


def test_vagrantfile_validates_with_debian_vagrant(tmp_path):
    work = tmp_path / "vagrant"
    shutil.copytree(VAGRANT_DIR, work)
    result = _validate(work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vagrantfile validated successfully." in result.stdout
    for machine in ("debian12", "ubuntu2404", "alma9"):
        assert f"==> {machine}:" in result.stdout


def test_a_broken_vagrantfile_fails_validation(tmp_path):
    work = tmp_path / "vagrant"
    shutil.copytree(VAGRANT_DIR, work)
    vagrantfile = work / "Vagrantfile"
    vagrantfile.write_text(vagrantfile.read_text().replace("node.vm.hostname =", "node.vm.hostnme ="))
    assert _validate(work).returncode != 0
    assert _validate(work, VAGRANT_DEFAULT_PROVIDER="docker").returncode != 0


def test_the_docker_provider_defines_debian12_machines_only(tmp_path):
    work = tmp_path / "vagrant"
    shutil.copytree(VAGRANT_DIR, work)
    result = _validate(work, VAGRANT_DEFAULT_PROVIDER="docker", ISPAGENT_VAGRANT_MACHINES="10")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    machines = [line.split(":")[0].removeprefix("==> ") for line in lines if line.startswith("==>")]
    assert machines == ["debian12"] + [f"debian12-{n}" for n in range(2, 11)]
