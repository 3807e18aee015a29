"""Delivery builds exact, injection-proof commands and runs the real xclip under Xvfb."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from v2md.config import OutputConfig
from v2md.delivery import TYPE_CHUNK_CHARS, Command, Delivery
from v2md.errors import DeliveryError

HOSTILE = 'it\'s "quoted" $(rm -rf ~) `id` ; | & \n second line\ttab \x1b[31m\x07 ünïcödé'
ALL_TOOLS = {"wl-copy", "xclip", "xsel", "wtype", "ydotool", "xdotool"}


def delivery(env: dict, tools=ALL_TOOLS, **cfg) -> Delivery:
    return Delivery(
        OutputConfig(**cfg), env, which=lambda t: f"/usr/bin/{t}" if t in tools else None
    )


WAYLAND = {"WAYLAND_DISPLAY": "wayland-0"}
X11 = {"DISPLAY": ":0"}


def test_clipboard_commands_take_the_text_on_stdin_only():
    assert delivery(WAYLAND).plan(HOSTILE) == [Command(("wl-copy",), HOSTILE.encode())]
    assert delivery(X11).plan(HOSTILE) == [
        Command(("xclip", "-selection", "clipboard", "-in"), HOSTILE.encode())
    ]
    assert delivery(X11, tools={"xsel"}).plan("x") == [
        Command(("xsel", "--clipboard", "--input"), b"x")
    ]


def test_typing_filters_control_characters_and_chunks_long_text():
    big = "a" * (TYPE_CHUNK_CHARS * 100) + HOSTILE  # over 100 kB
    plan = delivery(WAYLAND, clipboard=False, type=True).plan(big)
    assert {c.argv for c in plan} == {("wtype", "-")}
    typed = b"".join(c.stdin for c in plan).decode()
    assert typed == big.replace("\x1b", "").replace("\x07", "")
    assert (
        "\n" in typed and "\t" in typed and all(len(c.stdin) <= 4 * TYPE_CHUNK_CHARS for c in plan)
    )
    assert len(plan) == -(-len(typed) // TYPE_CHUNK_CHARS)


@pytest.mark.parametrize(
    ("env", "tools", "argv"),
    [
        (WAYLAND, {"ydotool"}, ("ydotool", "type", "--file", "-")),
        (X11, {"xdotool"}, ("xdotool", "type", "--clearmodifiers", "--file", "-")),
    ],
)
def test_typing_tool_is_chosen_per_session(env, tools, argv):
    (command,) = delivery(env, tools=tools, clipboard=False, type=True).plan("hello")
    assert command == Command(argv, b"hello")


def test_paste_copies_then_sends_ctrl_v():
    plan = delivery(X11, paste=True).plan("hi")
    assert plan == [
        Command(("xclip", "-selection", "clipboard", "-in"), b"hi"),
        Command(("xdotool", "key", "--clearmodifiers", "ctrl+v"), b""),
    ]


def test_missing_tool_names_the_package():
    with pytest.raises(DeliveryError, match=r"wl-copy \(package wl-clipboard") as info:
        delivery(WAYLAND, tools=set()).plan("x")
    assert "history" in str(info.value)
    with pytest.raises(DeliveryError, match=r"xclip .* or xsel"):
        delivery(X11, tools=set()).plan("x")


def test_no_graphical_session_is_a_clear_error():
    with pytest.raises(DeliveryError, match="WAYLAND_DISPLAY nor DISPLAY"):
        delivery({}).plan("x")


def test_nothing_enabled_plans_nothing():
    assert delivery({}, clipboard=False).plan("x") == []


@pytest.fixture
def xvfb():
    if not (shutil.which("Xvfb") and shutil.which("xclip")):
        pytest.skip("Xvfb and xclip are not installed (apt-get install xvfb xclip)")
    display = f":{os.getpid() % 500 + 100}"
    proc = subprocess.Popen(["Xvfb", display, "-nolisten", "tcp"], stderr=subprocess.DEVNULL)
    socket = f"/tmp/.X11-unix/X{display[1:]}"
    deadline = time.monotonic() + 20
    while not os.path.exists(socket):
        assert time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.05)
    yield display
    proc.terminate()
    proc.wait()


async def test_real_clipboard_under_xvfb(xvfb):
    text = HOSTILE + "\n" + "x" * 100_000
    await Delivery(OutputConfig(), {"DISPLAY": xvfb}).deliver(text)
    pasted = subprocess.run(
        ["xclip", "-selection", "clipboard", "-out"],
        env={**os.environ, "DISPLAY": xvfb},
        capture_output=True,
        timeout=20,
        check=True,
    ).stdout.decode()
    assert pasted == text
