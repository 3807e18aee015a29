"""One live dictation: capture, voice activity, provisional text and the final pass.

A ``LiveSession`` owns everything that belongs to one recording, from the open
audio source to the final text, and reports what happens to a ``SessionEvents``
listener (the workflow). The recording is the source of truth: every sample is
kept by the final pass until final text covers it, and is on disk as it comes
(``journal.py``) until the workflow has stored its text, so that it outlives a crash.

The pump moves audio from the source in slices of at most SLICE_S and runs the
VAD on a thread of its own, awaiting it: whatever rate a source delivers at, the
event loop keeps answering calls and signals between slices.

At each pause the VAD finds, the final pass decodes the speech so far in the
background; live text comes from the streaming transcriber every update interval
while speech goes on. A Stop after a pause therefore finds its text decoded. (A decode
in mid-speech to settle the text up to the last pause sooner was tried and withdrawn:
it settled an utterance on a decode that had heard too little after it, and a spoken
command in it was written as words; benchmarks/README.md.) With ``[whisper]
parallel_decodes`` the worker runs final and live decodes on threads of their own;
still no live decode starts while a final one runs (it would be stale once the final
one rebases live text, and would slow it on a two-core machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from v2md.asr.finalpass import FinalPass
from v2md.audio.capture import AudioSource
from v2md.audio.format import SAMPLE_RATE
from v2md.audio.journal import CaptureFile
from v2md.audio.recordings import GrowingRecording, save_recording
from v2md.config import Config
from v2md.errors import AudioDeviceError, ModelError, V2MError

log = logging.getLogger(__name__)

SLICE_S = 0.5  # the most audio one step of the pump takes: bounds work between yields
OVERRUN_REPORT_S = 1.0  # dropped samples are reported at most this often
PAUSE_PAD_MS = 100  # audio decoded after the speech end the VAD heard (see __init__)
SPECULATE_MS = 100  # quiet after speech before its final decode starts (see __init__)
PHRASE_GAP_MS = 200  # quiet after speech that may end a stretch of final text (see __init__)
# Past capacity, the oldest audio is spilled until this much room is free again, so that
# a worker far behind spills once per minute of audio rather than once per chunk.
SPILL_ROOM_S = 60
SPILL_REASON = "not transcribed in time"


class VoiceDetector(Protocol):
    """Streaming voice activity (see ``vad.py``)."""

    speech_active: bool

    @property
    def samples_seen(self) -> int: ...
    @property
    def silence_after_speech_ms(self) -> float: ...
    def process(self, samples: np.ndarray) -> None: ...
    def speech_bounds(self, *, padded: bool = True) -> tuple[int, int] | None: ...


class Provisional(Protocol):
    """Live text while speaking (see ``streaming.py``)."""

    def append(self, samples: np.ndarray) -> None: ...
    async def update(self, end_sample: int | None = None) -> str | None: ...
    def rebase(self, sample: int, text: str) -> str: ...


class SessionEvents(Protocol):
    """What a session reports; the workflow turns these into state, signals and text."""

    def speech_active_changed(self, active: bool) -> None: ...
    def provisional_text(self, text: str) -> None: ...
    def error(self, error: V2MError) -> None: ...
    def ended(self, reason: str) -> None: ...


class LiveSession:
    """One recording from ``start`` to ``finish`` (final text) or ``cancel``."""

    def __init__(
        self,
        cfg: Config,
        source: AudioSource,
        stream: Provisional,
        final: FinalPass,
        vad: VoiceDetector | None,
        events: SessionEvents,
        *,
        dictating: Callable[[], Callable[[], None]] | None = None,
        capture: Callable[[], CaptureFile] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self.source = source
        self._stream = stream
        self._final = final
        self._vad = vad
        self._events = events
        self._clock = clock
        self._dictating = dictating
        self._dictation_ends: Callable[[], None] | None = None
        self._new_capture = capture
        self._capture: CaptureFile | None = None
        # Runs the VAD and writes the capture file, in the order the audio came.
        self._vad_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="v2m-vad")
        self._capacity = cfg.audio.capacity_s * SAMPLE_RATE
        # Audio decoded after the speech end the VAD heard. Not all of speech_pad_ms: a short
        # pause can end in the breath of the next word, which a window ending there would
        # half hear and drop.
        self._pad = min(cfg.vad.speech_pad_ms, PAUSE_PAD_MS) * SAMPLE_RATE // 1000
        # Quiet after speech before its final decode starts, ahead of the VAD's verdict: by
        # the time the pause is declared (min_silence_ms) or a Stop comes, it is done.
        self._speculate = max(self._pad, SPECULATE_MS * SAMPLE_RATE // 1000)
        # Quiet after speech where final text may settle, as at a pause the VAD declares: a
        # reader's breath between sentences is shorter than min_silence_ms (LibriVox: none
        # from 35 to 56 s), and with pauses alone that text waited for the 28 s window, and a
        # Stop with it (1.2 s). The seam still needs two decodes to agree on it.
        self._phrase_gap = max(self._speculate, PHRASE_GAP_MS * SAMPLE_RATE // 1000)
        self.samples = 0
        self.speech_active = False
        self._pump: asyncio.Task[None] | None = None
        self._update: asyncio.Task[None] | None = None
        self._decode: asyncio.Task[None] | None = None
        self._last_update = 0.0
        self._overruns_reported = 0
        self._overrun_reported_at = -OVERRUN_REPORT_S
        self._ending = False
        # Audio past capacity goes to one WAV per recording, in order (the lock is FIFO);
        # the first spill is reported at once, the rest in one sentence when it ends.
        self._spilled = GrowingRecording(SAMPLE_RATE, SPILL_REASON)
        self._spill_lock = asyncio.Lock()
        self._spills: set[asyncio.Task[None]] = set()
        self._spill_reported = 0  # samples

    @property
    def device_name(self) -> str:
        return self.source.device_name

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE

    async def start(self) -> None:
        """Open the source (off the loop: devices can be slow) and start pumping; file
        transcription waits until this recording ends (``dictating``)."""
        if self._dictating is not None:
            self._dictation_ends = self._dictating()
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.source.start)
        except Exception:
            self._close()
            raise
        if self._new_capture is not None:
            try:
                self._capture = self._new_capture()
            except OSError as exc:  # the dictation still works; it would not survive a crash
                log.error("cannot keep the captured audio on disk as it comes: %s", exc)
        self._pump = asyncio.create_task(self._run_pump(), name="v2m-pump")

    async def finish(self) -> str:
        """Stop capturing and return the final text of everything captured."""
        stopped = time.perf_counter()
        await self._drain()
        drained = time.perf_counter()
        # The final text does not need provisional text any more; a decode already running
        # finishes on the inference thread, but nothing waits for it.
        await _cancelled(self._update)
        if self._decode is not None:
            await self._decode  # a full-context decode in flight: its text is reused
        waited = time.perf_counter()
        end = self.samples
        if self._vad is not None:
            heard = self._vad.speech_bounds(padded=False)
            if heard is None:
                log.info("no speech in %.1f s of audio", self.duration_s)
                await self._end()
                return ""
            end = self._decode_end(heard[1])
        text = await self._final.finish(end)
        log.debug(
            "stop: %.0f ms draining, %.0f ms for the decode in flight, %.0f ms for the rest",
            1000 * (drained - stopped),
            1000 * (waited - drained),
            1000 * (time.perf_counter() - waited),
        )
        await self._end()
        return text

    async def cancel(self) -> None:
        """Stop capturing and forget everything."""
        self._ending = True
        self.source.stop()
        for task in (self._pump, self._update, self._decode):
            await _cancelled(task)
        await self._end()
        self.discard_capture()

    def discard_capture(self) -> None:
        """The recording's text is stored, or its audio kept: its capture file goes. Until
        then it stays, for the next start to recover should the daemon die first."""
        if self._capture is not None:
            self._capture.discard()

    @property
    def settled_text(self) -> str:
        """Final text of the audio already let go of (what ``keep_audio`` does not hold)."""
        return self._final.settled_text

    async def keep_audio(self, reason: str) -> str:
        """Save all captured audio no final text covers; return a sentence saying where."""
        if self._pump is not None and not self._pump.done():
            await self._drain()
        audio = self._final.unfinished_audio
        return await _keep(functools.partial(save_recording, audio, SAMPLE_RATE, reason), reason)

    async def _drain(self) -> None:
        self._ending = True
        self.source.stop()
        if self._pump is not None:
            await self._pump  # takes in what the source still holds

    async def _end(self) -> None:
        await self._end_spills()
        self._close()

    def _close(self) -> None:
        self._ending = True
        ends, self._dictation_ends = self._dictation_ends, None
        if ends is not None:
            ends()
        self.source.close()
        self._vad_thread.shutdown(wait=False, cancel_futures=True)
        if self.speech_active:
            self.speech_active = False
            self._events.speech_active_changed(False)

    # ---- the pump -------------------------------------------------------------------------

    async def _run_pump(self) -> None:
        try:
            while (chunk := await self.source.read()).size:
                step = round(SLICE_S * SAMPLE_RATE)
                for offset in range(0, chunk.size, step):
                    await self._feed(chunk[offset : offset + step])
        except Exception as exc:  # a broken source must end the recording, not the daemon
            log.exception("audio source failed")
            self._events.error(AudioDeviceError(f"{self.device_name}: {exc}"))
        else:
            if self.source.error is not None:
                self._events.error(self.source.error)
        self._report_overruns(final=True)
        if not self._ending:
            # The source ended on its own (file finished, device gone): finish like a Stop.
            self._ending = True
            self._events.ended("end of input")

    async def _feed(self, chunk: np.ndarray) -> None:
        self.samples += chunk.size
        self._stream.append(chunk)
        self._final.append(chunk)
        self._report_overruns()
        loop = asyncio.get_running_loop()
        if self._vad is None:
            if self._capture is not None:
                await loop.run_in_executor(self._vad_thread, self._capture.append, chunk)
            else:
                await asyncio.sleep(0)  # yield between slices whatever the source's rate
            self._maybe_update(self.samples)
            self._bound_memory()
            return
        # Silero costs ~1 ms per 32 ms of audio: off the loop, so a fast source cannot starve it.
        await loop.run_in_executor(self._vad_thread, self._hear, chunk)
        vad = self._vad
        if vad.speech_active != self.speech_active:
            self.speech_active = vad.speech_active
            self._events.speech_active_changed(self.speech_active)
        limit = self._cfg.vad.auto_stop_silence_ms
        if limit and not self._ending and vad.silence_after_speech_ms >= limit:
            self._ending = True
            self._events.ended(f"{limit} ms of silence")
        heard = vad.speech_bounds(padded=False)
        end = None if heard is None else self._decode_end(heard[1])
        # Quiet since the speech heard last ended: all of it once the VAD declares a pause.
        quiet = self.samples - heard[1] if heard is not None and vad.speech_active else math.inf
        if end is not None and quiet >= self._phrase_gap:
            self._final.pause_at(end)
        if end is not None and end > self._final.decoded_until:
            if quiet >= self._speculate:
                # A pause, or speech gone quiet that may become one: decode it all, in context.
                self._start_decode(self._final.decode_to, end)
            elif self._final.confirm_due(end):
                self._start_decode(self._final.confirm, end)
            else:
                self._maybe_update(end)
        elif self._decode is None and not vad.speech_active:
            self._final.drop_silence(self.samples)  # nothing said, or all of it decoded
        self._bound_memory()

    def _hear(self, chunk: np.ndarray) -> None:
        """On the VAD thread: onto disk first, then to the VAD."""
        if self._capture is not None:
            self._capture.append(chunk)
        assert self._vad is not None
        self._vad.process(chunk)

    def _decode_end(self, heard_to: int) -> int:
        """Where a decode of speech the VAD heard up to ``heard_to`` ends."""
        return min(self.samples, heard_to + self._pad)

    def _maybe_update(self, end: int) -> None:
        """Provisional text every update interval while speech goes on."""
        interval = self._cfg.whisper.update_interval_ms / 1000
        due = self._clock() - self._last_update >= interval
        # Not while a full-context decode runs: an update would wait behind it on the
        # inference thread, and its text would be stale once the decode rebases the stream.
        idle = (self._update is None or self._update.done()) and self._decode is None
        if due and idle:
            self._update = asyncio.create_task(self._provisional(end), name="v2m-update")

    async def _provisional(self, end: int) -> None:
        try:
            text = await self._stream.update(end)
        except V2MError as exc:
            log.warning("provisional decode failed: %s", exc)
            return
        finally:
            # The interval counts from the end of a decode: on a slow CPU, updates leave
            # room for capture, VAD and the final pass instead of running back to back.
            self._last_update = self._clock()
        if text is not None and not self._ending:
            self._events.provisional_text(text)

    def _start_decode(self, decode: Callable[[int], Awaitable[None]], end: int) -> None:
        """Run one of the final pass's decodes up to ``end``, unless one is in flight (the
        next chunk asks again)."""
        if self._decode is None:
            self._decode = asyncio.create_task(
                self._full_context(decode, end), name="v2m-final-pass"
            )

    async def _full_context(self, decode: Callable[[int], Awaitable[None]], end: int) -> None:
        before = (self._final.decoded_until, self._final.text)
        try:
            await decode(end)
        except V2MError as exc:
            # Stop decodes again; if that fails too, the audio is kept then.
            log.warning("full-context decode failed: %s", exc)
            return
        finally:
            self._decode = None
        if (self._final.decoded_until, self._final.text) == before:
            return  # a confirmation that changed nothing: live text goes on from where it is
        shown = self._stream.rebase(self._final.decoded_until, self._final.text)
        # Live text is as fresh as it gets: the next live decode is due an update interval
        # from now, not at once (on the audiobook: 30 live decodes instead of 34).
        self._last_update = self._clock()
        if not self._ending and shown:
            self._events.provisional_text(shown)

    # ---- bounds ---------------------------------------------------------------------------

    def _bound_memory(self) -> None:
        """Past ``[audio] capacity_s`` of audio without final text (a worker that cannot
        keep up), keep the oldest as a WAV and say so: memory stays bounded, nothing lost."""
        if self._final.kept_samples <= self._capacity:
            return
        spilled = self._final.spill(self._capacity - SPILL_ROOM_S * SAMPLE_RATE)
        if spilled.size:
            task = asyncio.create_task(self._report_spill(spilled), name="v2m-spill")
            self._spills.add(task)
            task.add_done_callback(self._spills.discard)

    async def _report_spill(self, audio: np.ndarray) -> None:
        async with self._spill_lock:
            kept = await _keep(functools.partial(self._spilled.append, audio), SPILL_REASON)
            if self._spill_reported:
                return  # said at the end, with the total
            self._spill_reported = self._spilled.samples or audio.size
            self._events.error(self._spill_error(self._spill_reported, kept))

    async def _end_spills(self) -> None:
        """Wait for audio still being written out, then report what came after the first
        report: a recording that kept falling behind says so twice, not once a minute."""
        if self._spills:
            await asyncio.gather(*self._spills)
        self._spilled.close()
        if self._spill_reported and self._spilled.samples > self._spill_reported:
            self._spill_reported = self._spilled.samples
            kept = f"all of it is kept in {self._spilled.path}"
            self._events.error(self._spill_error(self._spilled.samples, kept))

    def _spill_error(self, samples: int, kept: str) -> ModelError:
        return ModelError(
            f"{samples / SAMPLE_RATE:.0f} s of audio could not be transcribed within "
            f"[audio] capacity_s = {self._cfg.audio.capacity_s}; {kept}"
        )

    def _report_overruns(self, *, final: bool = False) -> None:
        """Samples the source dropped, at most once per OVERRUN_REPORT_S (and at the end)."""
        dropped = self.source.overruns - self._overruns_reported
        now = self._clock()
        if dropped <= 0 or (not final and now - self._overrun_reported_at < OVERRUN_REPORT_S):
            return
        self._overruns_reported += dropped
        self._overrun_reported_at = now
        message = (
            f"{self.device_name}: dropped {dropped} samples "
            f"({dropped / SAMPLE_RATE:.2f} s) because the reader fell behind"
        )
        log.warning(message)
        self._events.error(AudioDeviceError(message))


async def _cancelled(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _keep(write: Callable[[], Path], reason: str) -> str:
    """Run ``write`` (it puts audio on disk, returning the file) off the loop; a sentence
    saying where the audio is, or why it is not."""
    loop = asyncio.get_running_loop()
    try:
        path = await loop.run_in_executor(None, write)
    except OSError as exc:
        log.error("could not keep the audio (%s): %s", reason, exc)
        return f"the audio could not be kept: {exc}"
    return f"the audio is kept in {path}"
