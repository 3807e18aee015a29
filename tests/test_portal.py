"""Typing through the RemoteDesktop portal, against a stand-in portal on a private bus.

``Delivery`` and ``RemoteKeyboard`` talk to ``fake_portal.FakePortal`` over a real
dbus-daemon; the clipboard tools are two small scripts sharing one file, which the
fake portal reads when it sees the paste chord, as the focused app would.
"""

from __future__ import annotations

import os
import shutil
import stat

import pytest
from dbus_fast.aio import MessageBus
from fake_portal import REMOTE_DESKTOP, FakePortal

from v2md.config import ConfigError, OutputConfig, load_config
from v2md.desktop.delivery import Delivery
from v2md.desktop.portal import Portal, RemoteKeyboard, TokenFile
from v2md.errors import DeliveryError

# Quotes, a command substitution, newlines and tabs are typed; the Latin-1 letters,
# Cyrillic, Greek and the emoji are not on a US layout, so they go the paste route.
HOSTILE = 'it\'s "quoted" $(rm -rf ~) `id`;\n second\tline: ünïcödé Привет κόσμε 🎤 end'
CLIPBOARD_BEFORE = "what the user had copied"

# Stand-ins for wl-copy and wl-paste over one file ($CLIP).
WL_COPY = '#!/bin/sh\ncat > "$CLIP"\n'
WL_PASTE = '#!/bin/sh\n[ -s "$CLIP" ] || { echo "Nothing is copied" >&2; exit 1; }\ncat "$CLIP"\n'


@pytest.fixture
def tools(tmp_path):
    """The environment delivery runs its tools in: fake wl-clipboard, a GNOME Wayland session."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in (("wl-copy", WL_COPY), ("wl-paste", WL_PASTE)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    clip = tmp_path / "clipboard"
    clip.write_text(CLIPBOARD_BEFORE)
    return {
        "PATH": f"{bin_dir}:{os.defpath}",
        "CLIP": str(clip),
        "WAYLAND_DISPLAY": "wayland-0",
        "XDG_CURRENT_DESKTOP": "ubuntu:GNOME",
    }


@pytest.fixture
async def portal(own_bus, tmp_path, tools):
    fake = await FakePortal(own_bus.address, clipboard=tmp_path / "clipboard").start()
    yield fake
    fake.stop()


@pytest.fixture
async def bus(own_bus):
    connection = await MessageBus(bus_address=own_bus.address).connect()
    yield connection
    connection.disconnect()


def portal_delivery(bus, tools, token_path, **cfg) -> Delivery:
    keyboard = RemoteKeyboard(Portal(bus), TokenFile(token_path))
    return Delivery(
        OutputConfig(**{"clipboard": False, "type": True, **cfg}),
        tools,
        which=lambda tool: shutil.which(tool, path=tools["PATH"]),
        keyboard=keyboard,
    )


async def test_keys_spell_the_text_and_the_clipboard_is_put_back(portal, bus, tools, tmp_path):
    token = tmp_path / "state" / "v2m" / "remote-desktop.token"
    delivery = portal_delivery(bus, tools, token, typing_tool="portal")
    await delivery.deliver(HOSTILE + "\x1b\x07\x9b")
    assert portal.typed == HOSTILE  # control characters are never pressed
    assert portal.dropped == [] and portal.held == set()
    assert (tmp_path / "clipboard").read_text() == CLIPBOARD_BEFORE
    assert portal.dialogs[REMOTE_DESKTOP] == 1
    # The grant is remembered with a single-use token only its owner can read.
    assert token.read_text() in portal.valid_tokens
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(token.parent.stat().st_mode) == 0o700


async def test_the_session_is_kept_and_made_again_without_a_dialog(portal, bus, tools, tmp_path):
    token = tmp_path / "token"
    delivery = portal_delivery(bus, tools, token, typing_tool="portal")
    await delivery.deliver("one ")
    await delivery.deliver("two ")
    assert portal.sessions_created[REMOTE_DESKTOP] == 1
    first_token = token.read_text()
    portal.close_sessions()  # the screen locked
    await delivery.deliver("three")
    assert portal.typed == "one two three"
    assert portal.sessions_created[REMOTE_DESKTOP] == 2
    assert portal.dialogs[REMOTE_DESKTOP] == 1  # restored with the stored token
    assert token.read_text() != first_token and token.read_text() in portal.valid_tokens


async def test_a_new_daemon_restores_the_grant_from_the_token_file(portal, bus, tools, tmp_path):
    token = tmp_path / "token"
    await portal_delivery(bus, tools, token, typing_tool="portal").deliver("first")
    await portal_delivery(bus, tools, token, typing_tool="portal").deliver(" second")
    assert portal.typed == "first second"
    assert portal.dialogs[REMOTE_DESKTOP] == 1


async def test_a_line_break_is_typed_as_configured_shift_return_or_return(
    portal, bus, tools, tmp_path
):
    text = "Dear Anna,\n\nThanks."
    shifted = portal_delivery(
        bus, tools, tmp_path / "token", typing_tool="portal", newline="shift-return"
    )
    await shifted.deliver(text)
    assert portal.typed == text and portal.shifted == ["\n", "\n"]
    assert portal.dropped == [] and portal.held == set()
    await portal_delivery(bus, tools, tmp_path / "token", typing_tool="portal").deliver(text)
    assert portal.typed == text * 2 and portal.shifted == ["\n", "\n"]  # plain Return


async def test_paste_mode_presses_the_chord_through_the_portal(portal, bus, tools, tmp_path):
    delivery = portal_delivery(bus, tools, tmp_path / "token", type=False, paste=True)
    await delivery.deliver(HOSTILE)
    assert portal.typed == HOSTILE and portal.held == set()


@pytest.mark.parametrize(
    ("desktop", "version", "types", "by_portal"),
    [
        ("ubuntu:GNOME", 2, 7, True),
        ("KDE", 2, 1, True),
        ("GNOME", 1, 7, False),  # no restore tokens: the user would be asked every time
        ("GNOME", 2, 2, False),  # pointer only
        ("sway", 2, 7, False),  # wlroots: wtype is the way there
    ],
)
async def test_auto_chooses_the_portal_on_gnome_and_kde_when_it_offers_a_keyboard(
    portal, bus, tools, tmp_path, desktop, version, types, by_portal
):
    portal.version, portal.device_types = version, types
    bin_dir = tools["PATH"].split(":")[0]
    for tool in ("wtype", "ydotool"):  # record their stdin, to see who typed
        (tmp_path / "bin" / tool).write_text(f'#!/bin/sh\ncat > "{tmp_path}/{tool}.typed"\n')
        (tmp_path / "bin" / tool).chmod(0o755)
    env = {**tools, "XDG_CURRENT_DESKTOP": desktop, "PATH": f"{bin_dir}:{os.defpath}"}
    await portal_delivery(bus, env, tmp_path / "token").deliver("hello")
    fallback = "ydotool" if "GNOME" in desktop else "wtype"
    assert portal.typed == ("hello" if by_portal else "")
    assert (tmp_path / f"{fallback}.typed").exists() is not by_portal


async def test_auto_asks_what_the_portal_offers_only_until_it_has_a_keyboard(
    portal, bus, tools, tmp_path
):
    delivery = portal_delivery(bus, tools, tmp_path / "token")  # typing_tool "auto"
    await delivery.deliver("one ")
    asked = portal.calls.count("org.freedesktop.DBus.Properties.Get")
    await delivery.deliver("two")
    assert portal.typed == "one two"
    assert portal.calls.count("org.freedesktop.DBus.Properties.Get") == asked


async def test_a_cancelled_dialog_is_a_delivery_error(portal, bus, tools, tmp_path):
    portal.answers["Start"] = 1
    delivery = portal_delivery(bus, tools, tmp_path / "token", typing_tool="portal")
    with pytest.raises(DeliveryError) as info:
        await delivery.deliver("hello")
    assert str(info.value) == (
        "cannot type through the desktop portal: Start: the user cancelled the desktop "
        "portal's dialog. The text is kept in the history: v2mctl history"
    )
    assert portal.sessions == {}  # the half-made session is closed
    portal.answers["Start"] = 0
    await delivery.deliver("hello")  # asked again next time, and granted
    assert portal.typed == "hello" and portal.dialogs[REMOTE_DESKTOP] == 2


async def test_a_vanished_portal_is_a_delivery_error(portal, bus, tools, tmp_path):
    delivery = portal_delivery(bus, tools, tmp_path / "token", typing_tool="portal")
    await delivery.deliver("before")
    portal.stop()
    with pytest.raises(DeliveryError, match=r"no desktop portal .* is running"):
        await delivery.deliver("after")


async def test_a_portal_without_a_keyboard_says_what_it_offers(portal, bus, tools, tmp_path):
    portal.version = 1
    delivery = portal_delivery(bus, tools, tmp_path / "token", typing_tool="portal")
    with pytest.raises(DeliveryError, match=r"RemoteDesktop \(version 1, device types 7\)"):
        await delivery.deliver("hello")
    assert portal.sessions_created[REMOTE_DESKTOP] == 0


def test_a_shortcut_trigger_the_portal_cannot_read_is_refused(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[shortcuts]\nenabled = true\npush_to_talk = "Ctrl Alt Space"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config, environ={})
    assert f"{config}:3: [shortcuts.push_to_talk] = 'Ctrl Alt Space'" in str(info.value)
    assert "as in 'LOGO+ALT+v'" in str(info.value)
    config.write_text('[shortcuts]\ntoggle = ""\npush_to_talk = "CTRL+SHIFT+F12"\n')
    assert load_config(config, environ={}).shortcuts.push_to_talk == "CTRL+SHIFT+F12"
