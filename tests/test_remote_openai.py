"""Final text from a server speaking the OpenAI transcription API (a loopback stand-in)."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
import speech
from dbus_fast import DBusError
from fake_transcription_server import TranscriptionServer
from fakes import FakeWorker
from harness import Watch, assert_eventually, model_state_is, running_daemon

from v2md import INTERFACE
from v2md.config import WhisperConfig
from v2md.errors import ERROR_PREFIX, ModelError, OperationTimeoutError
from v2md.remote.openai_compatible import MAX_RETRIES, OpenAIEngine
from v2md.remote.worker import RemoteWorker
from v2md.service import FILE_PROGRESS_INTERVAL_S

SPEECH = np.sin(np.arange(24_000) / 8).astype(np.float32) * 0.5  # 1.5 s of a tone
KEY = "sk-test-key"


@pytest.fixture
def server():
    with TranscriptionServer() as running:
        yield running


def settings(server: TranscriptionServer, **more) -> WhisperConfig:
    values = {
        "engine": "openai",
        "url": server.url,
        "remote_model": "whisper-large",
        "api_key": KEY,
        "remote_only": True,
        **more,
    }
    return WhisperConfig(**values)


async def transcribe(engine: OpenAIEngine, timeout: float = 30.0, language="en") -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        return await engine.transcribe(SPEECH, language, deadline)
    finally:
        await engine.close()


async def test_the_upload_is_the_multipart_form_the_api_takes(server):
    engine = OpenAIEngine(settings(server, initial_prompt="Names: Anouk, Wim."))
    assert await transcribe(engine) == " Text from the big model."  # verbose_json's text
    [upload] = server.uploads
    assert upload.authorization == f"Bearer {KEY}"
    assert upload.fields == {
        "model": "whisper-large",
        "response_format": "verbose_json",
        "temperature": "0",
        "language": "en",
        "prompt": "Names: Anouk, Wim.",
    }
    assert upload.filename.endswith(".wav") and upload.content_type == "audio/wav"
    assert (upload.rate, upload.channels) == (16_000, 1)
    assert np.abs(upload.audio - SPEECH).max() < 1e-3  # the same samples, as 16-bit PCM


async def test_auto_language_is_left_to_the_server_and_no_key_sends_no_header(server):
    engine = OpenAIEngine(settings(server, api_key=None))
    await transcribe(engine, language=None)
    [upload] = server.uploads
    assert "language" not in upload.fields and upload.authorization == ""


async def test_a_refused_key_is_named(server):
    server.script("401")
    with pytest.raises(ModelError) as info:
        await transcribe(OpenAIEngine(settings(server)))
    message = info.value.message
    assert f"OpenAI-compatible server {server.url} answered 401" in message
    assert "[whisper] api_key" in message and KEY not in message
    assert len(server.uploads) == 1  # not retried


async def test_a_429_is_retried_after_the_wait_the_server_asks_for(server):
    server.script("429", "ok")
    assert await transcribe(OpenAIEngine(settings(server))) == " Text from the big model."
    first, second = server.uploads
    assert second.at - first.at >= 1.0  # Retry-After: 1


async def test_429s_are_retried_a_bounded_number_of_times(server):
    server.script("429")
    server.retry_after = "0"
    with pytest.raises(ModelError, match=f"429 Too Many Requests after {MAX_RETRIES} retries"):
        await transcribe(OpenAIEngine(settings(server)))
    assert len(server.uploads) == MAX_RETRIES + 1


async def test_a_429_wait_past_the_deadline_fails_at_once(server):
    server.script("429")
    server.retry_after = "120"
    with pytest.raises(ModelError, match=re.escape("asks to wait 120.0 s, past")):
        await transcribe(OpenAIEngine(settings(server)), timeout=10)
    assert len(server.uploads) == 1


async def test_a_server_error_is_named_with_what_it_said(server):
    server.script("500")
    with pytest.raises(ModelError) as info:
        await transcribe(OpenAIEngine(settings(server)))
    assert "answered 500 Internal Server Error" in info.value.message
    assert "CUDA out of memory" in info.value.message


async def test_a_slow_answer_times_out_to_the_local_text(server):
    server.script("slow")
    errors = []
    cfg = settings(server, remote_only=False, remote_timeout_s=0.5)
    remote = RemoteWorker(OpenAIEngine(cfg), FakeWorker("local text"), cfg, on_error=errors.append)
    try:
        assert await remote.transcribe_speech(SPEECH) == "local text"
    finally:
        await remote.close()
    assert [type(e) for e in errors] == [OperationTimeoutError]
    assert server.url in errors[0].message and "0.5 s" in errors[0].message


async def test_describe_checks_the_model_is_served(server):
    assert await OpenAIEngine(settings(server)).describe() == "whisper-large"
    with pytest.raises(ModelError, match="no model 'large-v9', only whisper-large, whisper-sm"):
        await OpenAIEngine(settings(server, remote_model="large-v9")).describe()


async def test_nothing_listening_is_named(server):
    engine = OpenAIEngine(settings(server, url="http://127.0.0.1:9/v1"))
    named = re.escape("OpenAI-compatible server http://127.0.0.1:9/v1: Connect")
    with pytest.raises(ModelError, match=named):
        await transcribe(engine)


@pytest.mark.slow
async def test_remote_only_daemon_files_and_dictation_come_from_the_server(
    own_bus, tmp_path, server
):
    one = speech.write_wav(tmp_path / "one.wav", speech.speak(speech.SENTENCES[5]))
    settings = {
        "V2M_WHISPER__ENGINE": "openai",
        "V2M_WHISPER__URL": server.url,
        "V2M_WHISPER__REMOTE_MODEL": "whisper-large",
        "V2M_WHISPER__REMOTE_ONLY": "true",
        "V2M_WHISPER__MAX_FILE_S": "90",
        "OPENAI_API_KEY": KEY,
        "V2M_AUDIO__FILE": str(one),
        "V2M_AUDIO__REALTIME": "false",
    }
    async with running_daemon(own_bus, tmp_path / "home", **settings) as (daemon, iface, props):
        watch = Watch(iface, props)
        await assert_eventually(lambda: model_state_is(props, "ready"), timeout=30)
        model = (await props.call_get(INTERFACE, "Model")).value
        assert model == f"whisper-large on OpenAI-compatible server {server.url}"

        # A file in pieces of at most a minute, with progress up to 1 before the reply.
        audio, _ = speech.utterance(65)
        long = str(speech.write_wav(tmp_path / "long.wav", audio))
        progress: list[float] = []
        iface.on_file_progress(lambda _path, fraction: progress.append(fraction))
        # Each piece answered after longer than FileProgress's interval, so that the fraction
        # after the first piece goes out, however fast this machine is.
        server.slow_s = 2 * FILE_PROGRESS_INTERVAL_S
        server.script("slow")
        text = await iface.call_transcribe_file(long)
        server.script("ok")
        pieces = server.uploads
        assert len(pieces) >= 2 and all(u.audio.size <= 60 * 16_000 for u in pieces)
        assert sum(u.audio.size for u in pieces) == audio.size  # all of it, once
        assert text == " ".join(["Text from the big model."] * len(pieces))
        assert progress[0] == 0.0 and progress[-1] == 1.0 and len(progress) >= 3
        assert all(u.authorization == f"Bearer {KEY}" for u in server.uploads)

        # The same bound on a file's length as the local model's.
        too_long = speech.write_wav(tmp_path / "long2.wav", np.concatenate([audio, audio]))
        with pytest.raises(DBusError) as info:
            await iface.call_transcribe_file(str(too_long))
        assert info.value.type == ERROR_PREFIX + "InvalidArgument"
        assert "max_file_s = 90" in info.value.text

        # A dictation: no local model, so no live text while speaking; the server's text at
        # each pause and as the final text.
        uploads = len(server.uploads)
        await iface.call_start()
        await assert_eventually(lambda: watch.finals, timeout=60)
        assert watch.finals == ["Text from the big model."]
        assert set(watch.provisional) <= {"Text from the big model."}
        assert len(server.uploads) > uploads
        assert (await props.call_get(INTERFACE, "ModelState")).value == "ready"
        assert watch.errors == []

        # No local model to fall back on: the audio is kept and the server named.
        server.script("500")
        await iface.call_start()
        await assert_eventually(lambda: watch.errors, timeout=60)
        name, message = watch.errors[0]
        assert name == ERROR_PREFIX + "Model"
        assert f"{server.url} answered 500" in message and "the audio is kept in" in message
        assert list((tmp_path / "home" / "state" / "v2m" / "recordings").glob("*.wav"))
        assert daemon.alive()
    assert "tiny.en" not in daemon.log()  # no local model was loaded
