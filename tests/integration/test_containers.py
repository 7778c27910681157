"""The container set-up checks what the engine runs, not only what apt installed.

A machine can have podman and still fail at the first networked container: netavark execs
``iptables``, which Debian's podman only suggests. ``scripts/container-check.sh`` runs a
trivial container on a network with DNS and names a missing program in one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def path_without(tmp_path: Path, hidden: set[str]) -> str:
    """A PATH of one folder linking every program on today's PATH except ``hidden``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = folder / entry.name
            if entry.name not in hidden and not target.exists():
                target.symlink_to(entry.path)
    return str(folder)


def missing(path: str, **env: str) -> list[list[str]]:
    script = f". {SCRIPTS / 'container-programs.sh'} && container_missing"
    proc = subprocess.run(
        ["bash", "-c", script], env={"PATH": path, **env}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t") for line in proc.stdout.splitlines()]


def test_a_missing_firewall_program_is_named_with_its_package(tmp_path: Path) -> None:
    found = missing(path_without(tmp_path, {"iptables", "ip6tables"}), NETAVARK_FW="iptables")
    named = {name: package for name, package, _ in found}
    assert named.get("iptables") == "iptables" and named.get("ip6tables") == "iptables"
    if shutil.which("conmon"):
        assert "conmon" not in named  # only what is missing is named


def test_the_nftables_driver_needs_nft_instead(tmp_path: Path) -> None:
    found = missing(path_without(tmp_path, {"nft", "iptables"}), NETAVARK_FW="nftables")
    named = {name for name, _, _ in found}
    assert "nft" in named and "iptables" not in named


def check(env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPTS / "container-check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def engine_runs() -> str:
    """The check as ``make test`` runs it: skip (one line) only where no engine can run."""
    proc = check()
    if proc.returncode == 1:
        pytest.skip(f"containers: {proc.stdout.strip()}")
    assert proc.returncode == 0, f"container set-up broken: {proc.stdout.strip()}"
    assert proc.stdout.strip() == ""
    return shutil.which("podman") or shutil.which("docker") or ""


def test_a_networked_container_runs(engine_runs: str) -> None:
    # the check's own probe: a trivial container on a network with DNS (aardvark-dns)
    out = subprocess.run(
        [engine_runs, "run", "--rm", "--network", "imsearch-probe", "localhost/imsearch-probe"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


def test_the_check_fails_in_one_line_naming_what_is_missing(
    engine_runs: str, tmp_path: Path
) -> None:
    if Path(engine_runs).name != "podman":
        pytest.skip("the missing-program diagnosis is podman's (netavark); docker runs here")
    env = dict(os.environ, PATH=path_without(tmp_path, {"iptables", "ip6tables"}))
    proc = check(env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stdout.strip()
    assert "\n" not in line and "iptables" in line and "make container-deps" in line
