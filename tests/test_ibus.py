"""The IBus path against a real ibus-daemon and real text windows under Xvfb.

The live daemon dictates recorded speech at real time; its IBus helper shows the
provisional text as the focused field's preedit and commits the final text. The
user's input method is not replaced: the helper borrows the emoji extension's place
for one dictation and gives it back.

What a user sees (preedit while speaking, then exactly LastText, with no key event and
the clipboard untouched) is tested in each toolkit Debian 12 brings IBus to: GTK 3
(ibus-gtk3), GTK 4 (ibus-gtk4) and Qt 5 (Qt's own IBus input context, in libqt5gui5,
driven from python3-pyqt5). A lost field is tested in GTK 3 and GTK 4, the other tests
use GTK 3. Qt is left out of the lost-field test because it fails there: a Qt
application has one IBus input context for all its fields, so when the focus moves to
another field of the same window, or the field is closed and the focus falls to the
next, ibus-daemon reports no change of context and the final text goes into that other
field; and Qt commits the preedit shown so far into the field it leaves (as it does for
any input method), so the provisional words stay there too.
"""

from __future__ import annotations

import numpy as np
import pytest
import recorded
import speech
from fake_llm_servers import FakeOllama
from harness import Watch, assert_eventually, running_daemon
from ibus_desktop import (
    GTK3,
    GTK4,
    TOOLKITS,
    IBusDaemon,
    TextWindow,
    Toolkit,
    Xvfb,
    clipboard,
    need_desktop,
    set_clipboard,
)

from v2md import INTERFACE
from v2md.desktop.ibus import EXTENSION_NAME
from v2md.errors import ERROR_PREFIX

pytestmark = pytest.mark.slow

BEFORE = "what the user had copied"
HOSTILE = 'Ñandú — «¿qué?» 🎙 it\'s "quoted"\tand\ttabbed,\nsecond line'
LONG = ("dictated at length, " * 100)[:1999] + "."  # 2,000 characters


@pytest.fixture(params=[GTK3], ids=str)
def toolkit(request) -> Toolkit:
    """The text window's toolkit: GTK 3, unless a test asks for each of them."""
    return request.param


@pytest.fixture
def desktop_ready(toolkit):
    need_desktop(toolkit)


@pytest.fixture
def xvfb(desktop_ready):
    server = Xvfb()
    yield server.display
    server.stop()


@pytest.fixture
async def ibus(xvfb, own_bus, tmp_path):
    daemon = await IBusDaemon(tmp_path / "ibus", xvfb, own_bus.address).start()
    yield daemon
    daemon.stop()


@pytest.fixture
async def window(xvfb, ibus, toolkit):
    win = await TextWindow.open(xvfb, ibus, toolkit)
    set_clipboard(xvfb, BEFORE)
    yield win
    await win.close()


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    """Six seconds of a recorded speaker, then a minute of silence: Stop ends it."""
    audio, _ = recorded.cards()
    audio = audio[: 6 * speech.SAMPLE_RATE]
    path = tmp_path_factory.mktemp("ibus-speech") / "cards.wav"
    return speech.write_wav(path, np.concatenate([audio, speech.silence(60)]))


def settings(xvfb, ibus, wav, **more: str) -> dict[str, str]:
    return {
        "DISPLAY": xvfb,
        "IBUS_ADDRESS": ibus.address,
        "V2M_OUTPUT__TYPE": "true",
        "V2M_OUTPUT__CLIPBOARD": "true",  # the fallback; untouched when IBus commits
        "V2M_AUDIO__FILE": str(wav),
        "V2M_AUDIO__REALTIME": "true",
        **more,
    }


async def speak_until_preedit(iface, window: TextWindow) -> None:
    """Start a dictation and wait until its speech shows as preedit: a Stop before any
    audio was heard would rightly give no text."""
    before = len(window.preedits())
    await iface.call_start()
    await assert_eventually(
        lambda: any(window.preedits()[before:]), timeout=30, message="no preedit while speaking"
    )


@pytest.mark.parametrize("toolkit", TOOLKITS, ids=str, indirect=True)
async def test_live_text_is_preedit_then_last_text_is_committed(
    own_bus, tmp_path, xvfb, ibus, window, speech_wav
):
    picker = await ibus.name_owner(EXTENSION_NAME)
    async with running_daemon(own_bus, tmp_path / "home", **settings(xvfb, ibus, speech_wav)) as (
        daemon,
        iface,
        props,
    ):

        async def delivery_path() -> str:
            return (await props.call_get(INTERFACE, "DeliveryPath")).value

        await assert_eventually(lambda: delivery_path(), timeout=20)
        assert await delivery_path() == "ibus"  # "auto" chose IBus: it runs
        await speak_until_preedit(iface, window)
        assert window.text() == ""  # provisional text is only preedit
        text = await iface.call_stop()
        assert text == (await props.call_get(INTERFACE, "LastText")).value
        assert text
        await assert_eventually(lambda: window.text() == text, timeout=10)
        assert window.preedits()[-1] == ""
        assert window.keys() == []  # no key event synthesized
        assert clipboard(xvfb) == BEFORE
        # The emoji picker has its place back.
        await assert_eventually(lambda: ibus.name_owner(EXTENSION_NAME), timeout=10)
        assert await ibus.name_owner(EXTENSION_NAME) == picker
        assert daemon.alive()


async def test_hostile_and_long_texts_arrive_exactly(
    own_bus, tmp_path, xvfb, ibus, window, speech_wav
):
    with FakeOllama(reply=HOSTILE) as ollama:
        refine = {
            "V2M_LLM__PROVIDER": "ollama",
            "V2M_LLM__OLLAMA__HOST": ollama.url,
            "V2M_LLM__AUTO_REFINE": "true",
        }
        env = settings(xvfb, ibus, speech_wav, **refine)
        async with running_daemon(own_bus, tmp_path / "home", **env) as (_, iface, _props):
            await speak_until_preedit(iface, window)
            await iface.call_stop()
            await assert_eventually(lambda: window.text() == HOSTILE, timeout=30)
            ollama.reply = LONG
            await speak_until_preedit(iface, window)
            await iface.call_stop()
            await assert_eventually(lambda: window.text() == HOSTILE + LONG, timeout=30)
    assert window.keys() == []
    assert clipboard(xvfb) == BEFORE


async def test_cancel_clears_the_preedit(own_bus, tmp_path, xvfb, ibus, window, speech_wav):
    async with running_daemon(own_bus, tmp_path / "home", **settings(xvfb, ibus, speech_wav)) as (
        _,
        iface,
        _props,
    ):
        await speak_until_preedit(iface, window)
        await iface.call_cancel()
        await assert_eventually(lambda: window.preedits()[-1] == "", timeout=10)
    assert window.text() == ""
    assert clipboard(xvfb) == BEFORE


@pytest.mark.parametrize("toolkit", [GTK3, GTK4], ids=str, indirect=True)
@pytest.mark.parametrize("event", ["focus moved", "field closed", "ibus-daemon killed"])
async def test_a_lost_field_is_a_delivery_error_with_the_text_kept(
    own_bus, tmp_path, xvfb, ibus, window, speech_wav, event
):
    async with running_daemon(own_bus, tmp_path / "home", **settings(xvfb, ibus, speech_wav)) as (
        daemon,
        iface,
        props,
    ):
        seen = Watch(iface)
        await speak_until_preedit(iface, window)
        if event == "focus moved":
            await window.command("focus second")
            await assert_eventually(lambda: window.focused == "second", timeout=10)
        elif event == "field closed":
            await window.command("close first")
            await assert_eventually(lambda: ["closed", "first"] in window.reports, timeout=10)
        else:
            ibus.stop()
        text = await iface.call_stop()
        await assert_eventually(lambda: seen.errors, timeout=20, message="no Error signal")
        name, message = seen.errors[-1]
        assert name == ERROR_PREFIX + "Delivery"
        assert message.startswith("cannot commit the text through IBus: ")
        assert message.endswith("The text is on the clipboard and in the history")
        assert clipboard(xvfb) == text  # the documented fallback
        (entry,) = await iface.call_get_history(1)
        assert entry[1] == text
        assert window.text("second") == ""  # never typed into another field
        if event != "field closed":
            assert window.text() == ""  # nor is the provisional text left in the first
        assert daemon.alive()
        assert (await props.call_get(INTERFACE, "State")).value == "idle"
