"""Installation artefacts: the systemd unit, D-Bus activation, meson install, the example config."""

from __future__ import annotations

import configparser
import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from harness import ROOT
from pydantic import BaseModel

from v2md.config import Config

needs_meson = pytest.mark.skipif(shutil.which("meson") is None, reason="meson is not installed")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A user-style install (``--prefix``) of the desktop integration into a temporary prefix."""
    if shutil.which("meson") is None:
        pytest.skip("meson is not installed")
    tmp = tmp_path_factory.mktemp("meson")
    prefix = tmp / "prefix"
    subprocess.run(
        [
            "meson",
            "setup",
            str(tmp / "build"),
            f"--prefix={prefix}",
            "-Dinstall_python_package=false",
            f"-Dv2md={shutil.which('true')}",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    subprocess.run(["meson", "install", "-C", str(tmp / "build")], check=True, capture_output=True)
    return prefix / "share"


@needs_meson
def test_meson_installs_everything_where_the_session_looks(installed):
    for relative in (
        "systemd/user/v2md.service",
        "dbus-1/services/org.v2m.Dictation.service",
        "dbus-1/interfaces/org.v2m.Dictation.xml",
        "doc/v2m/config.example.toml",
        "applications/org.v2m.Dictation.desktop",
        "gnome-shell/extensions/v2m@v2m.org/metadata.json",
        "gnome-shell/extensions/v2m@v2m.org/extension.js",
    ):
        assert (installed / relative).is_file(), relative


@needs_meson
def test_activation_file_hands_over_to_systemd(installed):
    parser = configparser.ConfigParser()
    parser.optionxform = str
    parser.read(installed / "dbus-1/services/org.v2m.Dictation.service")
    service = parser["D-BUS Service"]
    assert service["Name"] == "org.v2m.Dictation"
    assert service["SystemdService"] == "v2md.service"
    assert Path(service["Exec"]).is_absolute()


@needs_meson
def test_the_desktop_file_runs_the_daemon_the_unit_runs(installed):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(installed / "applications/org.v2m.Dictation.desktop")
    entry = parser["Desktop Entry"]
    # Not a bare `v2md`: with --prefix ~/.local the launcher is in libexec, on no PATH.
    assert entry["Exec"] == shutil.which("true")
    if shutil.which("desktop-file-validate"):
        subprocess.run(
            ["desktop-file-validate", installed / "applications/org.v2m.Dictation.desktop"],
            check=True,
        )


@needs_meson
def test_unit_passes_systemd_analyze_verify(installed, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = installed / "systemd/user/v2md.service"
    text = unit.read_text()
    for line in ("Type=notify", "BusName=org.v2m.Dictation", "Restart=on-failure"):
        assert line in text
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--user", str(unit)],
        capture_output=True,
        text=True,
        env={"XDG_RUNTIME_DIR": str(runtime), "PATH": "/usr/bin:/bin"},
    )
    # verify only warns about unknown keys; any output at all is a defect in the unit.
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def private_install(tmp_path_factory) -> dict:
    """A staged (DESTDIR) ``meson install`` with the Python package, moved to its prefix.

    The Python meson finds stands for the user's main environment: a venv that has v2m's
    dependencies (the test interpreter's site-packages, added by a .pth so their own .pth
    files, the editable v2m among them, stay out) and a v2m of its own that the install
    must leave alone, but no ``v2md`` package, so only the installed copy can run the daemon.
    """
    if shutil.which("meson") is None:
        pytest.skip("meson is not installed")
    tmp = tmp_path_factory.mktemp("private")
    env = tmp / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    env_site = Path(
        subprocess.run(
            [env / "bin/python3", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    deps = {*site.getsitepackages(), site.getusersitepackages()}
    (env_site / "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    info = env_site / "v2m-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: v2m\nVersion: 0.0.1\n")
    (info / "INSTALLER").write_text("pip\n")
    (env_site / "v2m_main_env.py").write_text("")
    (info / "RECORD").write_text(
        "v2m_main_env.py,,\nv2m-0.0.1.dist-info/METADATA,,\n"
        "v2m-0.0.1.dist-info/INSTALLER,,\nv2m-0.0.1.dist-info/RECORD,,\n"
    )
    before = _tree(env)

    prefix, stage = tmp / "prefix", tmp / "stage"
    path = {**os.environ, "PATH": f"{env / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    for command in (
        ["meson", "setup", str(tmp / "build"), f"--prefix={prefix}"],
        ["meson", "install", "-C", str(tmp / "build"), f"--destdir={stage}"],
    ):
        proc = subprocess.run(command, cwd=ROOT, env=path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # What a package manager does with a staged install.
    shutil.move(stage / prefix.relative_to("/"), prefix)
    return {"tmp": tmp, "env": env, "before": before, "prefix": prefix, "stage": stage}


@needs_meson
def test_meson_install_leaves_the_main_python_environment_alone(private_install):
    env = private_install["env"]
    assert _tree(env) == private_install["before"]
    proc = subprocess.run(
        [env / "bin/python3", "-c", "import importlib.metadata as m; print(m.version('v2m'))"],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.strip() == "0.0.1", proc.stderr


@needs_meson
def test_installed_v2md_runs_from_a_prefix_python_does_not_search(private_install):
    share = private_install["prefix"] / "share"
    unit = (share / "systemd/user/v2md.service").read_text()
    (exec_start,) = [
        line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")
    ]
    activation = (share / "dbus-1/services/org.v2m.Dictation.service").read_text()
    assert f"Exec={exec_start}\n" in activation
    assert Path(exec_start).is_relative_to(private_install["prefix"])
    tmp = private_install["tmp"]
    proc = subprocess.run(
        [exec_start, "--help"],
        cwd=tmp,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: v2md")
    # Nothing installed names the staging directory.
    stage = str(private_install["stage"])
    for path in private_install["prefix"].rglob("*"):
        if path.is_file():
            assert stage.encode() not in path.read_bytes(), path


def _fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names |= _fields(kind, f"{prefix}{name}.")
        else:
            names.add(prefix + name)
    return names


def test_example_config_is_valid_and_documents_every_key():
    text = (ROOT / "data" / "config.example.toml").read_text()
    # Every key appears as "#key = default" (prose comments start with "# "), so
    # uncommenting a line is all a user has to do.
    uncommented = "\n".join(
        line[1:] if line.startswith("#") and line[1:2].isalpha() else line
        for line in text.splitlines()
    )
    data = tomllib.loads(uncommented)
    Config.model_validate(data)

    def flatten(tree: dict, prefix: str = "") -> set[str]:
        out = set()
        for key, value in tree.items():
            out |= flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
        return out

    assert flatten(data) == _fields(Config)
