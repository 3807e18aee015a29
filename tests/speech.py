"""Test speech: known sentences spoken by espeak-ng, and word error rate.

Tests and benchmarks need real speech with a known transcript and no download.
``speak`` renders text with espeak-ng and converts it with sox to what the
daemon decodes (16 kHz mono float32); ``wer`` scores a transcript against the
reference after normalising case and punctuation.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import unicodedata
import wave
from pathlib import Path

import numpy as np

from v2md.audio.format import SAMPLE_RATE

# Plain, well-articulated sentences tiny.en transcribes reliably from espeak-ng.
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please send the quarterly report to the finance team before Friday.",
    "We should meet in the conference room after lunch to discuss the project.",
    "The weather today is sunny with a light breeze from the west.",
    "Remember to buy milk, bread and fresh vegetables on the way home.",
    "Our new product launch is scheduled for the second week of March.",
    "The library closes early on holidays, so plan your visit accordingly.",
    "She opened the window to let some fresh air into the room.",
    "Could you please check whether the train leaves on time tomorrow morning?",
    "The committee approved the budget after a long discussion.",
    "He walked his dog in the park every evening before dinner.",
    "The children were playing football in the garden all afternoon.",
)


def require_tools() -> None:
    """Raise RuntimeError naming the missing tool, so a skip or failure says why."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (apt-get install {tool})")


def speak(
    text: str, *, words_per_minute: int = 160, path: Path | None = None, voice: str = "en-us"
) -> np.ndarray:
    """Speak ``text`` with espeak-ng's ``voice`` (es, de, ...); return 16 kHz mono float32
    (and write ``path`` if given)."""
    require_tools()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        out = path or Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            # -D: no dither, whose random noise would make every run's audio (and text) differ.
            ["sox", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out)],
            check=True,
            capture_output=True,
        )
        with wave.open(str(out), "rb") as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def write_wav(path: Path, audio: np.ndarray) -> Path:
    """Write 16 kHz mono float32 ``audio`` as a 16-bit WAV; return ``path``."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def silence(seconds: float) -> np.ndarray:
    """Digital silence of that length at 16 kHz."""
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


def utterance(
    seconds: float, *, pause_s: float = 0.3, words_per_minute: int = 160
) -> tuple[np.ndarray, str]:
    """Speech of at least ``seconds`` built from SENTENCES (cycled), with its reference text."""
    parts: list[np.ndarray] = []
    said: list[str] = []
    total = 0
    index = 0
    while total < seconds * SAMPLE_RATE:
        sentence = SENTENCES[index % len(SENTENCES)]
        parts += [speak(sentence, words_per_minute=words_per_minute), silence(pause_s)]
        said.append(sentence)
        total += len(parts[-2]) + len(parts[-1])
        index += 1
    return np.concatenate(parts), " ".join(said)


# Whisper writes small numbers as digits where transcripts spell them ("10 of clubs").
NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()


def normalise(text: str) -> list[str]:
    """Lower-case words without punctuation or accents (hyphens split words), numbers up to
    twenty spelled out (in English)."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    words = re.sub(r"[^a-z0-9' ]+", " ", bare.lower().replace("-", " ")).split()
    return [NUMBER_WORDS[int(w)] if w.isdigit() and int(w) <= 20 else w for w in words]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate in percent: (substitutions + deletions + insertions) / reference words."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        raise ValueError("the reference text has no words")
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, guess in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (word != guess))
    return 100.0 * row[-1] / len(ref)
