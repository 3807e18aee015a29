"""Recorded human speech with transcripts, for tests and benchmarks.

espeak-ng voices are too clean to show what real voices do to streaming
(clipped first words, half-heard hyphenated words). Two public sources of
recorded speech, neither downloaded at test time:

* an audiobook reader (LibriVox, "Sense and Sensibility", five consecutive
  sentences, 25 s) and a second speaker reading playing cards, both from
  the test data of PocketSphinx's source distribution on PyPI, fetched
  once by ``.ci/setup`` (``python3 tests/recorded.py``) into a cache with
  ``pip download``, so the user's pip configuration (index, proxy,
  certificates) applies;
* Asterisk's telephone prompts (Debian's ``asterisk-core-sounds-en-wav``,
  one speaker, 8 kHz), joined with pauses as a person dictating would.

Every function returns 16 kHz mono float32 and the reference text.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000

POCKETSPHINX = "pocketsphinx==5.1.1"
POCKETSPHINX_SDIST = "pocketsphinx-5.1.1.tar.gz"
POCKETSPHINX_SHA256 = "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
_WANTED = re.compile(
    r"^pocketsphinx-5\.1\.1/test/data/(librivox|cards)/[^/]*(\.wav|transcription)$"
)
_TRANSCRIPT_LINE = re.compile(r"<s>(.*)</s>\s*\((.+)\)")

# Prompts whole sentences long, without digits or sounds in brackets, in a fixed order.
PROMPTS = (
    "vm-intro",
    "agent-alreadyon",
    "cannot-complete-as-dialed",
    "check-number-dial-again",
    "vm-nobodyavail",
    "privacy-unident",
    "queue-thankyou",
    "conf-onlyperson",
    "vm-savemessage",
    "pbx-invalidpark",
    "vm-incorrect",
    "conf-getpin",
    "vm-tocancel",
    "all-circuits-busy-now",
)
# The same in Mexican Spanish (a speaker of its own; not every English prompt exists there).
PROMPTS_ES = (
    "vm-intro",
    "agent-alreadyon",
    "vm-nobodyavail",
    "privacy-unident",
    "queue-thankyou",
    "conf-onlyperson",
    "pbx-invalidpark",
    "conf-getpin",
    "conf-invalid",
    "conf-kicked",
    "confbridge-lock-no-join",
    "confbridge-only-participant",
    "confbridge-pin-bad",
    "conf-now-unmuted",
)
PROMPT_PAUSE_S = 0.8


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "v2m-test-speech"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sdist() -> Path:
    """PocketSphinx's source distribution in the cache, checked; pip fetches it if missing.

    pip, not a hard-coded URL: the user's index, proxy and certificates apply. Only this
    package is taken as source (``--no-binary pocketsphinx``): pip prepares the sdist's
    metadata, and building its build tools from source too would take many minutes.
    Once cached, it is not asked for again: no network needed.
    """
    folder = cache_dir() / "sdist"
    path = folder / POCKETSPHINX_SDIST
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        pip += ["--no-binary", "pocketsphinx", "--dest", str(folder), POCKETSPHINX]
        done = subprocess.run(pip, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(pip)} failed:\n{done.stdout}{done.stderr}")
        if not path.is_file():
            raise RuntimeError(f"{' '.join(pip)} saved no {path}")
    if (digest := _sha256(path)) != POCKETSPHINX_SHA256:
        path.unlink()  # the next try downloads it again
        raise RuntimeError(f"{path}: sha256 {digest}, expected {POCKETSPHINX_SHA256}")
    return path


def fetch() -> Path:
    """Unpack PocketSphinx's recordings into the cache, downloading its sdist if needed."""
    target = cache_dir() / "pocketsphinx"
    if (target / "librivox" / "transcription").is_file():
        return target
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(sdist()) as archive:
        for member in archive.getmembers():
            if member.isfile() and _WANTED.match(member.name):
                out = partial / Path(member.name).parent.name / Path(member.name).name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.extractfile(member).read())
    partial.rename(target)
    return target


def load(path: Path) -> np.ndarray:
    """Any audio file sox reads, as 16 kHz mono float32 (no dither: runs repeat exactly)."""
    pcm = subprocess.run(
        [
            "sox",
            "-D",
            str(path),
            "-t",
            "raw",
            "-r",
            str(SAMPLE_RATE),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def _pocketsphinx(folder: str) -> tuple[np.ndarray, str]:
    root = fetch() / folder
    audio, said = [], []
    (listing,) = root.glob("*transcription")
    for line in listing.read_text().splitlines():
        if match := _TRANSCRIPT_LINE.search(line):
            text, name = match.groups()
            audio.append(load(root / f"{name.strip()}.wav"))
            said.append(text.strip())
    return np.concatenate(audio), " ".join(said)


def audiobook() -> tuple[np.ndarray, str]:
    """A LibriVox reader, five consecutive sentences with the pauses as read (25 s)."""
    return _pocketsphinx("librivox")


def cards() -> tuple[np.ndarray, str]:
    """A second speaker naming playing cards, five recordings (15 s)."""
    return _pocketsphinx("cards")


def asterisk_prompts(language: str = "en") -> list[tuple[np.ndarray, str]]:
    """Asterisk's prompts (one speaker, telephone band), each its audio and its text: US
    English (PROMPTS) or Mexican Spanish (``es``, PROMPTS_ES)."""
    sounds = Path(f"/usr/share/asterisk/sounds/{language}")
    listing = Path(f"/usr/share/doc/asterisk-core-sounds-{language}/core-sounds-{language}.txt.gz")
    if not listing.is_file():
        raise RuntimeError(
            f"apt-get install asterisk-core-sounds-{language}-wav asterisk-core-sounds-{language}"
        )
    texts = {}
    with gzip.open(listing, "rt", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            name, sep, text = line.partition(":")
            if sep and not line.startswith(";"):
                texts[name.strip()] = re.sub(r"\([^)]*\)|\[[^]]*\]", " ", text.strip())  # "(tone)"
    names = PROMPTS_ES if language == "es" else PROMPTS
    return [(load(sounds / f"{name}.wav"), texts[name]) for name in names]


def telephone_prompts(language: str = "en") -> tuple[np.ndarray, str]:
    """Asterisk's prompts with pauses between them (~50 s)."""
    pause = np.zeros(round(PROMPT_PAUSE_S * SAMPLE_RATE), np.float32)
    prompts = asterisk_prompts(language)
    audio = [part for prompt, _text in prompts for part in (prompt, pause)]
    return np.concatenate(audio), " ".join(text for _prompt, text in prompts)


if __name__ == "__main__":
    print(f"recorded speech in {fetch()}", file=sys.stderr)
