"""Delivery builds exact, injection-proof commands and runs the real xclip under Xvfb."""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import assert_eventually

from v2md.config import OutputConfig
from v2md.desktop.delivery import TYPE_CHUNK_CHARS, Command, Delivery, run_command
from v2md.errors import DeliveryError

HOSTILE = 'it\'s "quoted" $(rm -rf ~) `id` ; | & \n second line\ttab \x1b[31m\x07\x9b1m ünïcödé'
ALL_TOOLS = {"wl-copy", "xclip", "xsel", "wtype", "ydotool", "xdotool"}


def delivery(env: dict, tools=ALL_TOOLS, **cfg) -> Delivery:
    return Delivery(
        OutputConfig(**cfg), env, which=lambda t: f"/usr/bin/{t}" if t in tools else None
    )


WAYLAND = {"WAYLAND_DISPLAY": "wayland-0"}
X11 = {"DISPLAY": ":0"}
WL_COPY = ("wl-copy", "--type", "text/plain;charset=utf-8")
X11_COPY = ("xclip", "-selection", "clipboard", "-in")
XDOTOOL_TYPE = ("xdotool", "type", "--clearmodifiers", "--file", "-")
TYPED = HOSTILE.replace("\x1b", "").replace("\x07", "").replace("\x9b", "")


def test_clipboard_commands_take_the_text_on_stdin_only():
    assert delivery(WAYLAND).plan(HOSTILE) == [Command(WL_COPY, HOSTILE.encode())]
    assert delivery(X11).plan(HOSTILE) == [Command(X11_COPY, HOSTILE.encode())]
    assert delivery(X11, tools={"xsel"}).plan("x") == [
        Command(("xsel", "--clipboard", "--input"), b"x")
    ]


def test_typing_filters_control_characters_and_chunks_long_text():
    big = "a" * (TYPE_CHUNK_CHARS * 100) + HOSTILE  # over 100 kB
    plan = delivery(WAYLAND, clipboard=False, type=True).plan(big)
    assert {c.argv for c in plan} == {("wtype", "-")}
    typed = b"".join(c.stdin for c in plan).decode()
    assert typed == "a" * (TYPE_CHUNK_CHARS * 100) + TYPED
    assert (
        "\n" in typed and "\t" in typed and all(len(c.stdin) <= 4 * TYPE_CHUNK_CHARS for c in plan)
    )
    assert len(plan) == -(-len(typed) // TYPE_CHUNK_CHARS)
    # a chunk's deadline grows with its length: typing tools pace their key presses
    assert plan[0].timeout_s > plan[-1].timeout_s > Command((), b"").timeout_s


GNOME_WAYLAND = {**WAYLAND, "XDG_CURRENT_DESKTOP": "ubuntu:GNOME"}


@pytest.mark.parametrize(
    ("env", "tools", "argv"),
    [
        (WAYLAND, ALL_TOOLS, ("wtype", "-")),
        (WAYLAND, {"ydotool"}, ("ydotool", "type", "--file", "-")),
        (GNOME_WAYLAND, ALL_TOOLS, ("ydotool", "type", "--file", "-")),
        (X11, ALL_TOOLS, XDOTOOL_TYPE),
    ],
)
def test_typing_tool_is_chosen_per_session(env, tools, argv):
    (command,) = delivery(env, tools=tools, clipboard=False, type=True).plan(HOSTILE)
    assert (command.argv, command.stdin) == (argv, TYPED.encode())


def test_xdotool_presses_capitals_outside_ascii_with_shift():
    # typed, xdotool would lowercase them (see the real widget test below)
    plan = delivery(X11, clipboard=False, type=True).plan("Über ÄÖ ßx")
    shifted = "key --clearmodifiers shift+U{:04X}\n".format
    assert [(c.argv, c.stdin.decode()) for c in plan] == [
        (("xdotool", "-"), shifted(0xDC)),
        (XDOTOOL_TYPE, "ber "),
        (("xdotool", "-"), shifted(0xC4) + shifted(0xD6)),
        (XDOTOOL_TYPE, " ßx"),
    ]


def test_typing_tool_by_name_overrides_the_choice():
    plan = delivery(GNOME_WAYLAND, clipboard=False, type=True, typing_tool="wtype").plan("x")
    assert [c.argv for c in plan] == [("wtype", "-")]
    with pytest.raises(DeliveryError, match="xdotool is not installed"):
        delivery(X11, tools={"xclip"}, type=True, typing_tool="xdotool").plan("x")


@pytest.mark.parametrize(
    ("env", "tools", "keys"),
    [
        (X11, ALL_TOOLS, ("xdotool", "key", "--clearmodifiers", "ctrl+v")),
        (WAYLAND, ALL_TOOLS, ("wtype", "-M", "ctrl", "v", "-m", "ctrl")),
        (GNOME_WAYLAND, ALL_TOOLS, ("ydotool", "key", "29:1", "47:1", "47:0", "29:0")),
    ],
)
def test_paste_copies_then_sends_ctrl_v(env, tools, keys):
    copy = Command(WL_COPY if "WAYLAND_DISPLAY" in env else X11_COPY, HOSTILE.encode())
    assert delivery(env, tools=tools, paste=True).plan(HOSTILE) == [copy, Command(keys, b"")]


def test_missing_tool_names_the_package():
    with pytest.raises(DeliveryError) as info:
        delivery(WAYLAND, tools=set()).plan("x")
    assert str(info.value) == (
        "cannot deliver the text: wl-copy is not installed; install the package "
        "'wl-clipboard' (the same name on Debian, Fedora and Arch). "
        "The text is kept in the history: v2mctl history"
    )
    with pytest.raises(DeliveryError, match=r"xclip or xsel is not installed.*'xclip' or 'xsel'"):
        delivery(X11, tools=set()).plan("x")
    with pytest.raises(DeliveryError, match=r"ydotool is not installed.*'ydotool'"):
        delivery(GNOME_WAYLAND, tools={"wl-copy"}, type=True).plan("x")


def test_no_graphical_session_is_a_clear_error():
    with pytest.raises(DeliveryError, match="WAYLAND_DISPLAY nor DISPLAY"):
        delivery({}).plan("x")


def test_nothing_enabled_plans_nothing():
    assert delivery({}, clipboard=False).plan("x") == []


def test_tools_run_in_a_utf8_locale_whatever_the_daemons():
    env = {**X11, "LANG": "C", "LC_ALL": "POSIX", "PATH": "/usr/bin"}
    assert delivery(env).tool_environment() == {
        **X11,
        "LANG": "C",
        "PATH": "/usr/bin",
        "LC_CTYPE": "C.UTF-8",
    }


# A stand-in for every tool: records its argv (NUL-separated, one line a call), its stdin
# and its LC_CTYPE, so a test sees exactly what deliver() executed.
RECORDER = """#!/bin/sh
printf '%s\\0' "$0" "$@" >> "$LOG/argv"
printf '\\n' >> "$LOG/argv"
cat >> "$LOG/stdin"
printf '%s\\n' "$LC_CTYPE" >> "$LOG/locale"
"""


def on_path(cfg: OutputConfig, env: dict) -> Delivery:
    """Delivery looking tools up on env's PATH, the one they run from."""
    return Delivery(cfg, env, which=lambda tool: shutil.which(tool, path=env["PATH"]))


@pytest.fixture
def recording_tools(tmp_path):
    """A PATH where every delivery tool is RECORDER, and the env to run them with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ALL_TOOLS:
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    path = f"{bin_dir}:{os.defpath}"  # the recorder needs cat
    return {"PATH": path, "LOG": str(tmp_path), "LC_ALL": "C"}, tmp_path


@pytest.mark.parametrize(
    ("env", "cfg"),
    [
        (WAYLAND, {"type": True}),
        (GNOME_WAYLAND, {"paste": True}),
        (X11, {"type": True}),
        (X11, {"paste": True}),
    ],
)
async def test_deliver_runs_exactly_the_planned_commands(recording_tools, env, cfg):
    tool_env, log = recording_tools
    text = HOSTILE + "x" * (2 * TYPE_CHUNK_CHARS)
    d = on_path(OutputConfig(**cfg), {**tool_env, **env})
    plan = d.plan(text)
    await d.deliver(text)
    calls = [line.split(b"\0")[:-1] for line in (log / "argv").read_bytes().splitlines()]
    bin_dir = log / "bin"
    assert calls == [
        [f"{bin_dir}/{c.argv[0]}".encode(), *map(str.encode, c.argv[1:])] for c in plan
    ]
    assert (log / "stdin").read_bytes() == b"".join(c.stdin for c in plan)
    assert (log / "locale").read_text().split() == ["C.UTF-8"] * len(plan)


async def test_deliveries_in_quick_succession_do_not_interleave(recording_tools):
    tool_env, log = recording_tools
    first, second = "1" * (3 * TYPE_CHUNK_CHARS), "2" * (3 * TYPE_CHUNK_CHARS)
    d = on_path(OutputConfig(clipboard=False, type=True), {**tool_env, **X11})
    await asyncio.gather(d.deliver(first), d.deliver(second))
    assert (log / "stdin").read_text() == first + second


async def test_a_failing_tool_is_a_delivery_error_with_its_message_and_a_hint(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ydotool").write_text("#!/bin/sh\necho 'failed to connect socket' >&2\nexit 2\n")
    (bin_dir / "ydotool").chmod(0o755)
    env = {**WAYLAND, "PATH": str(bin_dir)}
    d = on_path(OutputConfig(clipboard=False, type=True, typing_tool="ydotool"), env)
    with pytest.raises(DeliveryError) as info:
        await d.deliver("hello")
    assert str(info.value) == (
        "ydotool failed with exit status 2: failed to connect socket "
        "(ydotool needs its ydotoold daemon running, with access to /dev/uinput)"
    )


async def test_a_tool_gone_since_the_plan_is_a_delivery_error(tmp_path):
    d = delivery({**X11, "PATH": str(tmp_path)})  # which() says yes, PATH has nothing
    with pytest.raises(DeliveryError, match="cannot run xclip: No such file or directory"):
        await d.deliver("x")


async def test_a_hung_tool_is_killed_and_reported(tmp_path):
    hung = tmp_path / "hung"
    hung.write_text("#!/bin/sh\nexec sleep 600\n")
    hung.chmod(0o755)
    with pytest.raises(DeliveryError, match=r"hung did not finish within 0.1 s"):
        await run_command(Command((str(hung),), b"", timeout_s=0.1), {"PATH": "/usr/bin:/bin"})


def need(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        names = " ".join(missing)
        pytest.skip(f"{names} not installed (apt-get install {names.lower()})")


@pytest.fixture
def xvfb():
    """A private X server on a display number it found free; its DISPLAY."""
    need("Xvfb")
    ready, write_end = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        # Xvfb writes the display number once it accepts clients.
        assert select.select([ready], [], [], 20)[0], "Xvfb did not start within 20 s"
        number = os.read(ready, 16).decode().strip()
        assert number, "Xvfb exited before it was ready"
        yield f":{number}"
    finally:
        os.close(ready)
        proc.terminate()
        proc.wait()


async def test_real_clipboard_under_xvfb(xvfb):
    need("xclip")
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


WIDGET_TITLE = "v2m typing target"
# Typed into a real widget: HOSTILE's shell syntax, newline, tab, control characters and
# lowercase accents, with capitals whose accented form is on no US key.
REAL_TAIL = " $(echo pwned) Ñandú, Émile, Über, Øre, straße €"
REAL_TEXT = HOSTILE + REAL_TAIL


class TextWidget:
    """tests/x11_text_widget.py running on an X display, read through its reports."""

    def __init__(self, proc: asyncio.subprocess.Process, env: dict) -> None:
        self._proc = proc
        self._env = env

    async def report(self, kind: str) -> str:
        """The text of the widget's next report of ``kind``."""
        while True:
            line = await asyncio.wait_for(self._proc.stdout.readline(), 20)
            assert line, f"the widget exited without a {kind!r} report"
            got, text = json.loads(line)
            if got == kind:
                return text

    async def final_text(self) -> str:
        """What the widget holds once every key sent so far has reached it."""
        xdotool(self._env, "key", "F12")
        return await self.report("final")


def xdotool(env: dict, *args: str) -> str:
    return subprocess.run(
        ["xdotool", *args], env=env, capture_output=True, timeout=20, check=True, text=True
    ).stdout.strip()


@pytest.fixture
async def text_widget(xvfb):
    """A real X11 text widget on the private display, mapped and holding the focus."""
    need("xdotool")
    pytest.importorskip("tkinter", reason="tkinter is not installed (apt-get install python3-tk)")
    env = {**os.environ, "DISPLAY": xvfb}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("x11_text_widget.py")),
        WIDGET_TITLE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        window = xdotool(env, "search", "--sync", "--name", WIDGET_TITLE)
        await assert_eventually(
            lambda: xdotool(env, "getwindowfocus") == window,
            message="the widget never got the keyboard focus",
        )
        yield TextWidget(proc, env)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_xdotool_types_hostile_text_into_a_real_x11_widget(xvfb, text_widget):
    cfg = OutputConfig(clipboard=False, type=True, typing_tool="xdotool")
    await Delivery(cfg, {"DISPLAY": xvfb}).deliver(REAL_TEXT)
    # Control characters are not typed (they would be key presses); all else is, exactly.
    assert await text_widget.final_text() == TYPED + REAL_TAIL


async def test_paste_through_xclip_and_xdotool_lands_in_a_real_x11_widget(xvfb, text_widget):
    need("xclip")
    await Delivery(OutputConfig(paste=True), {"DISPLAY": xvfb}).deliver(REAL_TEXT)
    await text_widget.report("changed")  # the widget has fetched the clipboard
    # Pasting keeps the clipboard's text whole, control characters included.
    assert await text_widget.final_text() == REAL_TEXT


@pytest.mark.parametrize(
    ("env", "tools", "typed", "shift_return"),
    [
        (
            X11,
            ALL_TOOLS,
            ("xdotool", "type", "--clearmodifiers", "--file", "-"),
            ("xdotool", "key", "--clearmodifiers", "shift+Return"),
        ),
        (
            WAYLAND,
            ALL_TOOLS,
            ("wtype", "-"),
            ("wtype", "-M", "shift", "-k", "Return", "-m", "shift"),
        ),
        (
            GNOME_WAYLAND,
            ALL_TOOLS,
            ("ydotool", "type", "--file", "-"),
            ("ydotool", "key", "42:1", "28:1", "28:0", "42:0"),
        ),
    ],
)
def test_a_line_break_is_typed_as_configured(env, tools, typed, shift_return):
    text = "Dear Anna,\n\nThanks."
    plan = delivery(env, tools=tools, clipboard=False, type=True, newline="shift-return").plan
    line_break = Command(shift_return, b"")
    assert plan(text) == [
        Command(typed, b"Dear Anna,", plan(text)[0].timeout_s),
        line_break,
        line_break,
        Command(typed, b"Thanks.", plan(text)[-1].timeout_s),
    ]
    returned = delivery(env, tools=tools, clipboard=False, type=True).plan(text)
    assert [c.stdin for c in returned] == [text.encode()]  # Return: "\n" typed as it is
    pasted = delivery(env, tools=tools, clipboard=False, type=True, newline="paste").plan
    assert [c.stdin for c in pasted(text)] == [text.encode(), b""]  # copied, then the chord
    assert [c.stdin for c in pasted("One line.")] == [b"One line."]  # typed as before


@pytest.mark.parametrize(
    ("env", "cfg", "path"),
    [
        (X11, {}, "clipboard"),
        (X11, {"clipboard": False}, "none"),
        (X11, {"type": True}, "xdotool"),
        (WAYLAND, {"type": True}, "wtype"),
        (X11, {"type": True, "typing_tool": "ibus"}, "ibus"),
        (X11, {"paste": True, "typing_tool": "ibus"}, "xdotool"),  # pasting takes a tool
    ],
)
async def test_delivery_path_names_how_the_next_text_goes(env, cfg, path):
    assert await delivery(env, **cfg).path() == path
