"""Streaming vs batch word error rate, pooled over speaking rates (the accuracy test's set).

One 45 s espeak-ng utterance per speaking rate, decoded twice on one warm
worker: once whole (what a non-streaming tool does at stop) and once streamed
in 100 ms chunks with an update every ``update_interval_ms`` of audio, exactly
as ``tests/test_streaming_accuracy.py`` does (unpaced, so the figure does not
depend on machine speed). A 1-point target needs the pooled figure: one
utterance holds too few words. Settings are ``[whisper]`` keys:

    python benchmarks/accuracy_bench.py [--rates 140 160] [--set encoder_window_s=10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import speech
from test_streaming_accuracy import RATES, stream_in_steps

from v2md.config import WhisperConfig
from v2md.transcriber import WhisperWorker


async def main(rates: list[int], settings: dict[str, str]) -> None:
    cfg = WhisperConfig(**settings)
    worker = WhisperWorker(cfg)
    references, batch, streamed = [], [], []
    print(f"model {worker.model_name}, 45 s per rate, settings {settings or 'default'}")
    print("| words per minute | words | WER batch | WER streaming |")
    print("|---|---|---|---|")
    for rate in rates:
        audio, reference = speech.utterance(45, words_per_minute=rate)
        references.append(reference)
        batch.append("".join(w.text for w in await worker.transcribe(audio)))
        streamed.append(await stream_in_steps(worker, cfg, audio))
        b_wer, s_wer = speech.wer(reference, batch[-1]), speech.wer(reference, streamed[-1])
        print(f"| {rate} | {len(speech.normalise(reference))} | {b_wer:.1f}% | {s_wer:.1f}% |")
    await worker.close()
    words = sum(len(speech.normalise(r)) for r in references)
    pooled_batch = speech.wer(" ".join(references), " ".join(batch))
    pooled_stream = speech.wer(" ".join(references), " ".join(streamed))
    print(
        f"| pooled | {words} | {pooled_batch:.2f}% | {pooled_stream:.2f}% "
        f"({pooled_stream - pooled_batch:+.2f} points) |"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=list(RATES))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    asyncio.run(main(args.rates, dict(item.split("=", 1) for item in args.set)))
