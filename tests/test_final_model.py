"""Final text's own model and beam search; live and final decodes side by side (issue 18)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import speech

from v2md.asr import models
from v2md.asr.types import ModelState
from v2md.asr.worker import WhisperWorker
from v2md.config import ConfigError, WhisperConfig, load_config

SPEECH = np.full(16_000, 0.1, np.float32)  # what it says does not matter to the fakes


class NamedModel:
    """A loaded model that answers with its own name and the beam width it was asked for;
    a decode waits while ``gate`` is clear."""

    def __init__(self, name: str, gate: threading.Event) -> None:
        self.name = name
        self.gate = gate
        self.running = threading.Event()
        self.model = SimpleNamespace(
            device="cpu", compute_type="int8", is_multilingual=not name.endswith(".en")
        )
        self.languages: list[str | None] = []  # asked for, per decode
        self.temperatures: list[float | None] = []  # asked for, per decode (None: fallback)
        self.language = "en"

    def segments(self, audio, frames, max_windows, options):
        self.languages.append(options.language)
        self.temperatures.append(options.temperature)
        self.running.set()
        self.gate.wait(10)
        text = f" {self.name}-beam{options.beam_size}"
        return [SimpleNamespace(text=text, words=[SimpleNamespace(start=0, end=0.5, word=text)])]

    def windows(self, audio, options):
        return iter([(f" {self.name}-beam{options.beam_size}", 1.0)])


class Loader:
    """Stands in for ``models.load``: one NamedModel per load, named by the spec."""

    def __init__(self) -> None:
        self.loaded: list[tuple[str, int]] = []  # (model, decodes it may run at once)
        self.gates: dict[str, threading.Event] = {}
        self.models: dict[str, NamedModel] = {}

    def __call__(self, spec, cpu_threads, on_download, *, workers=1):
        self.threads = cpu_threads
        name = spec.display_name.split()[0]
        self.loaded.append((name, workers))
        self.models[name] = NamedModel(name, self.gates[name])
        return self.models[name]


@pytest.fixture
def loader(monkeypatch) -> Loader:
    fake = Loader()
    for name in ("tiny.en", "base"):
        fake.gates[name] = threading.Event()
        fake.gates[name].set()
    monkeypatch.setattr(models, "load", fake)
    return fake


async def test_final_text_comes_from_the_final_model_with_its_beam_and_live_text_greedily(
    loader, tmp_path
):
    worker = WhisperWorker(WhisperConfig(final_model="base", beam_size=5))
    live = await worker.transcribe(SPEECH, window_s=3.0)
    final = await worker.transcribe_speech(SPEECH)
    file_text = await worker.transcribe_file(speech.write_wav(tmp_path / "speech.wav", SPEECH))
    await worker.close()
    assert [w.text.strip() for w in live] == ["tiny.en-beam1"]
    assert final == "base-beam5"
    assert set(file_text.split()) == {"base-beam5"}
    assert worker.model_name.startswith("tiny.en") and "final text base" in worker.model_name


async def test_without_a_final_model_one_model_makes_both_texts_beam_only_for_final(loader):
    worker = WhisperWorker(WhisperConfig(beam_size=4))
    live = await worker.transcribe(SPEECH, window_s=3.0)
    final = await worker.transcribe_speech(SPEECH)
    await worker.close()
    assert [w.text.strip() for w in live] == ["tiny.en-beam1"]
    assert final == "tiny.en-beam4"
    # One model in memory, serving a live and a final decode at once.
    assert loader.loaded == [("tiny.en", 2)]


async def test_speech_cut_in_mid_word_is_decoded_without_temperature_fallback(loader):
    """A confirmation's audio ends in mid speech: a cut last word would send the decoder up
    faster-whisper's fallback ladder, a decode at each step, for words that are not kept.
    Complete speech keeps the fallback, as a file's decode has it."""
    worker = WhisperWorker(WhisperConfig())
    await worker.transcribe_speech(SPEECH)
    await worker.transcribe_speech(SPEECH, in_speech=True)
    assert loader.models["tiny.en"].temperatures == [None, 0.0]
    await worker.close()


async def test_both_models_load_together_and_unload_together(loader):
    states: list[ModelState] = []
    worker = WhisperWorker(
        WhisperConfig(final_model="base", idle_unload_s=1),
        lambda state, _detail: states.append(state),
    )
    await worker.transcribe(SPEECH, window_s=3.0)  # a live decode loads the final model too
    assert sorted(name for name, _ in loader.loaded) == ["base", "tiny.en"]
    await asyncio.sleep(1.5)
    assert worker.state == ModelState.UNLOADED
    assert worker._final_model is None and worker._model is None  # no model held while idle
    assert await worker.transcribe_speech(SPEECH) == "base-beam1"
    assert sorted(name for name, _ in loader.loaded) == ["base", "base", "tiny.en", "tiny.en"]
    await worker.close()


@pytest.mark.parametrize("final_model", ["", "base"])
async def test_a_final_decode_does_not_wait_behind_a_live_decode_in_progress(loader, final_model):
    worker = WhisperWorker(WhisperConfig(final_model=final_model))
    await worker.load()
    live_model = loader.models["tiny.en"]
    live_model.gate = threading.Event()  # the live decode hangs until released
    live = asyncio.create_task(worker.transcribe(SPEECH, window_s=3.0))
    await asyncio.to_thread(live_model.running.wait, 5)
    if not final_model:
        live_model.gate, hung = loader.gates["tiny.en"], live_model.gate  # final runs freely
    else:
        hung = live_model.gate
    final = await asyncio.wait_for(worker.transcribe_speech(SPEECH), timeout=5)
    assert final.endswith("-beam1")
    assert not live.done()  # the live decode was still running all along
    hung.set()
    await live
    await worker.close()


async def test_with_parallel_decodes_off_a_final_decode_waits_for_the_live_one(loader):
    worker = WhisperWorker(WhisperConfig(parallel_decodes=False))
    await worker.load()
    model = loader.models["tiny.en"]
    model.gate = threading.Event()
    live = asyncio.create_task(worker.transcribe(SPEECH, window_s=3.0))
    await asyncio.to_thread(model.running.wait, 5)
    final = asyncio.create_task(worker.transcribe_speech(SPEECH))
    await asyncio.sleep(0.3)
    assert not final.done()  # one thread: behind the live decode
    model.gate.set()
    assert await final == "tiny.en-beam1"
    await live
    await worker.close()
    assert loader.loaded == [("tiny.en", 1)]


def test_final_model_must_know_the_language_set(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[whisper]\nmodel = "base"\nfinal_model = "tiny.en"\nlanguage = "de"\n')
    with pytest.raises(ConfigError, match="English"):
        load_config(path)


async def test_an_english_only_live_model_makes_the_final_model_decode_english(loader):
    worker = WhisperWorker(WhisperConfig(final_model="base"))  # language "auto"
    await worker.transcribe(SPEECH, window_s=3.0)
    await worker.transcribe_speech(SPEECH)
    await worker.close()
    # Detecting the language would cost each final decode a full 30 s window more.
    assert loader.models["base"].languages == ["en"]


def test_decodes_side_by_side_share_the_cores_unless_told_otherwise():
    from v2md.asr.worker import decode_threads

    assert decode_threads(parallel=True, cores=2) == 1  # a core for each
    assert decode_threads(parallel=True, cores=8) == 4
    assert decode_threads(parallel=True, cores=1) == 1
    assert decode_threads(parallel=False, cores=8) == 0  # CTranslate2's own choice


async def test_numpys_blas_runs_on_the_calling_thread_once_a_worker_exists():
    # OpenBLAS's own threads spin after each call: a third of a dictation's CPU.
    import threadpoolctl

    threadpoolctl.threadpool_limits(2, user_api="blas")
    worker = WhisperWorker(WhisperConfig())
    blas = threadpoolctl.threadpool_info()
    await worker.close()
    assert blas and all(pool["num_threads"] == 1 for pool in blas if pool["user_api"] == "blas")
