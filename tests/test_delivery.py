"""Delivery builds exact, injection-proof commands and runs the real xclip under Xvfb."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import pytest

from v2md.config import OutputConfig
from v2md.delivery import TYPE_CHUNK_CHARS, Command, Delivery, _run
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
        (X11, ALL_TOOLS, ("xdotool", "type", "--clearmodifiers", "--file", "-")),
    ],
)
def test_typing_tool_is_chosen_per_session(env, tools, argv):
    (command,) = delivery(env, tools=tools, clipboard=False, type=True).plan(HOSTILE)
    assert (command.argv, command.stdin) == (argv, TYPED.encode())


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
        await _run(Command((str(hung),), b"", timeout_s=0.1), {"PATH": "/usr/bin:/bin"})


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
