"""One damaged model in the download cache never hides the others, nor fails the listing."""

from __future__ import annotations

import json
import logging
import os

import pytest
from huggingface_hub import constants

from v2md.asr import downloads, models

REV = "0123456789abcdef0123456789abcdef01234567"


def cached_model(hub, repo: str, vocabulary: tuple[str, bytes]) -> None:
    folder = hub / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / REV
    snapshot.mkdir(parents=True)
    (folder / "blobs").mkdir()
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(REV)
    (snapshot / "model.bin").write_bytes(b"\0" * 16)
    (snapshot / "config.json").write_text("{}")
    name, content = vocabulary
    (snapshot / name).write_bytes(content)


GOOD = ("vocabulary.json", json.dumps(["a"] * 51864).encode())


@pytest.fixture
def hub(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    cached_model(hub, "someone/good-model", GOOD)
    return hub


def names() -> list[str]:
    return [m.name for m in models.available()]


@pytest.mark.parametrize(
    "vocabulary",
    [
        ("vocabulary.json", b"[not json"),
        ("vocabulary.json", b'["\xff\xfe"]'),
        ("vocabulary.txt", b"\xff\xfe\xfa\n"),
        ("vocabulary.json", b'{"a": 1}'),
        ("vocabulary.json", b"[" * 100_000 + b"]" * 100_000),
    ],
    ids=["invalid-json", "json-not-utf8", "txt-not-utf8", "json-not-a-list", "json-nested-deep"],
)
def test_a_damaged_vocabulary_is_skipped_with_one_log_line(hub, caplog, vocabulary):
    cached_model(hub, "someone/damaged", vocabulary)
    with caplog.at_level(logging.WARNING, logger="v2md.asr.downloads"):
        listed = names()
    assert "tiny.en" in listed and "someone/good-model" in listed
    assert "someone/damaged" not in listed
    (record,) = caplog.records
    assert "someone/damaged" in record.getMessage() and "damaged" in record.getMessage()


def test_a_refs_main_that_is_not_utf8_hides_nothing(hub, caplog):
    cached_model(hub, "someone/damaged", GOOD)
    (hub / "models--someone--damaged" / "refs" / "main").write_bytes(b"\xff\xfe")
    with caplog.at_level(logging.WARNING, logger="v2md.asr.downloads"):
        listed = names()
    assert "tiny.en" in listed and "someone/good-model" in listed
    assert len(caplog.records) <= 1


def test_a_repository_whose_name_is_not_utf8_is_skipped_with_one_log_line(hub, caplog):
    # Its name and path would go over D-Bus, whose strings must be UTF-8: ListModels failed.
    cached_model(hub, os.fsdecode(b"someone/caf\xe9"), GOOD)
    with caplog.at_level(logging.WARNING, logger="v2md.asr.downloads"):
        listed = models.available()
    assert {"tiny.en", "someone/good-model"} <= {m.name for m in listed}
    for m in listed:  # what D-Bus sends: it raised UnicodeEncodeError for the damaged one
        assert m.name.encode("utf-8") and str(m.path).encode("utf-8")
    (record,) = caplog.records
    assert "someone/caf\\xe9 is damaged" in record.getMessage()
    record.getMessage().encode("utf-8")


def test_a_hub_directory_that_is_a_file_lists_the_bundled_model(tmp_path, monkeypatch, caplog):
    hub = tmp_path / "hub"
    hub.write_text("not a directory")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    with caplog.at_level(logging.WARNING, logger="v2md.asr.downloads"):
        assert "tiny.en" in names()
    (record,) = caplog.records
    assert str(hub) in record.getMessage()


def test_a_hub_directory_in_a_symlink_loop_lists_the_bundled_model(tmp_path, monkeypatch, caplog):
    hub = tmp_path / "hub"
    (tmp_path / "other").symlink_to(hub)
    hub.symlink_to(tmp_path / "other")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    with caplog.at_level(logging.WARNING, logger="v2md.asr.downloads"):
        assert "tiny.en" in names()
    (record,) = caplog.records
    assert str(hub) in record.getMessage()


def test_is_multilingual_names_a_damaged_vocabulary(tmp_path):
    (tmp_path / "vocabulary.json").write_bytes(b"[oops")
    with pytest.raises(downloads.DamagedModel, match=r"vocabulary\.json"):
        downloads.is_multilingual(tmp_path)


async def test_removing_the_configured_bundled_model_is_invalid_state():
    from v2md.asr.worker import WhisperWorker
    from v2md.config import WhisperConfig
    from v2md.errors import InvalidStateError

    worker = WhisperWorker(WhisperConfig(model="tiny.en"))
    try:
        with pytest.raises(InvalidStateError, match="the one in use"):
            await worker.remove_model("tiny.en")
    finally:
        await worker.close()
