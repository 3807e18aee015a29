"""RemoteWorker: final text from a speech server, the local model's when the server fails."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeEngine, FakeWorker, Reading, StateLog

from v2md.asr.streaming import PausesOnly
from v2md.asr.types import ModelState
from v2md.config import ConfigError, WhisperConfig, load_config
from v2md.errors import InvalidStateError, ModelError, OperationTimeoutError, V2MError
from v2md.remote.worker import RETRY_AFTER_S, RemoteWorker, shown_url

SPEECH = np.full(16_000, 0.1, np.float32)  # what it says does not matter to the fakes


def worker(engine, local=None, **cfg) -> tuple[RemoteWorker, list, list, Reading]:
    """A RemoteWorker over ``engine`` (and ``local``): it, the model states and errors it
    reports, and its clock."""
    states = StateLog()
    errors: list[V2MError] = []
    clock = Reading(1000.0)
    settings = WhisperConfig(engine="wyoming", url="tcp://box:10300", remote_only=local is None)
    remote = RemoteWorker(
        engine,
        local,
        settings.model_copy(update=cfg),
        on_state=states,
        on_error=errors.append,
        clock=clock,
    )
    return remote, states.states, errors, clock


def local_worker() -> FakeWorker:
    """The local worker: its text says it is the local model's."""
    return FakeWorker("local text")


async def test_the_server_makes_the_final_text_and_model_names_it():
    remote, states, errors, _ = worker(FakeEngine("large-v3", " Big model text. "), local_worker())
    await remote.load()
    assert states == [ModelState.LOADING, ModelState.READY]
    assert remote.model_name == "large-v3 on Fake server tcp://box:10300"
    assert await remote.transcribe_speech(SPEECH) == "Big model text."
    assert errors == []


async def test_a_failing_server_gives_the_local_text_one_error_then_rests():
    failure = ModelError("Fake server tcp://box:10300: cannot connect: refused")
    engine = FakeEngine(failure, "server text")
    remote, states, errors, clock = worker(engine, local_worker())
    assert await remote.transcribe_speech(SPEECH) == "local text"
    assert [type(e) for e in errors] == [ModelError]
    assert "cannot connect" in errors[0].message and "local model" in errors[0].message
    assert states[-1] == ModelState.FAILED
    clock.value += RETRY_AFTER_S / 2
    assert await remote.transcribe_speech(SPEECH) == "local text"
    assert len(engine.asked) == 1 and len(errors) == 1  # resting: not asked, not reported
    clock.value += RETRY_AFTER_S
    assert await remote.transcribe_speech(SPEECH) == "server text"
    assert len(engine.asked) == 2 and states[-1] == ModelState.READY


async def test_a_server_that_does_not_answer_times_out_to_the_local_text():
    remote, _, errors, _ = worker(FakeEngine("hang"), local_worker(), remote_timeout_s=0.05)
    assert await remote.transcribe_speech(SPEECH) == "local text"
    assert [type(e) for e in errors] == [OperationTimeoutError]
    assert "did not answer within 0.05 s" in errors[0].message


async def test_remote_only_has_no_fallback_the_caller_gets_the_error():
    remote, _, errors, _ = worker(FakeEngine(ModelError("Fake server: 500")))
    with pytest.raises(ModelError, match="Fake server: 500"):
        await remote.transcribe_speech(SPEECH)
    assert errors == []  # the caller reports it (a dictation keeps its audio)
    remote.language = "de"  # no local English-only model to refuse it
    assert remote.language == "de"


async def test_remote_only_manages_no_local_models():
    remote, *_ = worker(FakeEngine("text"))
    with pytest.raises(InvalidStateError, match="remote_only"):
        await remote.list_models()
    with pytest.raises(InvalidStateError, match="remote_only"):
        await remote.pull_model("small")


async def test_the_language_goes_to_the_server():
    engine = FakeEngine("text")
    remote, *_ = worker(engine, language="fr")
    await remote.transcribe_speech(SPEECH)
    remote.language = "auto"
    await remote.transcribe_speech(SPEECH)
    assert engine.asked == ["fr", None]


async def test_a_describe_failure_is_the_failed_model_state():
    failure = ModelError("Fake server tcp://box:10300: cannot connect")
    remote, states, _, _ = worker(FakeEngine(failure), local_worker())
    with pytest.raises(ModelError):
        await remote.load()
    assert states == [ModelState.LOADING, ModelState.FAILED]
    assert remote.model_name == "Fake server tcp://box:10300"


async def test_pauses_only_live_text_shows_nothing_while_speaking():
    stream = PausesOnly()
    stream.append(SPEECH)
    assert await stream.update() is None


def test_a_url_is_shown_without_its_password():
    assert shown_url("http://me:secret@box:8000/v1") == "http://box:8000/v1"
    assert shown_url("tcp://box:10300") == "tcp://box:10300"


@pytest.fixture
def load(monkeypatch, tmp_path):
    """load_config with these environment variables and no config file."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    return lambda environ: load_config(None, environ)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ENGINE": "wyoming"}, "engine = 'wyoming' needs url = 'tcp://host:port"),
        ({"ENGINE": "wyoming", "URL": "http://box/v1"}, "tcp:// or unix://"),
        ({"ENGINE": "wyoming", "URL": "tcp://box"}, "needs url = 'tcp://host:port"),
        ({"ENGINE": "openai", "URL": "tcp://box:1"}, "http:// or https://"),
        ({"ENGINE": "openai", "URL": "http://box/v1"}, "needs remote_model"),
        ({"REMOTE_ONLY": "true"}, "remote_only = true needs engine"),
        ({"ENGINE": "wyoming", "URL": "tcp://b:1", "REMOTE_TIMEOUT_S": "0"}, "remote_timeout_s"),
    ],
)
def test_remote_settings_are_checked(load, settings, message):
    environ = {f"V2M_WHISPER__{key}": value for key, value in settings.items()}
    with pytest.raises(ConfigError, match="whisper") as info:
        load(environ)
    assert message in str(info.value)


def test_the_api_key_comes_from_the_environment_and_is_never_shown(load):
    environ = {
        "OPENAI_API_KEY": "sk-very-secret",
        "V2M_WHISPER__ENGINE": "openai",
        "V2M_WHISPER__URL": "http://box:8000/v1",
        "V2M_WHISPER__REMOTE_MODEL": "whisper-1",
    }
    cfg = load(environ)
    assert cfg.whisper.api_key.get_secret_value() == "sk-very-secret"
    with pytest.raises(ConfigError) as info:  # a check across the section's keys
        load({**environ, "V2M_WHISPER__LANGUAGE": "de"})
    assert "English-only" in str(info.value) and "sk-very-secret" not in str(info.value)


def test_remote_only_needs_no_local_model_for_its_language(load):
    environ = {
        "V2M_WHISPER__ENGINE": "wyoming",
        "V2M_WHISPER__URL": "tcp://box:10300",
        "V2M_WHISPER__REMOTE_ONLY": "true",
        "V2M_WHISPER__LANGUAGE": "de",
    }
    assert load(environ).whisper.language == "de"


async def test_a_server_decodes_each_stretch_once_settled_and_a_stop_sends_only_the_tail():
    """The final pass is the same in front of a server: settled text is never sent again,
    and a Stop right after the last word sends the unsettled tail, not the dictation."""
    from test_finalpass import Recording, Speller, said

    from v2md.asr.finalpass import FinalPass
    from v2md.audio.format import SAMPLE_RATE

    speller = Speller()
    decoder = FakeWorker(speller)  # the server's decodes, counted as a worker's are
    engine = FakeEngine("large-v3")
    engine.transcribe = lambda audio, language, deadline: decoder.transcribe_speech(audio)
    remote, _states, errors, _clock = worker(engine, local_worker())
    recording = Recording(FinalPass(remote))
    for _ in range(12):  # a minute and a half: a sentence of 4 s and a pause, twelve times
        await recording.sentence()
    before = len(decoder.decoded)
    end = recording.speak()  # the last sentence, and Stop at once
    assert await recording.final.finish(end) == said(recording.words)
    assert errors == []  # every word is the server's
    assert len(decoder.decoded) == before + 1
    assert decoder.decoded[-1] <= 12 * SAMPLE_RATE  # the tail, not the 90 s dictation
    assert max(speller.times_heard.values()) <= 3
