"""Ready when you let go: dictation latency, CPU and accuracy through the real daemon.

Each dictation is speech followed by silence, played at real time as the daemon's
audio source (the engine's file source), exactly as a microphone would deliver it.
The speech of a row is ``audiobook`` (a LibriVox reader), ``prompts`` (Asterisk's
telephone prompts; ``prompts-es`` in Spanish, for a multilingual model), ``espeak``
(espeak-ng sentences) or ``commands`` (espeak-ng dictating issue 19's sentences with spoken
commands, a short pause before each: speech that pauses every second or so), its units
(sentences, prompts) cycled, with their pauses, until the row's length is reached. A client
calls Start, waits until ``--stops`` seconds after the last word (the time of the
last word is known from the audio, not from the VAD), calls Stop and times it:
that is stop-to-final.

Beside each stop-to-final is its FLOOR: the time to decode the last utterance alone
(the row's last unit, as the final pass would cut it), with the final text's model
and options, on a worker in this process once the daemon is stopped: what a Stop
would cost if everything before were settled and nothing else ran. TranscribeFile of
the same speech on the same daemon gives the file WER the final WER is held against.
While dictating, a property is read every 200 ms: the longest reply says how long the
daemon's event loop kept a caller waiting while it decoded.

    python benchmarks/dictation_bench.py [--configs tiny tiny+base] [--speech audiobook
        prompts espeak] [--lengths 15 60 130] [--stops 1.0 0.3] [--long-stops 1.0]
        [--delays 0.1 0.6 1.5] [--cpu-lengths 240] [--runs 1] [--file-variants 4] [--busy]
        [--png PATH]

A config is a daemon's ``[whisper]`` settings (see CONFIGS). Rows longer than 60 s
run only at ``--long-stops``; ``--compare-lengths`` limits the configs after the first to
rows of those lengths. ``--delays`` runs the first speech's shortest row at
each delay (the first config's) for the curve of stop-to-final against the delay;
``--cpu-lengths`` adds rows of the first speech at those lengths (Stop 1 s after) for
the curve of CPU per audio second against length. ``--png`` draws both curves.
``--file-variants N`` decodes each row's file N more times, its audio changed by one
16-bit step here and there: how far the file's own WER moves for a change no one hears.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import dictated  # noqa: E402
import recorded  # noqa: E402
import speech  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402
from harness import Daemon, PrivateBus  # noqa: E402

from v2md import INTERFACE  # noqa: E402
from v2md.client import dictation_proxy  # noqa: E402

SR = speech.SAMPLE_RATE
LOUD = 0.01  # what counts as sound when finding where speech begins and ends
FLOOR_PAD_S = 0.1  # the final pass decodes 100 ms past the speech end (session.PAUSE_PAD_MS)

# [whisper] settings of each config, as the daemon's environment.
CONFIGS: dict[str, dict[str, str]] = {
    "tiny": {},
    "tiny-serial": {"parallel_decodes": "false"},
    "tiny-1thread": {"cpu_threads": "1"},
    "tiny-2threads": {"cpu_threads": "2"},
    "tiny-live500": {"update_interval_ms": "500"},
    "tiny-live750": {"update_interval_ms": "750"},
    "tiny-beam5": {"beam_size": "5"},
    "tiny+base": {"final_model": "base"},
    "tiny+base-beam5": {"final_model": "base", "beam_size": "5"},
    "base": {"model": "base"},
}


@dataclass
class Unit:
    audio: np.ndarray
    text: str


@dataclass
class Row:
    speech: str
    length: float  # asked for
    audio: np.ndarray
    text: str
    last: np.ndarray  # the last unit's speech alone, padded as the final pass cuts it
    end_s: float  # where the last word ends

    @property
    def seconds(self) -> float:
        return self.audio.size / SR


@dataclass
class Result:
    config: str
    speech: str
    length_s: float
    stop_after: float
    stop_ms: float
    cpu_per_audio_s: float
    wer: float
    words: int  # in the reference text
    file_wer: float = float("nan")
    # The file's WER with the audio changed by one 16-bit step here and there (--file-variants)
    file_variants: list[float] = field(default_factory=list)
    floor_ms: float = float("nan")
    bus_max_ms: float = float("nan")  # longest property read while dictating
    rss_mib: float = float("nan")  # the daemon's resident memory after the dictation
    load: tuple[float, ...] = field(default_factory=tuple)


# ---- speech ---------------------------------------------------------------------------------


def units(name: str) -> list[Unit]:
    """A speech's units in order: the audiobook's sentences, the prompts, espeak sentences,
    the dictated commands."""
    if name == "audiobook":
        root = recorded.fetch() / "librivox"
        (listing,) = root.glob("*transcription")
        found = []
        for line in listing.read_text().splitlines():
            if match := recorded._TRANSCRIPT_LINE.search(line):
                text, wav = match.groups()
                found.append(Unit(recorded.load(root / f"{wav.strip()}.wav"), text.strip()))
        return found
    if name in ("prompts", "prompts-es"):
        pause = speech.silence(recorded.PROMPT_PAUSE_S)
        prompts = recorded.asterisk_prompts("es" if name == "prompts-es" else "en")
        return [Unit(np.concatenate([audio, pause]), text) for audio, text in prompts]
    pause = speech.silence(0.3)
    if name == "commands":
        return [
            Unit(np.concatenate([speech.speak(said), pause]), wanted)
            for said, wanted in dictated.COMMANDS
        ]
    return [
        Unit(np.concatenate([speech.speak(s), pause]), s) for s in speech.SENTENCES
    ]  # as speech.utterance builds it


def loud_bounds(audio: np.ndarray) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(audio) > LOUD)
    return int(loud[0]), int(loud[-1])


def row(name: str, length: float, cache: dict[str, list[Unit]]) -> Row:
    """The speech's units cycled until ``length`` seconds (at least one whole unit)."""
    pieces = cache.setdefault(name, units(name))
    chosen: list[Unit] = []
    total = 0
    while not chosen or total + pieces[len(chosen) % len(pieces)].audio.size / 2 < length * SR:
        unit = pieces[len(chosen) % len(pieces)]
        chosen.append(unit)
        total += unit.audio.size
    audio = np.concatenate([u.audio for u in chosen])
    start, end = loud_bounds(chosen[-1].audio)
    pad = round(FLOOR_PAD_S * SR)
    last = chosen[-1].audio[max(0, start - pad) : end + pad]
    _, speech_end = loud_bounds(audio)
    return Row(name, length, audio, " ".join(u.text for u in chosen), last, speech_end / SR)


# ---- one dictation ----------------------------------------------------------------------------


async def dictate(address: str, pid: int, r: Row, stop_after: float, busy: Path | None) -> tuple:
    """Start, Stop ``stop_after`` s after the last word; (stop s, CPU per audio s, text)."""
    bus = await MessageBus(bus_address=address).connect()
    try:
        iface, props = await dictation_proxy(bus)
        process = psutil.Process(pid)
        load = asyncio.create_task(iface.call_transcribe_file(str(busy))) if busy else None
        cpu_before = sum(process.cpu_times()[:2])
        started = time.monotonic()  # the audio starts no earlier: a Stop is never late
        await iface.call_start()
        pings: list[float] = []
        pinger = asyncio.create_task(ping(props, pings))
        await asyncio.sleep(max(0.0, started + r.end_s + stop_after - time.monotonic()))
        pinger.cancel()
        t0 = time.perf_counter()
        text = await iface.call_stop()
        stop_s = time.perf_counter() - t0
        recorded_s = time.monotonic() - started
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        if load is not None:
            load.cancel()  # the file goes on in the daemon, which the run then stops
    finally:
        bus.disconnect()
    rss = process.memory_info().rss / 2**20
    return stop_s, cpu / recorded_s, text, max(pings, default=float("nan")), rss


async def ping(props, pings: list[float]) -> None:
    """Read a property every 200 ms while dictating: how long the daemon's event loop
    keeps a caller waiting while it decodes."""
    while True:
        t0 = time.perf_counter()
        await props.call_get(INTERFACE, "State")
        pings.append(1000 * (time.perf_counter() - t0))
        await asyncio.sleep(0.2)


async def transcribe_file(address: str, wav: Path) -> str:
    bus = await MessageBus(bus_address=address).connect()
    try:
        iface, _props = await dictation_proxy(bus)
        return str(await iface.call_transcribe_file(str(wav)))
    finally:
        bus.disconnect()


def imperceptibly_changed(audio: np.ndarray, seed: int) -> np.ndarray:
    """``audio`` with triangular noise of one 16-bit step (-96 dB) added: the same speech to
    any ear or microphone, as quantising it again would change it."""
    rng = np.random.default_rng(seed)
    step = 1 / 32768
    return audio + step * (rng.random(audio.size) - rng.random(audio.size)).astype(np.float32)


async def floor_ms(config: str, audio: np.ndarray, repeats: int = 3) -> float:
    """Decode ``audio`` alone with the config's final model and options (p50 of repeats),
    in the language the first decode heard, as a dictation keeps it."""
    from v2md.asr.worker import WhisperWorker
    from v2md.config import WhisperConfig

    worker = WhisperWorker(WhisperConfig(**CONFIGS[config]))
    worker.dictating()
    try:
        await worker.transcribe_speech(audio)  # load, warm up and hear the language
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            await worker.transcribe_speech(audio)
            times.append(1000 * (time.perf_counter() - t0))
        return statistics.median(times)
    finally:
        await worker.close()


async def run_config(
    config: str, plan: list[tuple[Row, float]], args: argparse.Namespace, tmp: Path
) -> list[Result]:
    """One daemon for the config; each (row, stop delay) dictated ``--runs`` times."""
    source = tmp / f"source-{config}.wav"
    speech.write_wav(source, speech.silence(1))
    settings = {f"V2M_WHISPER__{k.upper()}": v for k, v in CONFIGS[config].items()}
    busy = None
    if args.busy:
        busy_audio = np.tile(plan[0][0].audio, 720 * SR // plan[0][0].audio.size + 1)
        busy = speech.write_wav(tmp / "busy.wav", busy_audio)
    bus = PrivateBus()
    daemon = Daemon(
        bus,
        (args.keep or tmp) / f"home-{config}",
        V2M_AUDIO__FILE=str(source),
        V2M_LOG_LEVEL="debug" if args.keep else "warning",
        **settings,
    ).start()
    results: list[Result] = []
    file_wers: dict[int, list[float]] = {}  # the file's as is, then its --file-variants
    try:
        await daemon.wait_ready()
        warm = speech.write_wav(tmp / "warm.wav", plan[0][0].last)
        await transcribe_file(bus.address, warm)  # the models load before the first Start
        assert daemon.proc is not None
        for r, stop_after in plan:
            tail = speech.silence(max(stop_after + 5, 10))
            speech.write_wav(tmp / "next.wav", np.concatenate([r.audio, tail]))
            os.replace(tmp / "next.wav", source)  # each Start opens the file anew
            for _ in range(args.runs):
                stop_s, cpu, text, bus_ms, rss = await dictate(
                    bus.address, daemon.proc.pid, r, stop_after, busy
                )
                results.append(
                    Result(
                        config,
                        r.speech,
                        round(r.seconds, 1),
                        stop_after,
                        1000 * stop_s,
                        cpu,
                        speech.wer(r.text, text),
                        len(speech.normalise(r.text)),
                        bus_max_ms=bus_ms,
                        rss_mib=rss,
                        load=psutil.getloadavg(),
                    )
                )
                print(
                    f"  {config} {r.speech} {r.seconds:.0f} s stop +{stop_after} s: "
                    f"{1000 * stop_s:.0f} ms, CPU {cpu:.2f}, WER {results[-1].wer:.1f} %",
                    file=sys.stderr,
                    flush=True,
                )
            if id(r) not in file_wers and not args.busy:
                file_wers[id(r)] = []
                for seed in range(args.file_variants + 1):
                    audio = imperceptibly_changed(r.audio, seed) if seed else r.audio
                    wav = speech.write_wav(tmp / "speech.wav", audio)
                    text = await transcribe_file(bus.address, wav)
                    file_wers[id(r)].append(speech.wer(r.text, text))
    finally:
        daemon.stop()
        bus.close()
    floors: dict[int, float] = {}
    for r, _stop in plan:
        if id(r) not in floors:
            floors[id(r)] = await floor_ms(config, r.last)
    for result, (r, _stop) in zip(
        results, [p for p in plan for _ in range(args.runs)], strict=True
    ):
        result.file_wer, *result.file_variants = file_wers.get(id(r), [float("nan")])
        result.floor_ms = floors[id(r)]
    return results


# ---- report -----------------------------------------------------------------------------------


def table(results: list[Result], stops: list[float]) -> None:
    print(
        "| config | speech | length | "
        + " | ".join(f"Stop {s:g} s after p50 (x floor)" for s in stops)
        + " | floor | CPU s per audio s | WER final / file | bus reply max | RSS |"
    )
    print("|---" * (8 + len(stops)) + "|")
    keys = dict.fromkeys((r.config, r.speech, r.length_s) for r in results)
    for config, name, length in keys:
        mine = [r for r in results if (r.config, r.speech, r.length_s) == (config, name, length)]
        cells = []
        for s in stops:
            at = [r.stop_ms for r in mine if r.stop_after == s]
            cells.append(
                f"{statistics.median(at):.0f} ms ({statistics.median(at) / mine[0].floor_ms:.1f}x)"
                if at
                else ""
            )
        print(
            f"| {config} | {name} | {length:.0f} s | "
            + " | ".join(cells)
            + f" | {mine[0].floor_ms:.0f} ms"
            f" | {statistics.mean(r.cpu_per_audio_s for r in mine):.2f}"
            f" | {statistics.mean(r.wer for r in mine):.1f} / {mine[0].file_wer:.1f} %"
            f" | {max(r.bus_max_ms for r in mine):.0f} ms"
            f" | {max(r.rss_mib for r in mine):.0f} MiB |",
            flush=True,
        )


def speakers(results: list[Result]) -> None:
    """Final and file WER per speaker (the issue's "within 0.5 point of TranscribeFile per
    speaker"), pooled over the speaker's dictations, each weighing as many words as it
    has; the file's WER with the same weights."""
    variants = min(len(r.file_variants) for r in results)
    print(
        "| config | speech | dictations | words | WER final / file | final - file |"
        + (f" file, {variants} changed by a 16-bit step |" if variants else "")
    )
    print("|---" * (7 if variants else 6) + "|")
    for config, name in dict.fromkeys((r.config, r.speech) for r in results):
        mine = [r for r in results if (r.config, r.speech) == (config, name)]
        words = sum(r.words for r in mine)
        final = sum(r.wer * r.words for r in mine) / words
        file = sum(r.file_wer * r.words for r in mine) / words
        spread = [sum(r.file_variants[k] * r.words for r in mine) / words for k in range(variants)]
        print(
            f"| {config} | {name} | {len(mine)} | {words} | {final:.1f} / {file:.1f} %"
            f" | {final - file:+.1f} |"
            + (f" {min(spread):.1f} to {max(spread):.1f} % |" if variants else ""),
            flush=True,
        )


def curves(results: list[Result]) -> None:
    """The curves' points as tables: stop→final against the delay (the first config's
    first speech, shortest row), CPU against length (every row)."""
    first = results[0]
    mine = [
        r
        for r in results
        if (r.config, r.speech) == (first.config, first.speech)
        and r.length_s == min(x.length_s for x in results if x.speech == first.speech)
    ]
    print(
        f"\n{first.config}, {first.speech} {mine[0].length_s:.0f} s,"
        f" floor {mine[0].floor_ms:.0f} ms"
    )
    print("| delay last word → Stop | stop→final | x floor |\n|---|---|---|")
    for delay in sorted({r.stop_after for r in mine}):
        at = statistics.median(r.stop_ms for r in mine if r.stop_after == delay)
        print(f"| {delay:g} s | {at:.0f} ms | {at / mine[0].floor_ms:.1f}x |")
    print("\n| config | speech | length | CPU s per audio s |\n|---|---|---|---|")
    keys = sorted({(r.config, r.speech, r.length_s) for r in results})
    for config, name, length in keys:
        cpu = [
            r.cpu_per_audio_s
            for r in results
            if (r.config, r.speech, r.length_s) == (config, name, length)
        ]
        print(f"| {config} | {name} | {length:.0f} s | {statistics.mean(cpu):.2f} |")


def plot(results: list[Result], delays: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for config in dict.fromkeys(r.config for r in results):
        mine = [r for r in results if r.config == config]
        shortest = min(r.length_s for r in mine)
        curve = sorted(
            (r.stop_after, r.stop_ms, r.floor_ms)
            for r in mine
            if r.length_s == shortest and r.speech == mine[0].speech
        )
        if len({c[0] for c in curve}) > 2:
            xs = sorted({c[0] for c in curve})
            ys = [statistics.median(c[1] for c in curve if c[0] == x) for x in xs]
            left.plot(xs, ys, "o-", label=f"{config}: stop→final")
            left.axhline(
                curve[0][2],
                linestyle=":",
                color=left.lines[-1].get_color(),
                label=f"{config}: floor (last utterance alone)",
            )
        by_length: dict[tuple[str, float], list[float]] = {}
        for r in mine:
            by_length.setdefault((r.speech, r.length_s), []).append(r.cpu_per_audio_s)
        for name in dict.fromkeys(r.speech for r in mine):
            pts = sorted((k[1], statistics.mean(v)) for k, v in by_length.items() if k[0] == name)
            right.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{config} {name}")
    left.plot([0.3, 1.0], [300, 50], "k_", markersize=14, mew=2, label="tiny.en target")
    right.axhline(0.35, color="k", linestyle="--", linewidth=1, label="tiny.en target")
    left.set_xlabel("delay between the last word and Stop (s)")
    left.set_ylabel("stop→final (ms)")
    left.set_yscale("log")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.set_xlabel("dictation length (s)")
    right.set_ylabel("CPU s per audio s")
    right.set_ylim(bottom=0)
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    fig.suptitle(f"v2m, 2 cores, real-time dictation (load {psutil.getloadavg()[0]:.1f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["tiny"], choices=sorted(CONFIGS))
    parser.add_argument(
        "--speech",
        nargs="+",
        default=["audiobook", "prompts", "espeak"],
        choices=["audiobook", "prompts", "prompts-es", "espeak", "commands"],
    )
    parser.add_argument("--lengths", nargs="+", type=float, default=[15, 60, 130])
    parser.add_argument("--stops", "--stop-after", nargs="+", type=float, default=[1.0, 0.3])
    parser.add_argument("--long-stops", nargs="*", type=float, default=[1.0])
    parser.add_argument("--delays", nargs="*", type=float, default=[])
    parser.add_argument("--cpu-lengths", nargs="*", type=float, default=[])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--file-variants",
        type=int,
        default=0,
        help="TranscribeFile this many more times, the audio changed by a 16-bit step",
    )
    parser.add_argument(
        "--compare-lengths",
        nargs="*",
        type=float,
        default=[],
        help="configs after the first run only the rows of these lengths",
    )
    parser.add_argument("--busy", action="store_true", help="a 12-minute TranscribeFile runs")
    parser.add_argument("--png", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the daemons' debug logs in this folder")
    args = parser.parse_args()
    started = time.time()
    print(
        f"{args.runs} run(s) each, real-time audio through v2md, Stop N s after the last word"
        f"{', a 12-minute TranscribeFile running' if args.busy else ''}; "
        f"load {psutil.getloadavg()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        flush=True,
    )
    cache: dict[str, list[Unit]] = {}
    rows = {(n, length): row(n, length, cache) for n in args.speech for length in args.lengths}
    everything: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, config in enumerate(args.configs):
            plan = []
            for (_n, length), r in rows.items():
                if index and args.compare_lengths and length not in args.compare_lengths:
                    continue
                for stop in args.stops if length <= 60 else args.long_stops:
                    plan.append((r, stop))
            if index == 0:
                first = rows[(args.speech[0], min(args.lengths))]
                plan += [(first, d) for d in args.delays if d not in args.stops]
                for length in args.cpu_lengths:
                    plan.append((row(args.speech[0], length, cache), 1.0))
            everything += await run_config(config, plan, args, Path(tmp))
    table(everything, sorted({*args.stops, *args.long_stops}, reverse=True))
    print()
    speakers(everything)
    curves(everything)
    print(f"load {psutil.getloadavg()} after {time.time() - started:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in everything], indent=1))
    if args.png:
        plot(everything, args.delays, args.png)


if __name__ == "__main__":
    asyncio.run(main())
