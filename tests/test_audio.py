"""The Python-side audio interface over the engine: file sources, errors, overruns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from harness import assert_eventually

from v2md import _engine
from v2md.audio.capture import (
    SAMPLE_RATE,
    EngineSource,
    SoundDeviceSource,
    list_input_devices,
    open_source,
)
from v2md.config import AudioConfig
from v2md.errors import AudioDeviceError


def write_wav(path: Path, frames: np.ndarray, rate: int) -> Path:
    """Write int16 frames (shape (n,) or (n, channels))."""
    frames = frames.reshape(len(frames), -1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(frames.shape[1])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames.astype("<i2").tobytes())
    return path


async def read_all(source) -> np.ndarray:
    chunks = []
    while (chunk := await asyncio.wait_for(source.read(), timeout=30)).size:
        assert chunk.dtype == np.float32
        chunks.append(chunk)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def rising_zero_crossing_rate(x: np.ndarray) -> float:
    mid = x[len(x) // 10 : len(x) * 9 // 10]
    idx = np.flatnonzero((mid[:-1] < 0) & (mid[1:] >= 0))
    return (len(idx) - 1) * SAMPLE_RATE / (idx[-1] - idx[0])


async def test_a_16k_wav_is_delivered_bit_exact(tmp_path: Path) -> None:
    pcm = (np.random.default_rng(1).standard_normal(12_345) * 3000).astype(np.int16)
    path = write_wav(tmp_path / "mono.wav", pcm, SAMPLE_RATE)
    source = open_source(AudioConfig(), file=path, realtime=False)
    source.start()
    try:
        got = await read_all(source)
        assert np.array_equal(got, pcm.astype(np.float32) / 32768)
        assert source.error is None and source.overruns == 0
    finally:
        source.close()


async def test_a_44k1_stereo_wav_becomes_16k_mono_at_the_same_pitch(tmp_path: Path) -> None:
    t = np.arange(44_100 * 2) / 44_100
    tone = (np.sin(2 * np.pi * 300 * t) * 12_000).astype(np.int16)
    path = write_wav(tmp_path / "stereo.wav", np.stack([tone, tone], axis=1), 44_100)
    # A ring much smaller than the file: reading as fast as possible must wait, not drop.
    source = open_source(AudioConfig(capacity_s=1), file=path, realtime=False)
    source.start()
    try:
        got = await read_all(source)
    finally:
        source.close()
    assert got.size == 2 * SAMPLE_RATE
    assert source.overruns == 0
    assert rising_zero_crossing_rate(got) == pytest.approx(300, abs=1)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
async def test_other_formats_are_decoded_by_faster_whisper(tmp_path: Path) -> None:
    wav = write_wav(
        tmp_path / "tone.wav", (np.sin(np.arange(8000) / 5) * 9000).astype(np.int16), 16000
    )
    flac = tmp_path / "tone.flac"
    subprocess.run(["sox", str(wav), str(flac)], check=True)
    source = open_source(AudioConfig(), file=flac, realtime=False)
    source.start()
    try:
        got = await read_all(source)
    finally:
        source.close()
    assert got.size == 8000
    assert np.max(np.abs(got - np.sin(np.arange(8000) / 5) * 9000 / 32768)) < 1e-3


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.wav", None, "no such readable audio file"),
        ("notes.wav", b"these are not audio samples" * 10, "is not audio v2m can read"),
    ],
)
def test_a_missing_or_non_audio_source_file_is_an_audio_device_error(
    tmp_path: Path, name: str, content: bytes | None, match: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    source = open_source(AudioConfig(), file=path)
    # Start's contract names AudioDevice for a source that cannot be opened; the file
    # stands in for a microphone.
    with pytest.raises(AudioDeviceError, match=match) as info:
        source.start()
    assert str(path) in str(info.value)
    assert "Errno" not in str(info.value)  # FFmpeg's error number means nothing to a user
    source.close()


def assert_says_what_to_do(message: str, device: str) -> None:
    """A device that did not open is named, with what to check, in words a user knows."""
    assert message.startswith(
        f"no capture device could be opened: tried [audio] device = {device!r}"
    )
    for advice in ("PipeWire or PulseAudio is running", "[audio] device", "`v2mctl devices`"):
        assert advice in message
    assert len(message) < 500


@pytest.mark.parametrize("backend", ["engine", "sounddevice"])
def test_a_device_that_does_not_exist_is_an_audio_device_error(backend: str) -> None:
    source = open_source(AudioConfig(backend=backend, device="no-such-microphone"))
    with pytest.raises(AudioDeviceError) as info:
        source.start()
    source.close()
    assert_says_what_to_do(str(info.value), "no-such-microphone")


class _HostDownRing:
    """The engine's Ring as ALSA's PipeWire plugin answers when PipeWire is not running."""

    @staticmethod
    def capture(device: str, capacity: int) -> None:
        raise _engine.DeviceError(f"{device}: snd_pcm_open failed with error 'Host is down (112)'")


def test_no_sound_server_names_the_device_what_to_check_and_the_cause(monkeypatch) -> None:
    monkeypatch.setattr(_engine, "Ring", _HostDownRing)
    source = open_source(AudioConfig())
    with pytest.raises(AudioDeviceError) as info:
        source.start()
    message = str(info.value)
    assert_says_what_to_do(message, "default")
    assert message.endswith("(cause: snd_pcm_open failed with error 'Host is down (112)')")


async def test_realtime_playback_that_outruns_the_reader_reports_exact_overruns(
    tmp_path: Path,
) -> None:
    samples = np.arange(4800, dtype=np.int16)
    path = write_wav(tmp_path / "ramp.wav", samples, SAMPLE_RATE)
    source = EngineSource("ramp", 1000, file=path, realtime=True)
    source.start()
    try:
        # Nobody reads while the file plays: the ring keeps its first 1000 samples and
        # counts the rest as dropped.
        await assert_eventually(lambda: source.overruns >= 3800, timeout=30)
        kept = await read_all(source)
        assert source.overruns == 3800
        assert np.array_equal(kept, samples[:1000] / np.float32(32768))
    finally:
        source.close()


async def test_stop_keeps_what_was_captured_readable(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", np.ones(SAMPLE_RATE * 30, dtype=np.int16), SAMPLE_RATE)
    source = open_source(AudioConfig(), file=path, realtime=True)
    source.start()
    first = await asyncio.wait_for(source.read(), timeout=30)
    assert 0 < first.size < SAMPLE_RATE * 30
    source.stop()
    rest = await read_all(source)
    assert first.size + rest.size < SAMPLE_RATE * 30
    assert (await source.read()).size == 0
    source.close()
    source.close()


async def test_a_source_failing_midway_keeps_its_samples_and_reports_why(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "cut.wav", np.arange(10_000, dtype=np.int16), SAMPLE_RATE)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size - 2 * 4000 - 1)
    source = open_source(AudioConfig(), file=path, realtime=False)
    source.start()
    try:
        got = await read_all(source)
    finally:
        source.close()
    assert np.array_equal(got, np.arange(5999, dtype=np.float32) / 32768)
    assert isinstance(source.error, AudioDeviceError)
    assert "damaged" in str(source.error) and str(path) in str(source.error)


def _open_eventfds() -> int:
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            count += "eventfd" in os.readlink(fd)
    return count


async def test_closing_a_source_closes_its_eventfds_at_once(tmp_path: Path) -> None:
    """Even while something still holds the source (a cycle the garbage collector has not
    reached yet): the daemon had 19-77 eventfds open."""
    path = write_wav(tmp_path / "short.wav", np.ones(4000, dtype=np.int16), SAMPLE_RATE)
    before = _open_eventfds()
    held = []
    for backend in ("engine", "sounddevice"):
        source = open_source(
            AudioConfig(backend=backend), file=path if backend == "engine" else None
        )
        if isinstance(source, EngineSource):
            source.start()
            assert (await read_all(source)).size == 4000
        source.close()
        held.append(source)
    assert _open_eventfds() == before
    assert held[0].overruns == 0 and held[0].error is None


def test_open_source_picks_the_backend_and_file_overrides() -> None:
    assert isinstance(open_source(AudioConfig(backend="sounddevice")), SoundDeviceSource)
    cfg = AudioConfig(file=Path("/nonexistent.wav"))
    src = open_source(cfg, file=Path("/other.wav"), realtime=False)
    assert isinstance(src, EngineSource) and src.device_name == "/other.wav"


def test_device_listing_starts_with_the_default_device() -> None:
    assert list_input_devices()[0] == "default"
