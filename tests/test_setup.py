"""`.ci/setup` on a stock Debian or Ubuntu: what it lacks is found first and said in one line."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from harness import ROOT

RUST_VERSION = tomllib.loads((ROOT / "engine/Cargo.toml").read_text())["package"]["rust-version"]
PYTHON_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"][
    2:
]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _prereqs():
    spec = importlib.util.spec_from_file_location("prereqs", ROOT / ".ci/prereqs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_rust(bin_dir: Path, version: str) -> Path:
    bin_dir.mkdir()
    for program in ("rustc", "cargo"):
        (bin_dir / program).write_text(
            f'#!/bin/sh\necho "{program} {version} (0000000 2022-08-08)"\n'
        )
        (bin_dir / program).chmod(0o755)
    return bin_dir


def test_setup_stops_at_an_old_rust_with_the_fix_in_one_line(tmp_path):
    fake = _fake_rust(tmp_path / "bin", "1.63.0")  # Debian 12's
    env = {
        **os.environ,
        "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
        # Should the check ever let setup go on, pip fails at once and installs nothing.
        "PIP_NO_INDEX": "1",
    }
    proc = subprocess.run(
        ["bash", str(ROOT / ".ci/setup")], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert f"needs Rust >= {RUST_VERSION}" in line
    assert "1.63.0" in line
    assert "rustup" in line


def _fake_apt(bin_dir: Path, *, fails: bool) -> None:
    """Every package missing (dpkg -s fails), and an apt-get as chatty as dpkg's progress."""
    scripts = {
        "dpkg": "exit 1",
        "sudo": 'exec "$@"',
        "apt-get": 'for i in $(seq 139); do echo "Unpacking package-$i ..."; done\n'
        + (
            'if [ "$1" = install ]; then echo "E: Unable to locate package gjs" >&2; exit 100; fi'
            if fails
            else ""
        ),
    }
    for program, body in scripts.items():
        (bin_dir / program).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / program).chmod(0o755)


@pytest.mark.parametrize("apt_fails", [False, True])
def test_setup_keeps_dpkg_progress_to_itself_unless_apt_fails(tmp_path, apt_fails):
    fake = _fake_rust(tmp_path / "bin", "1.63.0")  # setup stops there, after apt
    _fake_apt(fake, fails=apt_fails)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "PIP_NO_INDEX": "1"}
    proc = subprocess.run(
        ["bash", str(ROOT / ".ci/setup")], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith("setup: installing ") and "Debian packages: dbus" in proc.stdout
    if apt_fails:
        assert proc.stderr.count("Unpacking package-") == 139  # the log, now that it matters
        assert "E: Unable to locate package gjs" in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert "apt-get install" in last and last.endswith("failed; its output is above")
    else:
        assert "Unpacking" not in proc.stdout + proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert f"needs Rust >= {RUST_VERSION}" in line


@pytest.mark.parametrize(
    ("version", "enough"),
    [(f"{RUST_VERSION}.0", True), ("1.99.0", True), ("1.63.0", False), ("1.87.9", False)],
)
def test_rust_version_is_compared_with_the_engines_rust_version(tmp_path, version, enough):
    fake = _fake_rust(tmp_path / "bin", version)
    proc = subprocess.run(
        [sys.executable, str(ROOT / ".ci/prereqs.py")],
        env={**os.environ, "PATH": str(fake)},
        capture_output=True,
        text=True,
    )
    assert (proc.returncode == 0) == enough, proc.stderr
    assert (proc.stderr == "") == enough


def test_missing_rust_gets_the_rustup_install_command(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, str(ROOT / ".ci/prereqs.py")],
        env={**os.environ, "PATH": str(empty)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "no rustc or cargo on PATH" in line
    assert line.endswith(_prereqs().RUSTUP_INSTALL)


def test_externally_managed_means_a_marker_outside_a_venv(tmp_path):
    externally_managed = _prereqs().externally_managed
    assert not externally_managed(str(tmp_path), in_venv=False)
    (tmp_path / "EXTERNALLY-MANAGED").write_text("[externally-managed]\n")
    assert externally_managed(str(tmp_path), in_venv=False)
    assert not externally_managed(str(tmp_path), in_venv=True)


def test_old_python_is_told_what_to_install():
    problem = _prereqs().python_problem((3, 10, 12))  # Ubuntu 22.04's
    assert f"Python >= {PYTHON_VERSION}" in problem
    assert f"python{PYTHON_VERSION} -m venv .venv" in problem
    assert _prereqs().python_problem(sys.version_info[:3]) is None


def _python_env(checkout: Path, path: str) -> str:
    """Source .ci/python-env in a copy of the checkout's .ci; the python3 it leaves on PATH."""
    shutil.copytree(ROOT / ".ci", checkout / ".ci")
    proc = subprocess.run(
        [
            "bash",
            "-c",
            "set -euo pipefail; . .ci/python-env; python3 -c 'import sys; print(sys.prefix)'",
        ],
        cwd=checkout,
        env={"PATH": path, "HOME": str(checkout)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_pip_friendly_python3_is_used_as_it_is(tmp_path):
    prefix = _python_env(tmp_path, f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin")
    assert prefix == sys.prefix
    assert not (tmp_path / ".venv").exists()


@pytest.mark.skipif(
    not SYSTEM_PYTHON.exists()
    or subprocess.run([SYSTEM_PYTHON, ROOT / ".ci/prereqs.py", "externally-managed"]).returncode,
    reason="no externally managed /usr/bin/python3 here",
)
def test_an_externally_managed_python3_gets_the_checkouts_venv(tmp_path):
    assert _python_env(tmp_path, "/usr/bin:/bin") == str(tmp_path / ".venv")
