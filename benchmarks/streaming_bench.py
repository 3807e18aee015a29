"""Streaming vs decode-at-stop: latency, first provisional text, CPU and WER.

Speech comes from espeak-ng (tests/speech.py): 5 s, 15 s and 60 s utterances
after 0.5 s of silence, fed in 100 ms chunks paced by the wall clock
(``--speed 2`` feeds twice as fast as real time, which leaves the streaming
side less time per second of audio: a pessimistic setting). While feeding,
the streaming side runs Silero VAD on every chunk and a StreamingTranscriber
update every ``[whisper] update_interval_ms`` once speech has been detected,
as the daemon does. At the end of the audio ("Stop") it waits for any update
in flight, then decodes the remaining tail up to the VAD's speech end.

The baseline is what a non-streaming tool does: one decode of the whole
recording with Whisper's full 30 s window when the user stops; it does no
work while recording, so it is timed without pacing.

``stream_trial`` and ``batch_trial`` return the same ``Trial``; a daemon-backed
trial (D-Bus ``Start``/``Stop`` with the engine's file source) can be added
beside them and passed to ``main`` unchanged.

    python benchmarks/streaming_bench.py --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import speech

from v2md.config import VADConfig, WhisperConfig
from v2md.streaming import StreamingTranscriber
from v2md.transcriber import SAMPLE_RATE, WhisperWorker
from v2md.vad import SileroVAD

CHUNK_S = 0.1
ONSET_S = 0.5


@dataclass
class Trial:
    stop_to_final_s: float
    text: str
    first_text_s: float | None = None  # after speech onset
    cpu_per_audio_s: float | None = None  # CPU seconds per second of audio while recording


async def stream_trial(
    worker: WhisperWorker, cfg: WhisperConfig, audio: np.ndarray, speed: float
) -> Trial:
    stream = StreamingTranscriber(worker, cfg)
    vad = SileroVAD(VADConfig())
    first_text: list[float] = []
    done = asyncio.Event()

    async def updater() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), cfg.update_interval_ms / 1000 / speed)
                return
            bounds = vad.speech_bounds()
            if bounds is not None and await stream.update(bounds[1]) and not first_text:
                first_text.append(time.perf_counter())

    start = time.perf_counter()
    cpu_start = time.process_time()
    task = asyncio.create_task(updater())
    step = round(CHUNK_S * SAMPLE_RATE)
    for index, offset in enumerate(range(0, audio.size, step)):
        chunk = audio[offset : offset + step]
        stream.append(chunk)
        vad.process(chunk)
        await asyncio.sleep(max(0.0, start + (index + 1) * CHUNK_S / speed - time.perf_counter()))
    stop = time.perf_counter()
    cpu = time.process_time() - cpu_start
    done.set()
    await task  # an update in flight delays the final decode: count it
    bounds = vad.speech_bounds()
    text = await stream.finish(end_sample=bounds[1] if bounds else None)
    onset = start + ONSET_S / speed
    return Trial(
        stop_to_final_s=time.perf_counter() - stop,
        text=text,
        first_text_s=first_text[0] - onset if first_text else None,
        cpu_per_audio_s=cpu / (audio.size / SAMPLE_RATE),
    )


async def batch_trial(worker: WhisperWorker, audio: np.ndarray) -> Trial:
    stop = time.perf_counter()
    words = await worker.transcribe(audio)
    return Trial(stop_to_final_s=time.perf_counter() - stop, text="".join(w.text for w in words))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(lengths: list[float], runs: int, speed: float, window: float | None) -> None:
    cfg = WhisperConfig() if window is None else WhisperConfig(encoder_window_s=window)
    worker = WhisperWorker(cfg)
    await worker.load()
    await worker.transcribe(speech.speak("warm up"))
    print(
        f"model {worker.model_name}, {runs} runs, speed x{speed}, "
        f"update every {cfg.update_interval_ms} ms, encoder window >= {cfg.encoder_window_s} s"
    )
    print(
        "| utterance | stop→final p50 / p95 | decode-at-stop p50 / p95 | ratio (p50) "
        "| first text after onset (p50) | CPU s per audio s | WER streaming | WER batch |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for length in lengths:
        speech_audio, reference = speech.utterance(length)
        audio = np.concatenate([speech.silence(ONSET_S), speech_audio])
        streamed = [await stream_trial(worker, cfg, audio, speed) for _ in range(runs)]
        batched = [await batch_trial(worker, audio) for _ in range(runs)]
        s_lat = [t.stop_to_final_s for t in streamed]
        b_lat = [t.stop_to_final_s for t in batched]
        firsts = [t.first_text_s for t in streamed if t.first_text_s is not None]
        cpu = statistics.median(t.cpu_per_audio_s or 0.0 for t in streamed)
        s_wer = statistics.mean(speech.wer(reference, t.text) for t in streamed)
        b_wer = statistics.mean(speech.wer(reference, t.text) for t in batched)
        first = f"{statistics.median(firsts):.2f} s" if firsts else "none"
        # 0 s when the last update already covered the speech end: no decode at stop
        ratio = statistics.median(b_lat) / max(statistics.median(s_lat), 1e-3)
        print(
            f"| {audio.size / SAMPLE_RATE:.1f} s ({len(speech.normalise(reference))} words) "
            f"| {percentile(s_lat, 0.5):.3f} / {percentile(s_lat, 0.95):.3f} s "
            f"| {percentile(b_lat, 0.5):.3f} / {percentile(b_lat, 0.95):.3f} s "
            f"| {ratio:.1f}x | {first} | {cpu:.2f} | {s_wer:.1f}% | {b_wer:.1f}% |"
        )
    await worker.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[5, 15, 60])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=None, help="[whisper] encoder_window_s")
    parser.add_argument("--speed", type=float, default=1.0, help="feed faster than real time")
    args = parser.parse_args()
    asyncio.run(main(args.lengths, args.runs, args.speed, args.window))
