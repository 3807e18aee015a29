"""Loading the Whisper model: a failure says what went wrong and what to change."""

from __future__ import annotations

import logging

import pytest

from v2md.asr import models
from v2md.config import WhisperConfig
from v2md.errors import ModelError

USE_AUTO_OR_CPU = 'set [whisper] device = "auto" to use a GPU only when one works, or "cpu"'
# CTranslate2's own words when the GPU cannot be used.
CUDA_FAILURES = [
    "CUDA failed with error no CUDA-capable device is detected",
    "cuDNN failed with status CUDNN_STATUS_NOT_INITIALIZED",
    "Library libcublas.so.12 is not found or cannot be loaded",
]


def gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(models.ctranslate2, "get_cuda_device_count", lambda: count)


def fail_on_cuda(monkeypatch, failure: str) -> None:
    """Constructing the model on CUDA raises ``failure``; on the CPU it loads as usual."""
    construct = models.WindowedWhisperModel.__init__

    def init(self, *args, **kwargs):
        if kwargs["device"] == "cuda":
            raise RuntimeError(failure)
        construct(self, *args, **kwargs)

    monkeypatch.setattr(models.WindowedWhisperModel, "__init__", init)


def test_cuda_by_name_without_a_gpu_says_cuda_is_unavailable(monkeypatch):
    gpus(monkeypatch, 0)
    with pytest.raises(ModelError) as info:
        models.load(models.resolve(WhisperConfig(device="cuda")))
    message = str(info.value)
    assert "on cuda/float16: CUDA is unavailable (CTranslate2 finds no CUDA GPU)" in message
    assert message.endswith(USE_AUTO_OR_CPU)
    assert "directory" not in message


@pytest.mark.parametrize("failure", CUDA_FAILURES)
@pytest.mark.parametrize("model", ["tiny.en", "base"])  # the bundled directory; a cached name
def test_a_gpu_that_fails_says_so_and_not_that_the_model_is_wrong(monkeypatch, failure, model):
    gpus(monkeypatch, 1)
    fail_on_cuda(monkeypatch, failure)
    with pytest.raises(ModelError) as info:
        models.load(models.resolve(WhisperConfig(model=model, device="cuda")))
    message = str(info.value)
    assert f"CUDA is unavailable ({failure}); {USE_AUTO_OR_CPU}" in message
    assert "directory" not in message and "download" not in message


def test_another_failure_on_cuda_keeps_the_model_advice(monkeypatch):
    gpus(monkeypatch, 1)
    fail_on_cuda(monkeypatch, "Unable to open file 'model.bin'")
    with pytest.raises(ModelError) as info:
        models.load(models.resolve(WhisperConfig(device="cuda")))
    assert "check that the directory holds a CTranslate2 Whisper model" in str(info.value)
    assert "CUDA is unavailable" not in str(info.value)


def test_automatic_cuda_that_fails_falls_back_without_advice_to_set_auto(monkeypatch, caplog):
    gpus(monkeypatch, 1)
    fail_on_cuda(monkeypatch, CUDA_FAILURES[0])
    with caplog.at_level(logging.WARNING):
        model = models.load(models.resolve(WhisperConfig()))
    assert model.model.device == "cpu"
    assert "CUDA is unavailable" in caplog.text and "falling back to the CPU" in caplog.text
    assert 'device = "auto"' not in caplog.text


def test_a_failed_download_is_not_tried_again_on_the_cpu(monkeypatch, caplog):
    gpus(monkeypatch, 1)
    pulls = []

    def not_cached(self, *args, **kwargs):
        raise RuntimeError("not in the local cache")

    def pull(name, on_progress):
        pulls.append(name)
        raise ModelError(f"cannot download Whisper model {name!r}: connection refused")

    monkeypatch.setattr(models.WindowedWhisperModel, "__init__", not_cached)
    monkeypatch.setattr(models.downloads, "pull", pull)
    with caplog.at_level(logging.WARNING), pytest.raises(ModelError) as info:
        models.load(models.resolve(WhisperConfig(model="small")))
    assert pulls == ["small"]  # the CPU would fetch the same files from the same server
    assert "connection refused" in str(info.value)
    assert "falling back to the CPU" not in caplog.text


def test_a_malformed_repository_id_in_the_config_is_a_model_error():
    # A Model error, like an unknown name: the worker's state then says failed, not loading.
    with pytest.raises(ModelError, match=r"'a/b/c' is no Hugging Face repository id"):
        models.load(models.resolve(WhisperConfig(model="a/b/c", device="cpu")))
