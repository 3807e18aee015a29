"""The Rust engine through its Python binding: zero-copy views, eventfd wake-ups,
overrun accounting, segment lifecycle and header refusal."""

from __future__ import annotations

import asyncio
import os
import selectors
import wave
from pathlib import Path

import numpy as np
import pytest

from v2md import _engine
from v2md.audio.capture import EngineSource


@pytest.fixture
def ring(tmp_path: Path):
    r = _engine.Ring(8, directory=tmp_path)
    yield r
    r.close()


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_views_are_zero_copy_windows_onto_the_mapped_ring(ring) -> None:
    assert ring.write(np.arange(1, 9, dtype=np.float32)) == 8
    first, wrapped = ring.views()
    again, _ = ring.views()
    assert np.shares_memory(first, again)
    assert address(first) == address(again)
    assert not first.flags.writeable and wrapped.size == 0
    assert first.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    # Release the samples and let the producer overwrite the same slots: the old view
    # shows the new values, so it is the shared memory itself, not a copy.
    ring.consume(8)
    ring.write(np.full(8, 42.0, dtype=np.float32))
    assert first.tolist() == [42.0] * 8


def test_a_wrapped_span_comes_as_two_views_into_one_buffer(ring) -> None:
    ring.write(np.arange(6, dtype=np.float32))
    ring.consume(6)
    ring.write(np.arange(10, 15, dtype=np.float32))
    first, wrapped = ring.views()
    assert first.tolist() == [10, 11] and wrapped.tolist() == [12, 13, 14]
    # The wrapped part starts at the ring's beginning, six samples before the first part.
    assert address(first) - address(wrapped) == 6 * 4
    with pytest.raises(ValueError, match="only 5 readable"):
        ring.consume(6)


def test_overruns_count_exactly_the_dropped_samples(ring) -> None:
    assert ring.write(np.ones(5, dtype=np.float32)) == 5
    assert ring.write(np.ones(7, dtype=np.float32)) == 3
    assert ring.overruns == 4
    ring.consume(8)
    assert ring.write(np.ones(8, dtype=np.float32)) == 8
    assert ring.overruns == 4


def test_level_meter_reports_rms_and_peak_of_the_last_chunk(ring) -> None:
    ring.write(np.array([0.5, -0.5, 0.5, -0.5], dtype=np.float32))
    assert ring.level == pytest.approx((0.5, 0.5))
    ring.write(np.array([0.0, -0.25], dtype=np.float32))
    assert ring.level == pytest.approx((np.sqrt(0.03125), 0.25))


class CountingSelector(selectors.DefaultSelector):
    """The event loop's selector, counting blocking waits that return nothing: wake-ups
    without work, as a polling reader causes."""

    idle_wakeups = 0

    def select(self, timeout=None):
        events = super().select(timeout)
        if timeout != 0 and not events:
            self.idle_wakeups += 1
        return events


def test_reader_sleeps_on_the_eventfd_until_a_write_wakes_it(tmp_path: Path) -> None:
    # Played at real time, the file reaches the ring a 20 ms chunk at a time: a reader
    # that polled would wake up between chunks and find nothing.
    path = tmp_path / "half-second.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.arange(8000, dtype="<i2").tobytes())
    source = EngineSource("file", 16000, file=path, realtime=True)
    selector = CountingSelector()

    async def read_all() -> list[np.ndarray]:
        source.start()
        chunks = []
        while (chunk := await asyncio.wait_for(source.read(), timeout=10)).size:
            chunks.append(chunk)
        return chunks

    loop = asyncio.SelectorEventLoop(selector)
    try:
        chunks = loop.run_until_complete(read_all())
        assert selector.idle_wakeups == 0
        assert len(chunks) > 1  # woken for each chunk, not once at the end
        assert np.concatenate(chunks).size == 8000
    finally:
        loop.close()
        source.close()


def test_close_unlinks_the_segment_and_is_idempotent(tmp_path: Path) -> None:
    ring = _engine.Ring(16, directory=tmp_path)
    path = Path(ring.path)
    assert path.parent == tmp_path and path.name.startswith(f"v2m-ring-{os.getpid()}-")
    assert path.stat().st_mode & 0o777 == 0o600
    ring.write(np.arange(3, dtype=np.float32))
    view, _ = ring.views()
    ring.close()
    ring.close()
    assert not path.exists()
    # A view taken before close still holds the mapping: reading it is safe.
    assert view.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="closed"):
        ring.views()


def test_stop_ends_the_stream_and_keeps_unread_samples(ring) -> None:
    ring.write(np.arange(3, dtype=np.float32))
    assert not ring.ended
    ring.stop()
    assert ring.ended
    assert ring.views()[0].tolist() == [0, 1, 2]


def test_another_reader_can_attach_but_a_corrupt_header_is_refused(tmp_path: Path) -> None:
    ring = _engine.Ring(16, directory=tmp_path)
    ring.write(np.array([0.5, 0.25], dtype=np.float32))
    reader = _engine.Ring.attach(ring.path)
    assert reader.views()[0].tolist() == [0.5, 0.25]
    reader.close()
    assert Path(ring.path).exists(), "an attached reader never unlinks the owner's segment"

    raw = bytearray(Path(ring.path).read_bytes())
    raw[16:24] = (999).to_bytes(8, "little")
    bad = tmp_path / "corrupt"
    bad.write_bytes(raw)
    with pytest.raises(_engine.SegmentError, match="corrupt ring header"):
        _engine.Ring.attach(bad)
    foreign = tmp_path / "foreign"
    foreign.write_bytes(b"\x7fELF" + bytes(400))
    with pytest.raises(_engine.SegmentError, match="wrong magic"):
        _engine.Ring.attach(foreign)
    ring.close()


def test_stale_segments_of_dead_processes_are_removed(tmp_path: Path) -> None:
    ring = _engine.Ring(16, directory=tmp_path)
    raw = bytearray(Path(ring.path).read_bytes())
    dead_pid = 0x3FFFFFF0  # above the kernel's pid_max
    raw[32:36] = dead_pid.to_bytes(4, "little")
    stale = tmp_path / f"v2m-ring-{dead_pid}-0"
    stale.write_bytes(raw)
    assert _engine.remove_stale_segments(tmp_path) == 1
    assert not stale.exists()
    assert Path(ring.path).exists()
    ring.close()


def test_write_is_refused_on_a_ring_fed_by_its_own_source(tmp_path: Path) -> None:
    ring = _engine.Ring.from_samples(np.zeros(10, dtype=np.float32), 100, False, tmp_path)
    with pytest.raises(ValueError, match="own source"):
        ring.write(np.zeros(1, dtype=np.float32))
    ring.close()


def test_an_unknown_device_is_named_in_the_error() -> None:
    with pytest.raises(_engine.DeviceError, match="no-such-mic"):
        _engine.Ring.capture("no-such-mic", 1000)
