"""Audio engine vs a plain Python hand-off, measured side by side in one run.

Each figure is taken for the engine's shared-memory ring and for the Python reference,
with the same producer chunks and the same consumer work on both sides:

* producer: 20 ms chunks (320 samples). Engine: the engine's own file thread (no GIL),
  the ring's only writer, copies each chunk into the ring, waking the reader through the
  eventfd only when the reader announced a sleep. Reference: a Python thread copies each
  chunk into a fresh array (what a device callback hands over) and passes it to
  ``queue.Queue`` or, through ``call_soon_threadsafe``, to an ``asyncio.Queue``.
* consumer: copies what it receives into its own buffer (what the daemon does with
  audio). Engine: one copy of the whole readable span per read, straight from the
  zero-copy views, then ``consume()``; reference: one copy per chunk taken off the queue.
  The copied stream is checked against the input after each run.

Figures:

* throughput: 600 s of audio moved as fast as the consumer takes it, samples/s of wall
  time and CPU ns per sample (all threads); median of alternating rounds so both sides
  see the same background load;
* wake-up latency: a Python thread sends a chunk every 20 ms, stamping CLOCK_MONOTONIC
  just before it lets go of it; per chunk, that stamp to the awaiting coroutine holding
  it, p50/p99, in alternating rounds. Engine: the thread writes 16-bit samples into a
  pipe that the engine reads as a WAV stream (``Ring.from_wav``), so each chunk crosses
  the pipe, wakes the engine's file thread (as a driver wakes a capture thread), is
  converted, written into the ring and signalled; reference: ``asyncio.Queue`` as above;
* idle: CPU time and event-loop wake-ups over a stretch with a reader parked and
  nothing arriving (engine: the file thread blocked on an empty pipe).

The machine's load average is printed with the figures: on a shared machine both
latency and throughput move with it.

Run: ``python benchmarks/engine_bench.py`` (about two minutes; ``--quick`` for a smoke
run). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import resource
import statistics
import struct
import threading
import time

import numpy as np

from v2md import _engine
from v2md.audio.capture import Wakeup
from v2md.audio.format import SAMPLE_RATE as RATE

CHUNK = 320  # 20 ms, what the engine's file producer and a typical device deliver


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def piped_wav(data_bytes: int) -> tuple[_engine.Ring, int]:
    """A ring the engine fills from a pipe read as a 16 kHz mono 16-bit WAV stream
    announcing ``data_bytes`` of samples; returns it and the pipe's write end."""
    read_end, write_end = os.pipe()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        *(b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, 1, RATE, 2 * RATE, 2, 16),
        *(b"data", data_bytes),
    )
    os.write(write_end, header)
    try:
        # Not paced by the engine: the writer sets the pace, the ring never drops.
        return _engine.Ring.from_wav(f"/dev/fd/{read_end}", RATE, False), write_end
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)  # the engine opened its own descriptor


class Meter:
    """Wall time and CPU time of the whole process (all threads) over a block."""

    def __enter__(self) -> Meter:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *_exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def figures(self, samples: int) -> tuple[float, float]:
        """(samples per second of wall time, CPU nanoseconds per sample)."""
        return samples / self.wall, self.cpu * 1e9 / samples


# --- throughput -------------------------------------------------------------------------


async def engine_throughput(samples: np.ndarray, out: np.ndarray) -> tuple[float, float, int]:
    """Rust thread writes 20 ms chunks (waiting when full); Python copies each readable span.

    The clock starts once the ring exists: handing the benchmark's input array to the
    Rust source is set-up, like filling the source array is for the references (the
    producer may have filled the 10 s ring by then: under 2% of the samples).
    Also returns how many reads it took.
    """
    ring = _engine.Ring.from_samples(samples, 10 * RATE, False)
    wakeup = Wakeup(ring.fileno(), ring.drain_wakeups)
    got = reads = 0
    try:
        with Meter() as meter:
            while True:
                wakeup.arm()
                ended = ring.ended
                first, wrapped = ring.views()
                if first.size:
                    out[got : got + first.size] = first
                    got += first.size
                    if wrapped.size:
                        out[got : got + wrapped.size] = wrapped
                        got += wrapped.size
                    ring.consume(first.size + wrapped.size)
                    reads += 1
                elif ended:
                    break
                else:
                    await wakeup.wait()
    finally:
        wakeup.close()
        ring.close()
    assert got == samples.size and np.array_equal(out, samples)
    return (*meter.figures(samples.size), reads)


def thread_queue_throughput(samples: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """Producer thread puts copied chunks on a queue.Queue; consumer thread copies them out."""
    q: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=10 * RATE // CHUNK)

    def produce() -> None:
        for i in range(0, samples.size, CHUNK):
            q.put(samples[i : i + CHUNK].copy())
        q.put(None)

    with Meter() as meter:
        producer = threading.Thread(target=produce)
        producer.start()
        got = 0
        while (chunk := q.get()) is not None:
            out[got : got + chunk.size] = chunk
            got += chunk.size
        producer.join()
    assert got == samples.size and np.array_equal(out, samples)
    return meter.figures(samples.size)


async def asyncio_queue_throughput(samples: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """Producer thread hands copied chunks to an asyncio.Queue; the coroutine copies them out."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[np.ndarray | None] = asyncio.Queue()

    def produce() -> None:
        for i in range(0, samples.size, CHUNK):
            loop.call_soon_threadsafe(q.put_nowait, samples[i : i + CHUNK].copy())
        loop.call_soon_threadsafe(q.put_nowait, None)

    with Meter() as meter:
        producer = threading.Thread(target=produce)
        producer.start()
        got = 0
        while (chunk := await q.get()) is not None:
            out[got : got + chunk.size] = chunk
            got += chunk.size
        producer.join()
    assert got == samples.size and np.array_equal(out, samples)
    return meter.figures(samples.size)


# --- wake-up latency --------------------------------------------------------------------


async def engine_latency(seconds: float) -> list[float]:
    """A Python thread writes a chunk into the pipe every 20 ms; per chunk, the coroutine
    holding it minus the stamp taken just before the write.

    Every chunk read counts, whether the read followed a wake-up or found it on a second
    look, as every chunk taken off the reference's queue does. The file thread reads and
    writes whole 20 ms chunks, so the k-th chunk read is the k-th written.
    """
    chunks = int(seconds * RATE) // CHUNK
    silence = np.zeros(CHUNK, "<i2").tobytes()
    ring, pipe = piped_wav(chunks * len(silence))
    stamps: list[int] = []

    def produce() -> None:
        start = time.monotonic()
        for i in range(1, chunks + 1):
            time.sleep(max(0.0, start + i * CHUNK / RATE - time.monotonic()))
            stamps.append(now_ns())
            os.write(pipe, silence)

    wakeup = Wakeup(ring.fileno(), ring.drain_wakeups)
    out = np.empty(RATE, np.float32)
    latencies = []
    got = 0
    producer = threading.Thread(target=produce)
    producer.start()
    try:
        while True:
            wakeup.arm()
            ended = ring.ended
            first, wrapped = ring.views()
            if first.size:
                now = now_ns()
                n = first.size + wrapped.size
                latencies += [
                    (now - stamps[k]) / 1e3 for k in range(got // CHUNK, (got + n) // CHUNK)
                ]
                got += n
                out[: first.size] = first
                out[first.size : n] = wrapped
                ring.consume(n)
            elif ended:
                break
            else:
                await wakeup.wait()
    finally:
        producer.join()
        os.close(pipe)
        wakeup.close()
        ring.close()
    assert ring.error is None and got == chunks * CHUNK, ring.error
    return latencies


async def asyncio_latency(seconds: float) -> list[float]:
    """Python thread on the same 20 ms schedule, stamping each chunk before handing it over."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[tuple[int, np.ndarray] | None] = asyncio.Queue()
    chunks = int(seconds * RATE) // CHUNK
    silence = np.zeros(CHUNK, np.float32)
    out = np.empty(CHUNK, np.float32)

    def produce() -> None:
        start = time.monotonic()
        for i in range(1, chunks + 1):
            time.sleep(max(0.0, start + i * CHUNK / RATE - time.monotonic()))
            loop.call_soon_threadsafe(q.put_nowait, (now_ns(), silence.copy()))
        loop.call_soon_threadsafe(q.put_nowait, None)

    producer = threading.Thread(target=produce)
    producer.start()
    latencies = []
    while (item := await q.get()) is not None:
        latencies.append((now_ns() - item[0]) / 1e3)
        out[:] = item[1]
    producer.join()
    return latencies


# --- idle -------------------------------------------------------------------------------


async def idle(seconds: float, park) -> tuple[float, int, int]:
    """CPU ms, event-loop wake-ups and context switches while `park` waits for nothing."""
    loop = asyncio.get_running_loop()
    selector = loop._selector  # type: ignore[attr-defined]
    real_select = selector.select
    wakeups = 0

    def counting_select(timeout=None):
        nonlocal wakeups
        events = real_select(timeout)
        if timeout != 0:
            wakeups += 1
        return events

    task = asyncio.create_task(park())
    await asyncio.sleep(0)
    before = resource.getrusage(resource.RUSAGE_SELF)
    selector.select = counting_select
    try:
        await asyncio.sleep(seconds)
    finally:
        selector.select = real_select
    after = resource.getrusage(resource.RUSAGE_SELF)
    task.cancel()
    cpu_ms = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1e3
    switches = after.ru_nvcsw + after.ru_nivcsw - before.ru_nvcsw - before.ru_nivcsw
    # The one wake-up that ends asyncio.sleep() is the measurement's own.
    return cpu_ms, wakeups - 1, switches


async def main(quick: bool) -> None:
    seconds = 600 if not quick else 30
    rounds = 5 if not quick else 2
    latency_s = 6.0 if not quick else 1.0
    idle_s = 10.0 if not quick else 2.0
    load_before = os.getloadavg()
    samples = np.random.default_rng(0).standard_normal(seconds * RATE).astype(np.float32)
    out = np.ones_like(samples)  # written once so no side pays its page faults
    eng_runs, tq_runs, aq_runs = [], [], []
    eng_lat: list[float] = []
    aq_lat: list[float] = []
    for _ in range(rounds):
        eng_runs.append(await engine_throughput(samples, out))
        tq_runs.append(thread_queue_throughput(samples, out))
        aq_runs.append(await asyncio_queue_throughput(samples, out))
    for _ in range(rounds):
        eng_lat += await engine_latency(latency_s)
        aq_lat += await asyncio_latency(latency_s)

    def median(runs: list[tuple]) -> tuple[float, float]:
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    eng_tp, tq_tp, aq_tp = median(eng_runs), median(tq_runs), median(aq_runs)
    span = samples.size / statistics.median(r[2] for r in eng_runs)

    # Nothing arrives: the engine's file thread waits on an empty pipe.
    ring, pipe = piped_wav(1 << 30)
    wakeup = Wakeup(ring.fileno(), ring.drain_wakeups)

    async def park_on_ring() -> None:
        wakeup.arm()
        await wakeup.wait()

    async def park_on_queue() -> None:
        await asyncio.Queue().get()

    async def poll_every_10ms() -> None:
        # What a reader without a wake-up descriptor does: look every 10 ms.
        q: queue.Queue[np.ndarray] = queue.Queue()
        while q.empty():
            await asyncio.sleep(0.01)

    eng_idle = await idle(idle_s, park_on_ring)
    wakeup.close()
    os.close(pipe)  # the end of the file lets the file thread go
    ring.close()
    aq_idle = await idle(idle_s, park_on_queue)
    poll_idle = await idle(idle_s, poll_every_10ms)
    load_after = os.getloadavg()

    def tp(v: tuple[float, float]) -> str:
        return f"{v[0] / 1e6:,.0f} M samples/s ({v[0] / RATE:,.0f}x real time)"

    def cpu(v: tuple[float, float]) -> str:
        return f"{v[1]:.2f} ns"

    def lat(values: list[float]) -> str:
        a = np.array(values)
        return f"{np.percentile(a, 50):.0f} / {np.percentile(a, 99):.0f} µs (n={a.size})"

    def idl(r: tuple[float, int, int]) -> str:
        return f"{r[0]:.1f} ms CPU, {r[1]} loop wake-ups, {r[2]} context switches"

    def load(v: tuple[float, float, float]) -> str:
        return " / ".join(f"{x:.2f}" for x in v)

    print(
        f"{os.cpu_count()} CPUs, load average (1/5/15 min) {load(load_before)} before, "
        f"{load(load_after)} after; {seconds} s of audio in {CHUNK}-sample chunks, "
        f"median of {rounds} rounds; latency over {rounds} rounds of {latency_s:.0f} s; "
        f"idle over {idle_s:.0f} s\n"
    )
    print("| measure | engine ring | Python reference |")
    print("|---|---|---|")
    print(f"| throughput | {tp(eng_tp)} | queue.Queue: {tp(tq_tp)}; asyncio.Queue: {tp(aq_tp)} |")
    print(
        f"| CPU per sample (all threads) | {cpu(eng_tp)} | queue.Queue: {cpu(tq_tp)}; "
        f"asyncio.Queue: {cpu(aq_tp)} |"
    )
    print(
        f"| engine advantage per sample (wall / CPU) | queue.Queue: {eng_tp[0] / tq_tp[0]:.1f}x / "
        f"{tq_tp[1] / eng_tp[1]:.1f}x; asyncio.Queue: {eng_tp[0] / aq_tp[0]:.1f}x / "
        f"{aq_tp[1] / eng_tp[1]:.1f}x | 1x |"
    )
    print(f"| samples per read | {span:,.0f} (whole readable span) | {CHUNK} (one chunk) |")
    print(f"| wake-up latency p50 / p99 | {lat(eng_lat)} | asyncio.Queue: {lat(aq_lat)} |")
    print(
        f"| idle, reader parked | {idl(eng_idle)} | asyncio.Queue: {idl(aq_idle)}; "
        f"10 ms polling: {idl(poll_idle)} |"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    asyncio.run(main(parser.parse_args().quick))
