"""Whisper models from the Hugging Face Hub: fetched into its cache with progress, listed, removed.

huggingface_hub does the transfer and owns the cache (``HF_ENDPOINT`` names the server,
``HF_HOME`` or ``HF_HUB_CACHE`` the cache), so a model fetched here is the one
faster-whisper finds by name. This module adds what the daemon needs on top: names
mapped to repositories the way faster-whisper maps them, how much has arrived as a
fraction, and errors that say what to change.

The fraction is measured on disk, from the finished blobs and the partial files
huggingface_hub writes beside them: its progress-bar hooks differ from one version to
the next, the files it writes do not.

Every request has a deadline: huggingface_hub's client waits forever by default, so a
server that accepts and never answers would hold ``PullModel`` (and the daemon's
``Busy`` for that model) until a restart. The deadline is huggingface_hub's own
``HF_HUB_DOWNLOAD_TIMEOUT`` (10 s by default) for every read. One request goes first,
without huggingface_hub's retries: no network, a refused connection or a silent server
fail in that time with a message that says so, instead of 23 s of retries.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2
import huggingface_hub
from faster_whisper.utils import _MODELS, disabled_tqdm
from huggingface_hub import constants
from huggingface_hub.errors import (
    HFValidationError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.hf_api import RepoFile

# Public helpers that huggingface_hub.utils re-exports without declaring them exported.
from huggingface_hub.utils import filter_repo_objects, validate_repo_id  # type: ignore[attr-defined]

from v2md.errors import InvalidArgumentError, ModelError, OperationTimeoutError
from v2md.progress import Rising

log = logging.getLogger(__name__)

# The files faster-whisper's own download_model fetches: a CTranslate2 Whisper model.
MODEL_FILES = [
    "config.json",
    "preprocessor_config.json",
    "model.bin",
    "tokenizer.json",
    "vocabulary.*",
]
# How often the bytes on disk are measured while a download runs: often enough for a bar
# that moves, far less than the transfer itself costs.
MEASURE_INTERVAL_S = 0.1
# CTranslate2 tells a multilingual Whisper from an English-only one by its vocabulary:
# 51864 tokens for the English-only models, 51865 or more for the multilingual ones.
MULTILINGUAL_VOCABULARY = 51865


@dataclass(frozen=True)
class LocalModel:
    """A Whisper model on this machine: in the download cache, or bundled with v2m."""

    name: str  # what [whisper] model takes: faster-whisper's name for it, or the repository id
    path: Path  # the directory faster-whisper loads
    size: int  # bytes on disk
    multilingual: bool
    bundled: bool = False


def repo_id(name: str) -> str:
    """The Hugging Face repository of a faster-whisper model name or repository id."""
    if "/" in name:
        try:
            validate_repo_id(name)
        except HFValidationError as exc:
            raise InvalidArgumentError(
                f"{name!r} is no Hugging Face repository id: {exc}"
            ) from None
        return name
    try:
        repo: str = _MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown Whisper model {name!r}: use one of {', '.join(_MODELS)}, "
            "a Hugging Face repository id (owner/name) or a local model directory"
        ) from None
    return repo


def model_name(repo: str) -> str:
    """The shortest name that fetches ``repo``: faster-whisper's first name for it, or the id."""
    return next((name for name, known in _MODELS.items() if known == repo), repo)


def is_complete(path: Path) -> bool:
    """Whether ``path`` holds the files CTranslate2 needs to load a Whisper model."""
    return (
        (path / "model.bin").is_file()
        and (path / "config.json").is_file()
        and any((path / f"vocabulary.{kind}").is_file() for kind in ("txt", "json"))
    )


class DamagedModel(Exception):
    """A model's files cannot be read as a CTranslate2 Whisper model's (says which)."""


def is_multilingual(path: Path) -> bool:
    """Whether the CTranslate2 Whisper model in ``path`` knows more languages than English;
    DamagedModel when its vocabulary cannot be read."""
    text = path / "vocabulary.txt"
    try:
        if text.is_file():
            with text.open(encoding="utf-8") as lines:
                size = sum(1 for _ in lines)
        else:
            tokens = json.loads((path / "vocabulary.json").read_text(encoding="utf-8"))
            if not isinstance(tokens, list):
                raise ValueError("not a list of tokens")
            size = len(tokens)
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        name = text.name if text.is_file() else "vocabulary.json"
        raise DamagedModel(f"{path / name}: {exc}") from None
    except RecursionError:  # arrays nested ~1,000 deep: json gives up, and says so this way
        raise DamagedModel(f"{path / 'vocabulary.json'}: nested too deeply") from None
    return size >= MULTILINGUAL_VOCABULARY


def pull(name: str, on_progress: Callable[[float], None]) -> Path:
    """Fetch the model into the cache (only what it lacks) and return its snapshot directory.

    ``on_progress`` hears, from another thread, the fraction of the model's bytes on
    disk: the first measure, each larger one short of 1, then 1 once all is there. A
    connection that breaks mid-file is resumed from where it broke (huggingface_hub asks
    for the rest with a Range request); files that arrived stay cached when a pull fails.
    """
    repo = repo_id(name)
    endpoint = constants.ENDPOINT
    measure = None
    try:
        _reachable(name, repo)
        sizes = _blob_sizes(repo)
        measure = _Measure(_cache_dir(repo) / "blobs", sizes, on_progress)
        measure.start()
        try:
            path = Path(
                huggingface_hub.snapshot_download(
                    repo, allow_patterns=MODEL_FILES, tqdm_class=disabled_tqdm
                )
            )
        finally:
            measure.stop()
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise ModelError(
            f"no Whisper model {name!r} at {endpoint} (repository {repo}): check the name; "
            "it is a faster-whisper model name or a Hugging Face repository id"
        ) from None
    except (ModelError, OperationTimeoutError):
        raise
    except Exception as exc:
        kind = OperationTimeoutError if isinstance(exc, httpx2.TimeoutException) else ModelError
        kept = (
            "the files that arrived are kept: pull it again to fetch the rest"
            if measure is not None and measure.arrived
            else "nothing of it arrived"
        )
        why = (
            f"it did not answer within {constants.HF_HUB_DOWNLOAD_TIMEOUT:g} s "
            "(HF_HUB_DOWNLOAD_TIMEOUT)"
            if kind is OperationTimeoutError
            else _why(exc)
        )
        raise kind(
            f"cannot download Whisper model {name!r} from {endpoint}: {why}; {kept}"
        ) from exc
    if not is_complete(path):
        raise ModelError(
            f"{repo} at {endpoint} is no CTranslate2 Whisper model: it lacks model.bin, "
            "config.json or a vocabulary file"
        )
    on_progress(1.0)
    log.info("model %s is in the cache at %s", name, path)
    return path


def list_cached() -> list[LocalModel]:
    """The Whisper models in the download cache, by name.

    Read here rather than by ``scan_cache_dir``, which gives up on the whole cache for one
    unreadable file: a damaged repository is left out with one log line, and a cache that
    cannot be read at all (a file, a symlink loop) lists nothing, with one log line."""
    hub = Path(constants.HF_HUB_CACHE)
    try:
        folders = sorted(p for p in hub.iterdir() if p.name.startswith("models--"))
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("cannot read the model cache %s: %s", hub, exc)
        return []
    found = []
    for folder in folders:
        repo = _printable(folder.name.removeprefix("models--").replace("--", "/"))
        try:
            snapshot = _snapshot(folder)
            if snapshot is None or not is_complete(snapshot):
                continue  # not a CTranslate2 model, or one whose download never finished
            if _printable(str(snapshot)) != str(snapshot):
                # Its name and path go over D-Bus as strings, which must be UTF-8.
                raise DamagedModel(f"{_printable(str(snapshot))} is no UTF-8 name")
            found.append(
                LocalModel(
                    model_name(repo), snapshot, bytes_on_disk(folder), is_multilingual(snapshot)
                )
            )
        except (OSError, DamagedModel) as exc:
            remedy = (
                f"v2mctl model rm {model_name(repo)}"
                if _printable(folder.name) == folder.name
                else f"rm -r {_printable(str(folder))}"  # no name v2mctl can send
            )
            log.warning(
                "model %s is damaged, not listed (remove it with '%s'): %s", repo, remedy, exc
            )
    return sorted(found, key=lambda m: m.name)


def _printable(name: str) -> str:
    """A file name as a log line or a D-Bus string can carry it: bytes that are not UTF-8
    (Python's surrogate escapes) written as ``\\xff``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _snapshot(folder: Path) -> Path | None:
    """The snapshot ``refs/main`` names, else the only one there is."""
    ref = folder / "refs" / "main"
    if ref.is_file():
        try:
            revision = ref.read_text(encoding="ascii").strip()
        except ValueError:
            raise DamagedModel(f"{ref} is no revision id") from None
        if revision and "/" not in revision and (folder / "snapshots" / revision).is_dir():
            return folder / "snapshots" / revision
    snapshots = sorted((folder / "snapshots").glob("*")) if (folder / "snapshots").is_dir() else []
    return snapshots[0] if len(snapshots) == 1 else None


def remove(name: str) -> int:
    """Delete the model's repository from the cache; return the bytes freed."""
    repo = repo_id(name)
    folder = _cache_dir(repo)
    if not folder.is_dir():
        raise InvalidArgumentError(f"Whisper model {name!r} is not in the download cache")
    try:
        size = bytes_on_disk(folder)
        shutil.rmtree(folder)
    except OSError as exc:
        raise ModelError(f"cannot remove Whisper model {name!r} from {folder}: {exc}") from exc
    log.info("removed model %s (%d bytes) from the cache", name, size)
    return size


def bytes_on_disk(folder: Path) -> int:
    """The size of the files in ``folder`` and below; a link (a cache snapshot's links to
    its blobs) is not counted again."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _cache_dir(repo: str) -> Path:
    folder = repo_folder_name(repo_id=repo, repo_type="model")
    return Path(constants.HF_HUB_CACHE) / folder


def _reachable(name: str, repo: str) -> None:
    """Ask the hub for the model's revision once, within the deadline and without retries;
    give every later request of huggingface_hub's client the same deadline."""
    timeout = float(constants.HF_HUB_DOWNLOAD_TIMEOUT)
    session = huggingface_hub.get_session()
    session.timeout = httpx2.Timeout(timeout)
    url = f"{constants.ENDPOINT}/api/models/{repo}/revision/main"
    try:
        session.get(url, timeout=timeout)  # its status is huggingface_hub's to judge next
    except httpx2.TimeoutException:
        raise OperationTimeoutError(
            f"cannot download Whisper model {name!r}: {constants.ENDPOINT} did not answer "
            f"within {timeout:g} s (HF_HUB_DOWNLOAD_TIMEOUT); nothing of it arrived"
        ) from None
    except httpx2.TransportError as exc:
        raise ModelError(
            f"cannot download Whisper model {name!r}: {constants.ENDPOINT} cannot be reached "
            f"(no network? {exc}); nothing of it arrived"
        ) from None


def _blob_sizes(repo: str) -> dict[str, int]:
    """The model's files as huggingface_hub names their blobs (the LFS sha256, else the git
    object id) and their sizes."""
    files = {
        f.path: f
        for f in huggingface_hub.HfApi().list_repo_tree(repo, recursive=True)
        if isinstance(f, RepoFile)
    }
    wanted = filter_repo_objects(files, allow_patterns=MODEL_FILES)
    return {(f.lfs.sha256 if f.lfs else f.blob_id): f.size for f in (files[p] for p in wanted)}


class _Measure:
    """Measures a download's bytes on disk on a thread of its own, until stopped."""

    def __init__(self, blobs: Path, sizes: dict[str, int], report: Callable[[float], None]) -> None:
        self._blobs = blobs
        self._sizes = sizes
        self._total = sum(sizes.values())
        self._fraction = Rising(report)
        self._stopped = threading.Event()
        self.arrived = False  # whether any of the model is on disk, from this pull or one before
        self._thread = threading.Thread(target=self._run, name="download-progress", daemon=True)

    def start(self) -> None:
        self._measure()  # the first measure before the transfer starts
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._measure()

    def _run(self) -> None:
        while not self._stopped.wait(MEASURE_INTERVAL_S):
            self._measure()

    def _measure(self) -> None:
        done = self._on_disk()
        self.arrived = self.arrived or done > 0
        self._fraction(done / self._total if self._total else 0.0)

    def _on_disk(self) -> int:
        done = 0
        for blob, size in self._sizes.items():
            if (self._blobs / blob).is_file():
                done += size
                continue
            partial = 0
            for part in self._blobs.glob(f"{blob}*.incomplete"):
                # Gone meanwhile: finished (renamed to its blob) or dropped.
                with contextlib.suppress(FileNotFoundError):
                    partial = max(partial, part.stat().st_size)
            done += min(partial, size)
        return done


def _why(exc: Exception) -> str:
    """What went wrong, in one line: the HTTP status and address of a refused request;
    else the first line of huggingface_hub's message (they run over several)."""
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} for {response.url}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
