"""Audio sources: one capture session per recording, float32 mono 16 kHz.

The default backend is the Rust engine (``v2md._engine``): a device, WAV file or
decoded file is written into a shared-memory ring by the engine's own thread (the ring's
only writer), which never takes the GIL, and the reader wakes on the ring's eventfd
through ``loop.add_reader``, so an idle recording costs no wake-ups. The
``sounddevice`` backend captures through PortAudio instead of the engine's ALSA capture;
it keeps the same interface, including eventfd wake-ups and exact overrun counts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from v2md import _engine
from v2md.audio.format import SAMPLE_RATE
from v2md.config import AudioConfig
from v2md.errors import AudioDeviceError, brief

log = logging.getLogger(__name__)

_EMPTY = np.zeros(0, dtype=np.float32)
_CAUSE_CHARS = 200  # of a low-level reason appended to a message that already says what to do


class AudioSource(Protocol):
    """One capture session; created per recording, float32 mono 16 kHz."""

    device_name: str

    def start(self) -> None: ...
    async def read(self) -> np.ndarray: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    @property
    def error(self) -> AudioDeviceError | None: ...
    @property
    def overruns(self) -> int: ...


def _cannot_open(device: str, cause: str) -> AudioDeviceError:
    """A capture device that did not open, said plainly: which, what to check, then why."""
    cause = cause.removeprefix(f"{device}: ")  # the engine's messages start with the name
    return AudioDeviceError(
        f"no capture device could be opened: tried [audio] device = {device!r}. "
        "Check that PipeWire or PulseAudio is running, and that [audio] device is one of "
        f"the names `v2mctl devices` lists (cause: {brief(cause, _CAUSE_CHARS)})"
    )


class Wakeup:
    """Await readability of an eventfd (a ring's, a sound server's) from the running loop,
    registering it once."""

    def __init__(self, fd: int, drain: Callable[[], None]) -> None:
        self._fd = fd
        self._drain = drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None

    def _on_readable(self) -> None:
        self._drain()
        assert self._ready is not None
        self._ready.set()

    def arm(self) -> None:
        """Forget earlier wake-ups; call before checking whether data is there."""
        if self._ready is None:
            self._loop = asyncio.get_running_loop()
            self._ready = asyncio.Event()
            self._loop.add_reader(self._fd, self._on_readable)
        self._ready.clear()

    async def wait(self) -> None:
        assert self._ready is not None, "arm() first"
        await self._ready.wait()

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._loop = None


class EngineSource:
    """A device or file read through the Rust engine's shared-memory ring."""

    def __init__(self, device_name: str, capacity: int, *, file: Path | None, realtime: bool):
        self.device_name = device_name
        self._capacity = capacity
        self._file = file
        self._realtime = realtime
        self._ring: _engine.Ring | None = None
        self._wakeup: Wakeup | None = None
        self._error: AudioDeviceError | None = None
        self._overruns = 0  # the ring's count, once it is closed

    def start(self) -> None:
        try:
            if self._file is not None:
                ring = self._open_file(self._file)
            else:
                ring = _engine.Ring.capture(self.device_name, self._capacity)
        except _engine.DeviceError as exc:
            raise _cannot_open(self.device_name, str(exc)) from None
        except _engine.SegmentError as exc:  # /dev/shm missing or full
            raise AudioDeviceError(f"{self.device_name}: {exc}") from None
        self._ring = ring
        self._wakeup = Wakeup(ring.fileno(), ring.drain_wakeups)
        rate, channels = ring.input_format
        log.info(
            "capturing %s (%d Hz, %d channels) into %s",
            self.device_name,
            rate,
            channels,
            ring.path,
        )

    def _open_file(self, path: Path) -> _engine.Ring:
        # The file stands in for a microphone: a missing one is a missing device.
        if not path.is_file() or not os.access(path, os.R_OK):
            raise AudioDeviceError(f"{path}: no such readable audio file ([audio] file)")
        try:
            return _engine.Ring.from_wav(str(path), self._capacity, self._realtime)
        except _engine.InputError as wav_error:
            # Not a WAV hound reads: let faster-whisper's decoder (PyAV) try any other format.
            samples = _decode(path, wav_error)
        return _engine.Ring.from_samples(samples, self._capacity, self._realtime)

    async def read(self) -> np.ndarray:
        ring, wakeup = self._ring, self._wakeup
        if ring is None or wakeup is None:
            raise AudioDeviceError(f"{self.device_name}: read() before start() or after close()")
        while True:
            wakeup.arm()
            # Read `ended` before the views: whatever was written before the end is then visible.
            ended = ring.ended
            first, wrapped = ring.views()
            if first.size:
                chunk = np.concatenate((first, wrapped))
                ring.consume(chunk.size)
                return chunk
            if ended:
                return _EMPTY
            await wakeup.wait()

    def stop(self) -> None:
        if self._ring is not None:
            self._ring.stop()

    def close(self) -> None:
        if self._wakeup is not None:
            self._wakeup.close()
            self._wakeup = None
        if self._ring is not None:
            self._ring.close()
            _ = self.error  # kept past the ring
            self._overruns = self._ring.overruns
            # The ring's eventfds close when it is freed: now, rather than whenever the
            # garbage collector reaches a cycle that still holds this source.
            self._ring = None

    @property
    def error(self) -> AudioDeviceError | None:
        if self._error is None and self._ring is not None and (msg := self._ring.error):
            self._error = AudioDeviceError(f"{self.device_name}: {msg}")
        return self._error

    @property
    def overruns(self) -> int:
        return self._ring.overruns if self._ring is not None else self._overruns


def _decode(path: Path, wav_error: Exception) -> np.ndarray:
    # Imported here: PyAV loads only when a file is not a WAV.
    from faster_whisper.audio import decode_audio

    from v2md.audio.files import not_audio

    try:
        samples = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except Exception as exc:
        log.debug("%s: the WAV reader refused it too: %s", path, wav_error)
        raise AudioDeviceError(not_audio(path, exc)) from None
    if samples.size == 0:
        raise AudioDeviceError(f"{path} holds no audio samples")
    return np.ascontiguousarray(samples, dtype=np.float32)


class SoundDeviceSource:
    """Fallback capture through PortAudio (``sounddevice``), same interface as the engine.

    The PortAudio callback copies each block into a bounded queue and signals an
    eventfd; blocks that would exceed the capacity are dropped and counted.
    """

    def __init__(self, device_name: str, capacity: int):
        self.device_name = device_name
        self._capacity = capacity
        self._lock = threading.Lock()
        self._blocks: collections.deque[np.ndarray] = collections.deque()
        self._buffered = 0
        self._overruns = 0
        self._stream: Any = None
        self._stopping = False
        self._ended = False
        self._error: AudioDeviceError | None = None
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._wakeup = Wakeup(self._fd, self._drain)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._fd)

    def start(self) -> None:
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:
            raise AudioDeviceError(
                f"{self.device_name}: sounddevice is unavailable: {exc}"
            ) from None
        try:
            self._stream = sd.InputStream(
                device=None if self.device_name == "default" else self.device_name,
                samplerate=SAMPLE_RATE,
                channels=1,
                # 16-bit from the device, scaled like the engine does (s / 32768).
                dtype="int16",
                callback=self._on_block,
                finished_callback=self._on_finished,
            )
            self._stream.start()
        except Exception as exc:  # PortAudioError and ValueError for unknown names
            raise _cannot_open(self.device_name, str(exc)) from None
        log.info("capturing %s through sounddevice at %d Hz", self.device_name, SAMPLE_RATE)

    def _on_block(self, indata: np.ndarray, _frames: int, _time: Any, status: Any) -> None:
        if status.input_overflow:
            log.warning("%s: the device overflowed before the audio reached v2m", self.device_name)
        block = indata[:, 0].astype(np.float32) / 32768.0
        with self._lock:
            room = self._capacity - self._buffered
            if room < block.size:
                self._overruns += block.size - max(room, 0)
                block = block[: max(room, 0)]
            if block.size:
                self._blocks.append(block)
                self._buffered += block.size
        os.eventfd_write(self._fd, 1)

    def _on_finished(self) -> None:
        with self._lock:
            if not self._stopping:
                self._error = AudioDeviceError(f"{self.device_name}: the capture stream ended")
            self._ended = True
        os.eventfd_write(self._fd, 1)

    async def read(self) -> np.ndarray:
        while True:
            self._wakeup.arm()
            with self._lock:
                if self._blocks:
                    chunk = np.concatenate(self._blocks)
                    self._blocks.clear()
                    self._buffered = 0
                    return chunk
                if self._ended:
                    return _EMPTY
            await self._wakeup.wait()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
        with self._lock:
            self._ended = True
        os.eventfd_write(self._fd, 1)

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._stream is not None and not self._stopping:
            self.stop()
        self._wakeup.close()
        os.close(self._fd)
        self._fd = -1

    @property
    def error(self) -> AudioDeviceError | None:
        return self._error

    @property
    def overruns(self) -> int:
        return self._overruns


def open_source(
    cfg: AudioConfig, *, file: Path | None = None, realtime: bool | None = None
) -> AudioSource:
    """A new, not yet started source as configured; ``file``/``realtime`` override ``cfg``."""
    capacity = cfg.capacity_s * SAMPLE_RATE
    path = file if file is not None else cfg.file
    if path is not None:
        rt = cfg.realtime if realtime is None else realtime
        return EngineSource(str(path), capacity, file=Path(path), realtime=rt)
    if cfg.backend == "sounddevice":
        return SoundDeviceSource(cfg.device, capacity)
    return EngineSource(cfg.device, capacity, file=None, realtime=True)


def list_input_devices(backend: str = "engine") -> list[str]:
    """Names that backend offers as ``[audio] device``; none is opened to check it."""
    if backend == "sounddevice":
        try:
            import sounddevice as sd

            return [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
        except (ImportError, OSError) as exc:
            raise AudioDeviceError(f"sounddevice is unavailable: {exc}") from None
    try:
        return list(_engine.input_devices())
    except _engine.DeviceError as exc:
        raise AudioDeviceError(f"cannot list ALSA devices: {exc}") from None


def cleanup_stale_segments() -> int:
    """Remove ring segments left in /dev/shm by daemons that died; return how many."""
    try:
        return _engine.remove_stale_segments()
    except _engine.SegmentError as exc:
        log.warning("could not look for stale audio segments: %s", exc)
        return 0
