"""Installation artefacts: the systemd unit, D-Bus activation, meson install, the example config."""

from __future__ import annotations

import configparser
import shutil
import subprocess
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
