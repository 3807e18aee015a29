"""Final text from a real Wyoming server (wyoming-faster-whisper) through the live daemon."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import speech
from fake_hub import bundled_model_dir
from harness import Watch, assert_eventually, model_state_is, running_daemon

from v2md import INTERFACE
from v2md.errors import ERROR_PREFIX

pytestmark = pytest.mark.slow

MAX_WER = 20.0  # tiny.en on espeak speech, here and on the server, as in test_dictation
SERVER_LOG_TEXT = "INFO:wyoming_faster_whisper.dispatch_handler:"  # the server logs each text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class WyomingServer:
    """``wyoming-faster-whisper`` serving the bundled tiny.en on a free loopback port."""

    def __init__(self, data_dir: Path, cpu_threads: int = 1) -> None:
        model = bundled_model_dir()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = data_dir / "server.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "wyoming_faster_whisper"),
                    *("--uri", self.url, "--model", str(model), "--local-files-only"),
                    *("--data-dir", str(data_dir), "--compute-type", "int8", "--beam-size", "1"),
                    *("--cpu-threads", str(cpu_threads)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 120) -> None:
        async def listening() -> bool:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await assert_eventually(listening, timeout=timeout, message="the server did not listen")

    def texts(self) -> list[str]:
        """The texts the server has sent back, from its log."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line.removeprefix(SERVER_LOG_TEXT) for line in lines if SERVER_LOG_TEXT in line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def wyoming_server(tmp_path_factory):
    server = WyomingServer(tmp_path_factory.mktemp("wyoming"))
    asyncio.run(server.wait_ready())
    yield server
    server.stop()


def wyoming_settings(url: str, speech_path: Path, **more: str) -> dict[str, str]:
    return {
        "V2M_WHISPER__ENGINE": "wyoming",
        "V2M_WHISPER__URL": url,
        "V2M_AUDIO__FILE": str(speech_path),
        **more,
    }


async def dictate(iface, props, watch: Watch, speech_s: float, during=None) -> str:
    """Start, (run ``during`` once live text shows), wait for the speech end, Stop."""
    started = time.monotonic()
    await iface.call_start()
    if during is not None:
        await assert_eventually(lambda: watch.provisional, timeout=30, message="no live text")
        during()
    speech_over = started + speech_s
    await assert_eventually(
        lambda: any(t > speech_over and not active for t, active in watch.speech), timeout=60
    )
    return await iface.call_stop()


async def test_file_and_dictation_get_their_final_text_from_the_server(
    own_bus, tmp_path, wyoming_server, speech_file
):
    settings = wyoming_settings(wyoming_server.url, speech_file.path)
    async with running_daemon(own_bus, tmp_path, **settings) as (daemon, iface, props):
        watch = Watch(iface, props)
        await assert_eventually(lambda: model_state_is(props, "ready"), timeout=60)
        model = (await props.call_get(INTERFACE, "Model")).value
        assert f"Wyoming server {wyoming_server.url}" in model, model

        served = len(wyoming_server.texts())
        text = await iface.call_transcribe_file(str(speech_file.path))
        assert speech.wer(speech_file.text, text) <= MAX_WER, text
        assert len(wyoming_server.texts()) > served  # the server made it
        assert speech.wer(speech_file.text, " ".join(wyoming_server.texts()[served:])) <= MAX_WER

        served = len(wyoming_server.texts())
        final = await dictate(iface, props, watch, speech_file.speech_s)
        assert speech.wer(speech_file.text, final) <= MAX_WER, final
        assert watch.provisional  # live text from the local model meanwhile
        assert len(wyoming_server.texts()) > served
        assert watch.errors == []
        assert daemon.alive()


async def test_server_stopped_mid_dictation_the_local_text_is_delivered_and_named(
    own_bus, tmp_path, speech_file
):
    server = WyomingServer(tmp_path / "wyoming")
    try:
        await server.wait_ready()
        settings = wyoming_settings(server.url, speech_file.path)
        async with running_daemon(own_bus, tmp_path / "home", **settings) as (_d, iface, props):
            watch = Watch(iface, props)
            final = await dictate(iface, props, watch, speech_file.speech_s, during=server.stop)
            assert speech.wer(speech_file.text, final) <= MAX_WER, final
            assert watch.finals == [final]
            await assert_eventually(lambda: watch.errors, timeout=10)
            name, message = watch.errors[0]
            assert name == ERROR_PREFIX + "Model"
            assert f"Wyoming server {server.url}" in message and "local model" in message
            state = (await props.call_get(INTERFACE, "ModelState")).value
            assert state == "failed"
    finally:
        server.stop()


async def test_a_hanging_server_times_out_and_the_daemon_answers_meanwhile(own_bus, tmp_path):
    text = speech.SENTENCES[3]
    wav = speech.write_wav(tmp_path / "one.wav", speech.speak(text))
    # Accepts connections (the kernel completes them) and never reads or answers.
    with contextlib.closing(socket.socket()) as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        url = f"tcp://127.0.0.1:{hung.getsockname()[1]}"
        settings = wyoming_settings(url, wav, V2M_WHISPER__REMOTE_TIMEOUT_S="10")
        async with running_daemon(own_bus, tmp_path, **settings) as (daemon, iface, props):
            watch = Watch(iface, props)
            transcribing = asyncio.ensure_future(iface.call_transcribe_file(str(wav)))
            # While the file waits for the server, the daemon answers other calls (the
            # timeout leaves room for these on a slow machine).
            for _ in range(3):
                assert (await props.call_get(INTERFACE, "State")).value == "idle"
                assert (await iface.call_toggle()) == "recording"
                await iface.call_cancel()
            assert not transcribing.done()
            result = await asyncio.wait_for(transcribing, timeout=120)
            assert speech.wer(text, result) <= MAX_WER, result
            await assert_eventually(lambda: watch.errors, timeout=10)
            name, message = watch.errors[0]
            assert name == ERROR_PREFIX + "Timeout"
            assert url in message and "10 s" in message and "local model" in message
            assert daemon.alive()


async def test_a_server_silent_at_start_up_fails_the_model_and_the_start_up_goes_on(
    own_bus, tmp_path
):
    text = speech.SENTENCES[2]
    home = tmp_path / "home"
    # What a daemon killed mid-dictation left: its capture file, held by no one.
    capture = home / "state" / "v2m" / "capture"
    capture.mkdir(parents=True)
    speech.write_wav(capture / "capture-999999-0.wav", speech.speak(text))
    with contextlib.closing(socket.socket()) as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        url = f"tcp://127.0.0.1:{hung.getsockname()[1]}"
        settings = wyoming_settings(url, tmp_path / "unused.wav", V2M_WHISPER__REMOTE_TIMEOUT_S="1")
        async with running_daemon(own_bus, home, **settings) as (daemon, iface, props):
            await assert_eventually(lambda: model_state_is(props, "failed"), timeout=30)
            await assert_eventually(lambda: "model not loaded" in daemon.log(), timeout=10)
            said = [line for line in daemon.log().splitlines() if "model not loaded" in line]
            assert len(said) == 1 and "did not answer within 1 s" in said[0], said
            # The dead daemon's dictation is recovered all the same, by the local model.
            rows = []

            async def recovered() -> bool:
                rows[:] = await iface.call_get_history(10)
                return bool(rows)

            await assert_eventually(recovered, timeout=120, message="nothing recovered")
            ((_, raw, _),) = rows
            assert speech.wer(text, raw) <= MAX_WER, raw
            assert (await props.call_get(INTERFACE, "State")).value == "idle"
            assert daemon.alive()
