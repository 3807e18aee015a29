"""The Rust engine through its Python binding: zero-copy views, eventfd wake-ups, segment
lifecycle and stale-segment cleanup.

Audio goes in the ways the daemon feeds it (``Ring.from_samples``, ``Ring.from_wav``): the
ring's only writer is the engine thread a ring is created with. The ring's own logic
(wrap-around, exact overrun accounting, concurrent transfer, header refusal) is tested in
Rust, ``engine/tests/ring.rs``; overruns through the binding in ``test_audio.py``."""

from __future__ import annotations

import asyncio
import os
import selectors
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from v2md import _engine
from v2md.audio.capture import Wakeup
from v2md.audio.format import SAMPLE_RATE


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


async def until(ring: _engine.Ring, ready) -> None:
    """Sleep on the ring's eventfd until ``ready()``; it is woken by a write into an empty
    ring (views() found it empty) and by the end of the stream."""
    wakeup = Wakeup(ring.fileno(), ring.drain_wakeups)
    try:
        while True:
            wakeup.arm()
            if ready():
                return
            await asyncio.wait_for(wakeup.wait(), timeout=10)
    finally:
        wakeup.close()


async def ended(ring: _engine.Ring) -> None:
    await until(ring, lambda: ring.ended)


async def something_readable(ring: _engine.Ring) -> None:
    await until(ring, lambda: ring.views()[0].size > 0)


def samples(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def test_nothing_writes_into_a_ring_but_its_own_source() -> None:
    with pytest.raises(TypeError):
        _engine.Ring()
    for member in ("write", "attach"):
        assert not hasattr(_engine.Ring, member)


async def test_views_are_zero_copy_windows_onto_the_mapped_ring() -> None:
    # Twice the capacity, read as fast as the reader takes it: the file thread fills the
    # ring, then waits for space.
    ring = _engine.Ring.from_samples(samples(range(1, 17)), 8, False)
    try:
        await something_readable(ring)
        first, wrapped = ring.views()
        again, _ = ring.views()
        assert np.shares_memory(first, again)
        assert address(first) == address(again)
        assert not first.flags.writeable and wrapped.size == 0
        assert first.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
        # Release the samples and let the producer write the rest into the same slots:
        # the old view shows the new values, so it is the shared memory, not a copy.
        ring.consume(8)
        await ended(ring)
        assert first.tolist() == [9, 10, 11, 12, 13, 14, 15, 16]
    finally:
        ring.close()


async def test_a_wrapped_span_comes_as_two_views_into_one_buffer() -> None:
    ring = _engine.Ring.from_samples(samples(range(14)), 8, False)
    try:
        await something_readable(ring)
        assert ring.views()[0].tolist() == list(range(8))
        ring.consume(6)  # the last six samples go into the six slots freed at the start
        await ended(ring)
        first, wrapped = ring.views()
        assert first.tolist() == [6, 7] and wrapped.tolist() == [8, 9, 10, 11, 12, 13]
        # The wrapped part starts at the ring's beginning, six samples before the first part.
        assert address(first) - address(wrapped) == 6 * 4
        with pytest.raises(ValueError, match="only 8 readable"):
            ring.consume(9)
        assert ring.overruns == 0
    finally:
        ring.close()


class CountingSelector(selectors.DefaultSelector):
    """The event loop's selector, counting blocking waits that return nothing: wake-ups
    without work, as a polling reader causes."""

    idle_wakeups = 0

    def select(self, timeout=None):
        events = super().select(timeout)
        if timeout != 0 and not events:
            self.idle_wakeups += 1
        return events


def wav_header(data_bytes: int) -> bytes:
    """A 16 kHz mono 16-bit WAV header announcing ``data_bytes`` of samples."""
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        *(b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, 1, SAMPLE_RATE),
        *(2 * SAMPLE_RATE, 2, 16, b"data", data_bytes),
    )


def test_reader_sleeps_on_the_eventfd_until_a_write_wakes_it() -> None:
    # A WAV file read from a pipe: the engine's file thread blocks until samples come,
    # as a capture thread waits for its device.
    read_end, write_end = os.pipe()
    os.write(write_end, wav_header(1 << 30))
    try:
        ring = _engine.Ring.from_wav(f"/dev/fd/{read_end}", 1000, False)
    finally:
        os.close(read_end)  # the engine opened its own descriptor
    chunk = np.arange(320, dtype="<i2")  # the file thread reads 20 ms at a time
    selector = CountingSelector()

    async def read_once() -> None:
        wakeup = Wakeup(ring.fileno(), ring.drain_wakeups)
        try:
            wakeup.arm()
            assert ring.views()[0].size == 0
            written = threading.Event()

            def writer() -> None:
                # Long enough that a polling reader would loop many times meanwhile.
                written.wait(0.3)
                os.write(write_end, chunk.tobytes())

            thread = threading.Thread(target=writer)
            thread.start()
            await asyncio.wait_for(wakeup.wait(), timeout=10)
            thread.join()
        finally:
            wakeup.close()

    loop = asyncio.SelectorEventLoop(selector)
    try:
        loop.run_until_complete(read_once())
        assert selector.idle_wakeups == 0
        assert np.array_equal(ring.views()[0], chunk / np.float32(32768))
    finally:
        loop.close()
        os.close(write_end)  # the file thread sees the end of the file, then stops
        ring.close()


async def test_close_unlinks_the_segment_and_is_idempotent() -> None:
    ring = _engine.Ring.from_samples(samples([0, 1, 2]), 16, False)
    path = Path(ring.path)
    assert path.parent == Path("/dev/shm") and path.name.startswith(f"v2m-ring-{os.getpid()}-")
    assert path.stat().st_mode & 0o777 == 0o600
    await ended(ring)
    view, _ = ring.views()
    ring.close()
    ring.close()
    assert not path.exists()
    # A view taken before close still holds the mapping: reading it is safe.
    assert view.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="closed"):
        ring.views()


async def test_stop_ends_the_stream_and_keeps_unread_samples() -> None:
    played = samples(np.arange(10 * SAMPLE_RATE) % 1000)
    ring = _engine.Ring.from_samples(played, SAMPLE_RATE, True)
    try:
        await something_readable(ring)
        assert not ring.ended
        ring.stop()
        assert ring.ended and ring.error is None
        got = np.concatenate(ring.views())
        assert 0 < got.size < played.size
        assert np.array_equal(got, played[: got.size])
    finally:
        ring.close()


async def test_stale_segments_of_dead_processes_are_removed() -> None:
    ring = _engine.Ring.from_samples(np.zeros(16, np.float32), 16, False)
    await ended(ring)
    raw = bytearray(Path(ring.path).read_bytes())
    dead_pid = 0x3FFFFFF0  # above the kernel's pid_max
    raw[32:36] = dead_pid.to_bytes(4, "little")
    # The daemon's own cleanup of /dev/shm: names unique to this test run, since any
    # other stale segment there goes too.
    stale = Path("/dev/shm") / f"v2m-ring-{dead_pid}-{os.getpid()}0"
    stale.write_bytes(raw)
    # Cut short: not a ring whatever its header says, so left alone (and never mapped).
    truncated = Path("/dev/shm") / f"v2m-ring-{dead_pid}-{os.getpid()}1"
    truncated.write_bytes(raw[:300])
    try:
        assert _engine.remove_stale_segments() >= 1
        assert not stale.exists()
        assert truncated.exists()
        assert Path(ring.path).exists()
    finally:
        stale.unlink(missing_ok=True)
        truncated.unlink(missing_ok=True)
        ring.close()


def test_an_unknown_device_is_named_in_the_error() -> None:
    with pytest.raises(_engine.DeviceError, match="no-such-mic"):
        _engine.Ring.capture("no-such-mic", 1000)
