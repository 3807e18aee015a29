"""Shared fixtures: a private session bus, the real daemon on it, and a client connection."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import speech
from dbus_fast import Variant
from dbus_fast.aio import MessageBus
from harness import STARTED, Daemon, assert_eventually

from v2md import INTERFACE
from v2md.client import dictation_proxy
from v2md.privatebus import PrivateBus

# pytester runs pytest on tests of a test's own; ci_skips fails a CI run on a skip it
# does not expect.
pytest_plugins = ("pytester", "ci_skips")


# Which words tiny.en gets wrong shifts with CTranslate2's CPU kernels: Intel MKL on Intel
# CPUs, oneDNN elsewhere, each per instruction set. Accuracy tests compare word error rates
# within a point, so every machine (and every daemon the tests start) uses one kernel set,
# and a figure measured here is the figure CI measures. Set before CTranslate2 first runs.
def _has_avx2() -> bool:
    try:
        return " avx2 " in Path("/proc/cpuinfo").read_text() + " "
    except OSError:
        return False


if _has_avx2():
    for _name, _value in (
        ("CT2_USE_MKL", "0"),
        ("CT2_FORCE_CPU_ISA", "AVX2"),
        ("ONEDNN_MAX_CPU_ISA", "AVX2"),
    ):
        os.environ.setdefault(_name, _value)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the log of every daemon and mock it talked to: those
    it started, and those still running from a module's fixture."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for proc in STARTED:
            report.sections.append((f"{proc.name} log ({proc.log_path})", proc.log()[-20000:]))
    if report.when == "teardown":
        STARTED[:] = [proc for proc in STARTED if proc.alive()]


@pytest.fixture(scope="module")
def private_bus():
    bus = PrivateBus()
    yield bus
    bus.close()


@dataclass(frozen=True)
class SpeechFile:
    path: Path
    text: str
    speech_s: float  # where the speech ends; silence follows until the end of the file


@pytest.fixture
def own_bus():
    """A bus of the test's own, for tests that run (and stop) a daemon of their own."""
    bus = PrivateBus()
    yield bus
    bus.close()


@pytest.fixture(scope="session")
def speech_file(tmp_path_factory) -> SpeechFile:
    """About eight seconds of espeak speech, then a minute of silence, as a 16 kHz WAV.

    The silence keeps the source open so a test decides when to Stop.
    """
    text = " ".join(speech.SENTENCES[1:3])
    audio = speech.speak(text)
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    speech.write_wav(path, np.concatenate([audio, speech.silence(60)]))
    return SpeechFile(path, text, audio.size / speech.SAMPLE_RATE)


@pytest.fixture(scope="module")
def shared_daemon(private_bus, speech_file, tmp_path_factory):
    """One v2md per test module, recording from the speech file at real time."""
    d = Daemon(
        private_bus,
        tmp_path_factory.mktemp("home"),
        V2M_AUDIO__FILE=str(speech_file.path),
        V2M_AUDIO__REALTIME="true",
    ).start()
    asyncio.run(d.wait_ready())
    yield d
    d.stop()


async def _as_started(d: Daemon) -> None:
    """Put back what a test can change of a daemon through its bus API: no recording, the
    language it started with, an empty history."""
    bus = await MessageBus(bus_address=d.bus.address).connect()
    try:
        iface, props = await dictation_proxy(bus)

        async def state() -> str:
            return (await props.call_get(INTERFACE, "State")).value

        async def idle() -> bool:
            return await state() == "idle"

        if await state() == "recording":
            await iface.call_cancel()
        await assert_eventually(idle, timeout=60)
        await props.call_set(INTERFACE, "Language", Variant("s", "auto"))
        await iface.call_clear_history()
    finally:
        bus.disconnect()


@pytest.fixture
def daemon(shared_daemon):
    """The module's v2md, as it started: what the test changed is put back after it."""
    yield shared_daemon
    assert shared_daemon.alive(), "the daemon died during the test"
    loop = asyncio.new_event_loop()  # its own: no loop runs while a fixture is torn down
    try:
        loop.run_until_complete(_as_started(shared_daemon))
    finally:
        loop.close()


@pytest.fixture
async def client(daemon):
    bus = await MessageBus(bus_address=daemon.bus.address).connect()
    iface, props = await dictation_proxy(bus)
    yield iface, props
    bus.disconnect()
