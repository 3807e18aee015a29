"""Shortcut writers against throwaway settings: GNOME's keyfile backend, KDE files in a temp dir."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

from v2md.desktop import keybindings as kb

SCHEMA = kb.GNOME_SCHEMA
USER_PATH = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/custom0/"


@pytest.fixture
def desktop_home(tmp_path, monkeypatch):
    """Temporary XDG dirs and the keyfile GSettings backend: never the real user's settings."""
    for var, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("GSETTINGS_BACKEND", "keyfile")
    return tmp_path


def gsettings(*args: str) -> str:
    argv = ["gsettings", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def gnome(desktop_home):
    if shutil.which("gsettings") is None:
        pytest.skip("gsettings is not installed (libglib2.0-bin)")
    if SCHEMA not in gsettings("list-schemas").split():
        pytest.skip(f"{SCHEMA} is not installed (gnome-settings-daemon-common)")
    return desktop_home


@pytest.fixture
def kde_bin(desktop_home, monkeypatch):
    """A PATH of our own, so a KDE install on the test machine cannot change the outcome."""
    bin_dir = desktop_home / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_gnome_bind_twice_keeps_one_entry_and_the_users_own(gnome):
    gsettings("set", SCHEMA, "custom-keybindings", f"['{USER_PATH}']")
    lines = kb.bind_gnome("<Super>v")
    kb.bind_gnome("<Super>d")
    assert lines == [
        f"GNOME: <Super>v now runs: {kb.TOGGLE_COMMAND}",
        "undo with: v2mctl bind gnome --remove",
    ]
    assert gsettings("get", SCHEMA, "custom-keybindings") == f"['{USER_PATH}', '{kb.GNOME_PATH}']"
    assert gsettings("get", kb.GNOME_ENTRY, "binding") == "'<Super>d'"
    assert gsettings("get", kb.GNOME_ENTRY, "command") == f"'{kb.TOGGLE_COMMAND}'"
    assert gsettings("get", kb.GNOME_ENTRY, "name") == f"'{kb.SHORTCUT_NAME}'"

    kb.unbind_gnome()
    assert gsettings("get", SCHEMA, "custom-keybindings") == f"['{USER_PATH}']"
    for key in kb.GNOME_ENTRY_KEYS:
        assert gsettings("get", kb.GNOME_ENTRY, key) == "''"


def test_gnome_unbind_of_the_only_entry_leaves_an_empty_list(gnome):
    kb.bind_gnome("Meta+V")  # KDE's spelling is stored in GNOME's
    assert gsettings("get", kb.GNOME_ENTRY, "binding") == "'<Super>v'"
    kb.unbind_gnome()
    assert gsettings("get", SCHEMA, "custom-keybindings") == "@as []"


def test_gnome_dry_run_prints_the_exact_commands_and_changes_nothing(gnome):
    gsettings("set", SCHEMA, "custom-keybindings", f"['{USER_PATH}']")
    lines = kb.bind_gnome("<Super>v", dry_run=True)
    assert [shlex.split(line) for line in lines] == [
        ["gsettings", "set", kb.GNOME_ENTRY, "name", kb.SHORTCUT_NAME],
        ["gsettings", "set", kb.GNOME_ENTRY, "command", kb.TOGGLE_COMMAND],
        ["gsettings", "set", kb.GNOME_ENTRY, "binding", "<Super>v"],
        ["gsettings", "set", SCHEMA, "custom-keybindings", f'["{USER_PATH}", "{kb.GNOME_PATH}"]'],
    ]
    assert gsettings("get", kb.GNOME_ENTRY, "binding") == "''"
    # Running the printed commands does exactly what bind_gnome does.
    for line in lines:
        subprocess.run(shlex.split(line), check=True)
    assert gsettings("get", SCHEMA, "custom-keybindings") == f"['{USER_PATH}', '{kb.GNOME_PATH}']"
    assert gsettings("get", kb.GNOME_ENTRY, "binding") == "'<Super>v'"

    assert [shlex.split(line)[1] for line in kb.unbind_gnome(dry_run=True)] == ["set"] + 3 * [
        "reset"
    ]
    assert gsettings("get", kb.GNOME_ENTRY, "binding") == "'<Super>v'"


def test_missing_gsettings_is_a_clear_error(desktop_home, monkeypatch):
    monkeypatch.setenv("PATH", str(desktop_home))
    with pytest.raises(kb.KeybindingError, match="gsettings is not installed"):
        kb.bind_gnome("<Super>v")


def test_missing_gnome_schema_is_a_clear_error(gnome, monkeypatch):
    monkeypatch.setenv("XDG_DATA_DIRS", str(gnome / "data"))
    with pytest.raises(kb.KeybindingError, match=f"schema {SCHEMA} is not installed"):
        kb.bind_gnome("<Super>v")


def test_empty_accelerator_is_refused(desktop_home):
    with pytest.raises(kb.KeybindingError, match="shortcut is empty"):
        kb.bind_gnome("  ")
    with pytest.raises(kb.KeybindingError, match="shortcut is empty"):
        kb.bind_kde("")


@pytest.mark.parametrize(
    ("given", "gtk"),
    [
        ("<Super>v", "<Super>v"),
        ("<Primary><Alt>space", "<Primary><Alt>space"),
        ("Meta+V", "<Super>v"),
        ("ctrl+shift+F9", "<Control><Shift>F9"),
        ("F12", "F12"),
    ],
)
def test_gnome_accelerator_keeps_gtk_spelling_and_translates_kde_spelling(given, gtk):
    assert kb.gnome_accelerator(given) == gtk


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("<Super>", "cannot read"),
        ("v<Super>", "cannot read"),
        ("<Super>v w", "cannot read"),
        ("Hyper+V", "unknown modifier Hyper"),
        ("Meta+Space", "in GNOME's spelling"),
    ],
)
def test_gnome_accelerator_refuses_what_gnome_would_never_match(desktop_home, bad, why):
    with pytest.raises(kb.KeybindingError, match=why):
        kb.bind_gnome(bad, dry_run=True)


@pytest.mark.parametrize(
    ("gtk", "kde"),
    [
        ("<Super>v", "Meta+V"),
        ("<Primary><Alt>space", "Ctrl+Alt+Space"),
        ("<Control><Shift>F9", "Ctrl+Shift+F9"),
        ("Meta+V", "Meta+V"),
    ],
)
def test_kde_accelerator_translates_gtk_spelling(gtk, kde):
    assert kb.kde_accelerator(gtk) == kde


@pytest.mark.parametrize("bad", ["<Hyper>v", "<Super>", "v<Super>"])
def test_kde_accelerator_rejects_what_it_cannot_read(bad):
    with pytest.raises(kb.KeybindingError, match=r"modifier|cannot read"):
        kb.kde_accelerator(bad)


def test_kde_without_kwriteconfig_edits_the_file_keeping_other_entries(desktop_home, kde_bin):
    shortcuts = desktop_home / "config" / "kglobalshortcutsrc"
    others = "[kwin]\nExpose=Ctrl+F9,Ctrl+F9,Toggle Present Windows\n"
    shortcuts.write_text(others)
    lines = kb.bind_kde("<Super>v")
    kb.bind_kde("Meta+V")
    desktop = desktop_home / "data" / "applications" / "v2m-toggle.desktop"
    assert desktop.read_text() == (
        "[Desktop Entry]\nType=Application\nName=v2m: toggle dictation\n"
        f"Exec={kb.TOGGLE_COMMAND}\nNoDisplay=true\nX-KDE-Shortcuts=Meta+V\n"
    )
    assert shortcuts.read_text() == f"{others}\n[services][v2m-toggle.desktop]\n_launch=Meta+V\n"
    assert lines[0] == f"KDE: Meta+V runs: {kb.TOGGLE_COMMAND}"
    assert lines[-1] == "undo with: v2mctl bind kde --remove"

    kb.unbind_kde()
    assert not desktop.exists()
    assert shortcuts.read_text() == f"{others}"


def test_kde_unbind_without_a_shortcuts_file_creates_none(desktop_home, kde_bin):
    kb.unbind_kde()
    assert not (desktop_home / "config" / "kglobalshortcutsrc").exists()


def test_kde_unreadable_shortcuts_file_is_a_clear_error(desktop_home, kde_bin):
    shortcuts = desktop_home / "config" / "kglobalshortcutsrc"
    shortcuts.write_text("not an ini file\n")
    with pytest.raises(kb.KeybindingError, match="cannot read"):
        kb.bind_kde("Meta+V")
    assert shortcuts.read_text() == "not an ini file\n"


def test_kde_with_kwriteconfig_runs_it_with_the_exact_arguments(desktop_home, kde_bin):
    log = desktop_home / "kwriteconfig.log"
    tool = kde_bin / "kwriteconfig6"
    tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {log}\nprintf "%s\\n" --- >> {log}\n')
    tool.chmod(0o755)
    shortcuts = str(desktop_home / "config" / "kglobalshortcutsrc")
    where = ["--file", shortcuts, "--group", "services", "--group", "v2m-toggle.desktop"]
    bind_args = [*where, "--key", "_launch", "Meta+V"]
    unbind_args = [*where, "--key", "_launch", "--delete"]

    dry = kb.bind_kde("Meta+V", dry_run=True)
    assert shlex.split(dry[-1]) == ["kwriteconfig6", *bind_args]
    assert shlex.split(kb.unbind_kde(dry_run=True)[-1]) == ["kwriteconfig6", *unbind_args]
    assert not log.exists()

    kb.bind_kde("Meta+V")
    kb.unbind_kde()
    assert log.read_text().split("\n") == [*bind_args, "---", *unbind_args, "---", ""]


def test_kde_dry_run_writes_nothing(desktop_home, kde_bin):
    lines = kb.bind_kde("Meta+V", dry_run=True)
    assert "X-KDE-Shortcuts=Meta+V" in lines
    assert lines[-1].startswith("set [services][v2m-toggle.desktop] _launch=Meta+V in ")
    kb.unbind_kde(dry_run=True)
    written = [p for d in ("data", "config") for p in (desktop_home / d).rglob("*")]
    assert written == []
