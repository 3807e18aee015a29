"""Shortcut writers against throwaway settings: GNOME's keyfile backend, KDE files in a temp dir."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

from v2md import keybindings as kb

SCHEMA = kb.GNOME_SCHEMA


@pytest.fixture
def desktop_home(tmp_path, monkeypatch):
    """Temporary XDG dirs and the keyfile GSettings backend: never the real user's settings."""
    for var, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("GSETTINGS_BACKEND", "keyfile")
    return tmp_path


def gsettings(*args: str) -> str:
    return subprocess.run(["gsettings", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def gnome(desktop_home):
    if shutil.which("gsettings") is None:
        pytest.skip("gsettings is not installed (libglib2.0-bin)")
    if SCHEMA not in gsettings("list-schemas").split():
        pytest.skip(f"{SCHEMA} is not installed (gnome-settings-daemon-common)")
    return desktop_home


def test_gnome_bind_twice_keeps_one_entry_and_the_users_own(gnome):
    mine = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/custom0/"
    gsettings("set", SCHEMA, "custom-keybindings", f"['{mine}']")
    lines = kb.bind_gnome("<Super>v")
    kb.bind_gnome("<Super>d")
    assert "v2mctl bind gnome --remove" in lines[-1]
    assert (
        gsettings("get", SCHEMA, "custom-keybindings").strip() == f"['{mine}', '{kb.GNOME_PATH}']"
    )
    assert gsettings("get", kb.GNOME_ENTRY, "binding").strip() == "'<Super>d'"
    assert gsettings("get", kb.GNOME_ENTRY, "command").strip() == f"'{kb.TOGGLE_COMMAND}'"
    kb.unbind_gnome()
    assert gsettings("get", SCHEMA, "custom-keybindings").strip() == f"['{mine}']"
    assert gsettings("get", kb.GNOME_ENTRY, "binding").strip() == "''"


def test_gnome_dry_run_changes_nothing(gnome):
    lines = kb.bind_gnome("<Super>v", dry_run=True)
    expected = ["gsettings", "set", SCHEMA, "custom-keybindings", f"['{kb.GNOME_PATH}']"]
    assert shlex.split(lines[-1]) == expected
    assert gsettings("get", SCHEMA, "custom-keybindings").strip() == "@as []"


def test_missing_gsettings_is_a_clear_error(desktop_home, monkeypatch):
    monkeypatch.setenv("PATH", str(desktop_home))
    with pytest.raises(kb.KeybindingError, match="gsettings is not installed"):
        kb.bind_gnome("<Super>v")


def test_kde_writes_desktop_file_and_shortcut_keeping_other_entries(desktop_home):
    shortcuts = desktop_home / "config" / "kglobalshortcutsrc"
    shortcuts.write_text("[kwin]\nExpose=Ctrl+F9,Ctrl+F9,Toggle Present Windows\n")
    kb.bind_kde("Meta+V")
    desktop = desktop_home / "data" / "applications" / "v2m-toggle.desktop"
    assert f"Exec={kb.TOGGLE_COMMAND}\n" in desktop.read_text()
    assert "X-KDE-Shortcuts=Meta+V\n" in desktop.read_text()
    text = shortcuts.read_text()
    assert "[kwin]\nExpose=Ctrl+F9,Ctrl+F9,Toggle Present Windows\n" in text
    assert "[services][v2m-toggle.desktop]\n" in text and "_launch=Meta+V\n" in text
    kb.unbind_kde()
    assert not desktop.exists()
    assert "v2m" not in shortcuts.read_text() and "Expose=" in shortcuts.read_text()


def test_kde_dry_run_writes_nothing(desktop_home):
    lines = kb.bind_kde("Meta+V", dry_run=True)
    assert "X-KDE-Shortcuts=Meta+V" in lines
    assert [p for d in ("data", "config") for p in (desktop_home / d).rglob("*")] == []
