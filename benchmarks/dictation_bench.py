"""Dictation latency, CPU and accuracy through the real daemon, streaming vs decode-at-stop.

For each utterance (espeak speech of a given length, or recorded human speech:
``audiobook``, ``prompts``), followed by silence, is the daemon's audio source,
played at real time through the engine's file source, exactly as a microphone
would deliver it. A client calls Start, waits until the VAD has seen the speech
end, pauses ``--stop-after`` seconds as a person reaching for the key does, then
calls Stop and times it: that is stop-to-final. The baseline is what a
non-streaming dictation tool does at stop: decode the whole recording, here
TranscribeFile of the same speech on the same warm worker. ``--busy`` runs a
TranscribeFile of a 12-minute file throughout each dictation.

    python benchmarks/dictation_bench.py [--lengths 5 15 60] [--speech audiobook prompts]
        [--runs 3] [--stop-after 1.0] [--busy]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
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

from v2md import INTERFACE  # noqa: E402
from v2md.client import dictation_proxy  # noqa: E402


@dataclass
class Run:
    stop_s: float
    baseline_s: float
    first_text_s: float
    cpu_per_audio_s: float
    wer: float
    baseline_wer: float


async def one_run(
    address: str,
    pid: int,
    wav: Path,
    speech_only: Path,
    onset_s: float,
    speech_s: float,
    reference: str,
    stop_after: float,
    busy: Path | None,
) -> Run:
    bus = await MessageBus(bus_address=address).connect()
    try:
        iface, props = await dictation_proxy(bus)
        first_text: list[float] = []
        speech_ended = asyncio.Event()
        started = 0.0

        def on_text(_text: str, final: bool) -> None:
            if not final and not first_text:
                first_text.append(time.monotonic())

        def on_props(interface: str, changed: dict, _invalid: list) -> None:
            active = changed.get("SpeechActive") if interface == INTERFACE else None
            if active is not None and not active.value and time.monotonic() > started + speech_s:
                speech_ended.set()

        iface.on_transcription_updated(on_text)
        props.on_properties_changed(on_props)
        process = psutil.Process(pid)
        load = asyncio.create_task(iface.call_transcribe_file(str(busy))) if busy else None
        cpu_before = sum(process.cpu_times()[:2])
        started = time.monotonic()
        await iface.call_start()
        await asyncio.wait_for(speech_ended.wait(), timeout=speech_s + 30)
        await asyncio.sleep(stop_after)
        t0 = time.perf_counter()
        text = await iface.call_stop()
        stop_s = time.perf_counter() - t0
        recorded_s = time.monotonic() - started
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        baseline_s, baseline = float("nan"), ""
        if load is not None:
            load.cancel()  # the file goes on in the daemon, which the run then stops
        else:
            t0 = time.perf_counter()
            baseline = await iface.call_transcribe_file(str(speech_only))
            baseline_s = time.perf_counter() - t0
    finally:
        bus.disconnect()
    return Run(
        stop_s=stop_s,
        baseline_s=baseline_s,
        first_text_s=(first_text[0] - started - onset_s) if first_text else float("nan"),
        cpu_per_audio_s=cpu / recorded_s,
        wer=speech.wer(reference, text),
        baseline_wer=speech.wer(reference, baseline) if baseline else float("nan"),
    )


def pct(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def source(name: str) -> tuple[np.ndarray, str]:
    """Speech for one row: espeak of that many seconds, or a recorded speaker."""
    if name == "audiobook":
        return recorded.audiobook()
    if name == "prompts":
        return recorded.telephone_prompts()
    return speech.utterance(float(name))


async def bench_speech(name: str, args: argparse.Namespace, tmp: Path) -> list[Run]:
    audio, reference = source(name)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    onset, end = loud[0] / speech.SAMPLE_RATE, loud[-1] / speech.SAMPLE_RATE
    speech_only = speech.write_wav(tmp / f"speech-{name}.wav", audio)
    wav = speech.write_wav(tmp / f"source-{name}.wav", np.concatenate([audio, speech.silence(30)]))
    busy = speech.write_wav(tmp / "busy.wav", np.tile(audio, 720 * 16000 // audio.size + 1))
    results = []
    for _ in range(args.runs):
        bus = PrivateBus()
        daemon = Daemon(
            bus, tmp / f"home-{name}", V2M_AUDIO__FILE=str(wav), V2M_LOG_LEVEL="warning"
        ).start()
        try:
            await daemon.wait_ready()
            results.append(
                await one_run(
                    bus.address,
                    daemon.proc.pid,
                    wav,
                    speech_only,
                    onset,
                    end,
                    reference,
                    args.stop_after,
                    busy if args.busy else None,
                )
            )
        finally:
            daemon.stop()
            bus.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", nargs="+", default=["5", "15", "60"])
    parser.add_argument("--speech", nargs="*", default=[], choices=["audiobook", "prompts"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stop-after", type=float, default=1.0)
    parser.add_argument("--busy", action="store_true")
    args = parser.parse_args()
    print(
        f"{args.runs} runs each, real-time audio through v2md, Stop {args.stop_after} s after "
        f"the VAD's speech end{', a 12-minute TranscribeFile running' if args.busy else ''}, "
        f"load {psutil.getloadavg()}"
    )
    print(
        "| utterance | stop→final p50 / p95 | decode-at-stop p50 / p95 | speed-up (p50) "
        "| first text after onset p50 | CPU s per audio s | WER streaming / batch |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in [*args.lengths, *args.speech]:
            runs = await bench_speech(name, args, Path(tmp))
            stop = [r.stop_s * 1000 for r in runs]
            base = [r.baseline_s * 1000 for r in runs]
            print(
                f"| {name if name in ('audiobook', 'prompts') else name + ' s'} "
                f"| {pct(stop, 50):.0f} / {pct(stop, 95):.0f} ms "
                f"| {pct(base, 50):.0f} / {pct(base, 95):.0f} ms "
                f"| {pct(base, 50) / max(pct(stop, 50), 1e-3):.1f}x "
                f"| {statistics.median(r.first_text_s for r in runs):.2f} s "
                f"| {statistics.mean(r.cpu_per_audio_s for r in runs):.2f} "
                f"| {statistics.mean(r.wer for r in runs):.1f} / "
                f"{statistics.mean(r.baseline_wer for r in runs):.1f} % |",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
