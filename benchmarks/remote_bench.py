"""Hybrid dictation: local live text, final text from a Wyoming server, against local only.

A ``wyoming-faster-whisper`` server on loopback serves the same bundled tiny.en as
the local worker (same compute type and threads), so the two sides differ only in
where the final text is decoded: what the hybrid path adds is the protocol, the
transfer and the server's own process, not a better model. For each recorded
speaker (tests/recorded.py), the daemon's audio source plays the speech at real
time; a client calls Start, waits until the VAD has heard the speech end, pauses
``--stop-after`` seconds, and times Stop (stop→final), then scores the text.

The second table times one request directly, in this process: the same audio
decoded by the local worker and sent to the server, the difference being the
round trip a remote final text adds per utterance.

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

from v2md import INTERFACE  # noqa: E402
from v2md.client import dictation_proxy  # noqa: E402
from v2md.config import WhisperConfig  # noqa: E402
from v2md.remote import RemoteWorker  # noqa: E402
from v2md.remote_wyoming import WyomingEngine  # noqa: E402
from v2md.transcriber import WhisperWorker  # noqa: E402

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


async def round_trip(
    server: WyomingServer, args: argparse.Namespace
) -> list[tuple[str, float, float]]:
    """Median seconds of one final-text decode, local and through the server, per length."""
    cfg = WhisperConfig(cpu_threads=args.threads, engine="wyoming", url=server.url)
    local = WhisperWorker(cfg)
    remote = RemoteWorker(WyomingEngine(cfg), None, cfg.model_copy(update={"remote_only": True}))
    await local.load()
    rows = []
    for seconds in (3, 10, 25):
        audio, _ = speech.utterance(seconds)
        times: dict[str, list[float]] = {"local": [], "remote": []}
        for _ in range(args.runs + 1):
            for side, worker in (("local", local), ("remote", remote)):
                t0 = time.perf_counter()
                await worker.transcribe_speech(audio)
                times[side].append(time.perf_counter() - t0)
        rows.append(
            (
                f"{audio.size / speech.SAMPLE_RATE:.0f} s",
                statistics.median(times["local"][1:]),  # the first of each warms up
                statistics.median(times["remote"][1:]),
            )
        )
    await remote.close()
    await local.close()
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
            print("| speech | local decode p50 | through the server p50 | added per utterance |")
            print("|---|---|---|---|")
            for length, local_s, remote_s in await round_trip(server, args):
                print(
                    f"| {length} | {local_s * 1000:.0f} ms | {remote_s * 1000:.0f} ms "
                    f"| {(remote_s - local_s) * 1000:+.0f} ms |",
                    flush=True,
                )
        finally:
            server.stop()
        print(f"load after: {psutil.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
