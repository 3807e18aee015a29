"""Hybrid dictation: local live text, final text from a Wyoming server, against local only.

A ``wyoming-faster-whisper`` server on loopback serves the same bundled tiny.en as
the local worker (same compute type and threads), so the two sides differ only in
where the final text is decoded: what the hybrid path adds is the protocol, the
transfer and the server's own process, not a better model. For each recorded
speaker (tests/recorded.py), the daemon's audio source plays the speech at real
time; a client calls Start, waits until the VAD has heard the speech end, pauses
``--stop-after`` seconds, and times Stop (stop→final), then scores the text.

The second table is the round trip a remote final text adds per utterance beyond
the decode: requests to a Wyoming server on loopback that reads the audio whole
and answers at once.

    python benchmarks/remote_bench.py [--runs 2] [--stop-after 1.0] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import recorded  # noqa: E402
import speech  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402
from harness import Daemon, PrivateBus  # noqa: E402
from test_remote_wyoming import WyomingServer  # noqa: E402
from wyoming.asr import Transcript  # noqa: E402
from wyoming.audio import AudioStop  # noqa: E402
from wyoming.event import async_read_event, async_write_event  # noqa: E402

from v2md import INTERFACE  # noqa: E402
from v2md.client import dictation_proxy  # noqa: E402
from v2md.config import WhisperConfig  # noqa: E402
from v2md.remote.worker import RemoteWorker  # noqa: E402
from v2md.remote.wyoming_protocol import WyomingEngine  # noqa: E402

SPEAKERS = {"audiobook": recorded.audiobook, "prompts": recorded.telephone_prompts}


async def dictation(address: str, speech_s: float, stop_after: float) -> tuple[float, str]:
    """Start, wait for the VAD's speech end, pause, Stop: (stop→final seconds, text)."""
    bus = await MessageBus(bus_address=address).connect()
    try:
        iface, props = await dictation_proxy(bus)
        ended = asyncio.Event()
        started = 0.0

        def on_props(interface: str, changed: dict, _invalid: list) -> None:
            active = changed.get("SpeechActive") if interface == INTERFACE else None
            if active is not None and not active.value and time.monotonic() > started + speech_s:
                ended.set()

        props.on_properties_changed(on_props)
        # The model loaded, or the server's describe answered, before the clock starts.
        while (await props.call_get(INTERFACE, "ModelState")).value != "ready":
            await asyncio.sleep(0.1)
        started = time.monotonic()
        await iface.call_start()
        await asyncio.wait_for(ended.wait(), timeout=speech_s + 60)
        await asyncio.sleep(stop_after)
        t0 = time.perf_counter()
        text = await iface.call_stop()
        return time.perf_counter() - t0, text
    finally:
        bus.disconnect()


async def run_daemon(
    home: Path, wav: Path, speech_s: float, args: argparse.Namespace, **settings: str
) -> tuple[float, str]:
    bus = PrivateBus()
    daemon = Daemon(
        bus,
        home,
        V2M_AUDIO__FILE=str(wav),
        V2M_LOG_LEVEL="warning",
        V2M_WHISPER__CPU_THREADS=str(args.threads),
        **settings,
    ).start()
    try:
        await daemon.wait_ready()
        return await dictation(bus.address, speech_s, args.stop_after)
    finally:
        daemon.stop()
        bus.close()


async def instant_server() -> tuple[asyncio.Server, str]:
    """A Wyoming server that reads each request whole and answers at once, without
    decoding: what a request costs beyond the decode (framing, transfer, connection)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (event := await async_read_event(reader)) is not None:
            if AudioStop.is_type(event.type):
                await async_write_event(Transcript(text="done").event(), writer)
                break  # one request per connection, as v2md sends them
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def round_trip(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """Median and largest milliseconds of one request to the instant server, per length."""
    server, url = await instant_server()
    cfg = WhisperConfig(engine="wyoming", url=url, remote_only=True)
    remote = RemoteWorker(WyomingEngine(cfg), None, cfg)
    rows = []
    for seconds in (3, 10, 28):
        audio = np.zeros(seconds * speech.SAMPLE_RATE, np.float32) + 0.01
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            await remote.transcribe_speech(audio)
            times.append((time.perf_counter() - t0) * 1000)
        rows.append((f"{seconds} s", statistics.median(times), max(times)))
    await remote.close()
    server.close()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--stop-after", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{args.runs} runs each, real-time audio through v2md, Stop {args.stop_after} s after "
        f"the VAD's speech end, {args.threads} inference threads on each side, "
        f"load {psutil.getloadavg()}"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server = WyomingServer(tmp / "wyoming", cpu_threads=args.threads)
        try:
            await server.wait_ready()
            print("| speech | final text from | stop→final p50 / max | WER |")
            print("|---|---|---|---|")
            for name, load in SPEAKERS.items():
                audio, reference = load()
                loud = np.flatnonzero(np.abs(audio) > 0.01)
                speech_s = loud[-1] / speech.SAMPLE_RATE
                wav = speech.write_wav(
                    tmp / f"{name}.wav", np.concatenate([audio, speech.silence(30)])
                )
                sides = {
                    "local tiny.en": {},
                    "Wyoming server (hybrid)": {
                        "V2M_WHISPER__ENGINE": "wyoming",
                        "V2M_WHISPER__URL": server.url,
                    },
                }
                for side, settings in sides.items():
                    runs = [
                        await run_daemon(tmp / f"home-{name}", wav, speech_s, args, **settings)
                        for _ in range(args.runs)
                    ]
                    stops = [s * 1000 for s, _ in runs]
                    wer = statistics.mean(speech.wer(reference, text) for _, text in runs)
                    print(
                        f"| {name} ({audio.size / speech.SAMPLE_RATE:.0f} s) | {side} "
                        f"| {statistics.median(stops):.0f} / {max(stops):.0f} ms | {wer:.1f} % |",
                        flush=True,
                    )
            print()
            print("| audio per request | round trip p50 / max (20 requests) |")
            print("|---|---|")
            for length, p50, most in await round_trip(args):
                print(f"| {length} | {p50:.1f} / {most:.1f} ms |", flush=True)
        finally:
            server.stop()
        print(f"load after: {psutil.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
