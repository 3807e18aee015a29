"""The live daemon against a stand-in desktop portal: typing, and push-to-talk.

The daemon runs on the test's bus with ``fake_portal.FakePortal`` as
``org.freedesktop.portal.Desktop``; a file source makes each dictation the same
sentence, and a stand-in Ollama with auto-refine turns it into hostile text, so
that what reaches the portal can be compared character for character.
"""

from __future__ import annotations

import os
import time

import pytest
import speech
from fake_llm_servers import FakeOllama
from fake_portal import REGISTRY, REMOTE_DESKTOP, SHORTCUTS, FakePortal
from harness import NotificationServer, Watch, assert_eventually, running_daemon

from v2md import BUS_NAME, INTERFACE
from v2md.errors import ERROR_PREFIX

pytestmark = pytest.mark.slow

# Quotes, a command substitution and newlines are typed; the accented, Cyrillic and
# Greek letters are not on the fake's US layout and go the paste route.
HOSTILE = 'it\'s "quoted" $(rm -rf ~) `id`;\nsecond line: ünïcödé Привет κόσμε\nend'
CLIPBOARD_BEFORE = "what the user had copied"
SENTENCE = speech.SENTENCES[3]
MAX_WER = 20.0

WL_COPY = '#!/bin/sh\ncat > "$CLIP"\n'
WL_PASTE = '#!/bin/sh\n[ -s "$CLIP" ] || { echo "Nothing is copied" >&2; exit 1; }\ncat "$CLIP"\n'


@pytest.fixture
def settings(tmp_path):
    """A GNOME Wayland session with fake wl-clipboard, typing on, a one-sentence source."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in (("wl-copy", WL_COPY), ("wl-paste", WL_PASTE)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "clipboard").write_text(CLIPBOARD_BEFORE)
    wav = speech.write_wav(tmp_path / "sentence.wav", speech.speak(SENTENCE))
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CLIP": str(tmp_path / "clipboard"),
        "WAYLAND_DISPLAY": "wayland-test",
        "XDG_CURRENT_DESKTOP": "GNOME",
        "V2M_OUTPUT__TYPE": "true",
        "V2M_AUDIO__FILE": str(wav),
        "V2M_AUDIO__REALTIME": "false",
    }


@pytest.fixture
async def portal(own_bus, tmp_path):
    fake = await FakePortal(own_bus.address, clipboard=tmp_path / "clipboard").start()
    yield fake
    fake.stop()


async def dictate(iface, watch: Watch) -> str:
    """One dictation that ends with its input; its final text."""
    count = len(watch.finals)
    await iface.call_start()
    await assert_eventually(lambda: len(watch.finals) > count, timeout=60)
    return watch.finals[-1]


async def test_auto_types_through_the_portal_and_keeps_its_session(
    own_bus, tmp_path, portal, settings
):
    with FakeOllama(reply=HOSTILE) as ollama:
        refine = {
            "V2M_LLM__PROVIDER": "ollama",
            "V2M_LLM__OLLAMA__HOST": ollama.url,
            "V2M_LLM__AUTO_REFINE": "true",
        }
        async with running_daemon(own_bus, tmp_path, **settings, **refine) as (_, iface, _):
            watch = Watch(iface)
            for count in (1, 2):
                text = await dictate(iface, watch)
                assert speech.wer(SENTENCE, text) <= MAX_WER, text
                # the text is whole at the last press; its release comes after
                await assert_eventually(
                    lambda count=count: portal.typed == HOSTILE * count and not portal.held,
                    timeout=20,
                    message=f"typed {portal.typed!r}, held {portal.held}",
                )
            assert portal.dropped == []
            # put back once the last key is typed
            clipboard = tmp_path / "clipboard"
            await assert_eventually(lambda: clipboard.read_text() == CLIPBOARD_BEFORE)
            # one session for both, one dialog, the token replaced after its Start
            assert portal.sessions_created[REMOTE_DESKTOP] == 1
            assert portal.dialogs[REMOTE_DESKTOP] == 1
            token = tmp_path / "state" / "v2m" / "remote-desktop.token"
            assert token.read_text() in portal.valid_tokens
            assert watch.errors == []


@pytest.mark.parametrize("failure", ["cancelled", "vanished"])
async def test_a_failed_portal_is_a_delivery_error_with_the_text_kept(
    own_bus, tmp_path, portal, settings, failure
):
    notifications = NotificationServer(own_bus)
    await notifications.start()
    if failure == "cancelled":
        portal.answers["Start"] = 1
    else:
        portal.stop()
    settings["V2M_OUTPUT__TYPING_TOOL"] = "portal"
    try:
        async with running_daemon(own_bus, tmp_path, **settings) as (daemon, iface, props):
            watch = Watch(iface)
            text = await dictate(iface, watch)
            await assert_eventually(lambda: watch.errors, timeout=20)
            ((name, message),) = watch.errors
            assert name == ERROR_PREFIX + "Delivery"
            reason = {
                "cancelled": "Start: the user cancelled the desktop portal's dialog",
                "vanished": "no desktop portal (org.freedesktop.portal.Desktop) is running",
            }[failure]
            assert message.startswith(f"cannot type through the desktop portal: {reason}")

            async def alerted():
                return [c for c in await notifications.calls("Notify") if c[3] != "Dictation"]

            await assert_eventually(alerted, timeout=10)
            (alert,) = await alerted()
            assert alert[3] == "Dictation not typed" and alert[4].endswith(text)
            ((_, raw, _),) = await iface.call_get_history(1)
            assert raw == text
            assert (await props.call_get(INTERFACE, "State")).value == "idle"
            assert daemon.alive()
    finally:
        notifications.stop()
    assert portal.typed == ""


def held_settings(settings: dict, speech_file, **shortcuts: str) -> dict:
    """Shortcuts on; the speech file at real time, so a recording lasts until released."""
    return {
        **settings,
        "V2M_SHORTCUTS__ENABLED": "true",
        "V2M_AUDIO__FILE": str(speech_file.path),
        "V2M_AUDIO__REALTIME": "true",
        **{f"V2M_SHORTCUTS__{key.upper()}": value for key, value in shortcuts.items()},
    }


async def test_push_to_talk_records_while_held_and_types_the_final_text(
    own_bus, tmp_path, portal, settings, speech_file
):
    config = held_settings(settings, speech_file, push_to_talk="CTRL+ALT+space", toggle="")
    async with running_daemon(own_bus, tmp_path, **config) as (daemon, iface, props):
        watch = Watch(iface, props)
        await assert_eventually(lambda: portal.bound, timeout=20, message="nothing bound")
        assert portal.bound == {
            "toggle": {"description": "Start or stop dictation"},
            "push-to-talk": {
                "description": "Dictate while held",
                "preferred_trigger": "CTRL+ALT+space",
            },
        }
        pressed = time.monotonic()
        portal.press("push-to-talk")
        await assert_eventually(lambda: watch.states == ["recording"], timeout=10)
        # Held through the speech: let go once the VAD has heard its end.
        speech_over = pressed + speech_file.speech_s
        await assert_eventually(
            lambda: any(t > speech_over and not on for t, on in watch.speech), timeout=30
        )
        assert watch.finals == []
        portal.press("push-to-talk", release=True)
        await assert_eventually(lambda: watch.finals, timeout=30)
        (text,) = watch.finals
        assert speech.wer(speech_file.text, text) <= MAX_WER, text
        assert watch.states == ["recording", "transcribing", "idle"]
        await assert_eventually(lambda: portal.typed == text, timeout=20)
        assert portal.dialogs[SHORTCUTS] == 1
        # Known by its desktop file's name, told before any other call (the fake refuses
        # a Register after one).
        assert portal.registered == [BUS_NAME]
        assert portal.calls[0] == f"{REGISTRY}.Register"
    assert "global shortcut push-to-talk: CTRL+ALT+space" in daemon.log()


async def test_a_release_that_never_comes_ends_at_the_limit(
    own_bus, tmp_path, portal, settings, speech_file
):
    config = held_settings(settings, speech_file, push_to_talk_limit_s="2")
    async with running_daemon(own_bus, tmp_path, **config) as (daemon, iface, props):
        watch = Watch(iface, props)
        await assert_eventually(lambda: portal.bound, timeout=20)
        portal.press("push-to-talk")
        await assert_eventually(lambda: watch.finals, timeout=30)
        assert watch.states == ["recording", "transcribing", "idle"]
        portal.press("push-to-talk", release=True)  # late: stops nothing, breaks nothing
        portal.press("toggle")  # the toggle shortcut starts ...
        await assert_eventually(lambda: watch.states[-1] == "recording", timeout=10)
        portal.press("toggle")  # ... and stops
        await assert_eventually(lambda: len(watch.finals) == 2, timeout=30)
        assert watch.errors == []
    assert "push-to-talk held for 2 s without a release" in daemon.log()


async def test_without_the_shortcuts_portal_the_daemon_says_so_once_and_works(
    own_bus, tmp_path, portal, settings, speech_file
):
    portal.offer -= {SHORTCUTS, REGISTRY}  # an xdg-desktop-portal before 1.19.3
    config = held_settings(settings, speech_file)
    async with running_daemon(own_bus, tmp_path, **config) as (daemon, iface, props):
        watch = Watch(iface, props)
        await assert_eventually(lambda: "global shortcuts are not available" in daemon.log())
        await iface.call_start()
        await iface.call_stop()
        await assert_eventually(lambda: watch.finals, timeout=30)
    assert daemon.log().count("global shortcuts are not available") == 1
    assert "v2mctl bind gnome|kde" in daemon.log()
    assert f"did not register {BUS_NAME}" in daemon.log()
