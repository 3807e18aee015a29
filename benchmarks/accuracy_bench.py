"""Final text of a live session against one batch decode of the same audio, per speaker.

Each speech source goes through a real LiveSession (real model, Silero VAD, streaming
and the full-context final pass) in 100 ms chunks, unpaced, and through one batch
decode (what TranscribeFile does). WER is pooled over the words of each source.

    python benchmarks/accuracy_bench.py [--rates 140 160 190]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import recorded
import speech
from test_streaming_accuracy import dictate

from v2md.asr.worker import WhisperWorker
from v2md.config import WhisperConfig


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=int, nargs="*", default=[140, 160, 190])
    args = parser.parse_args()
    worker = WhisperWorker(WhisperConfig())
    sources = {
        "audiobook (LibriVox reader)": recorded.audiobook(),
        "telephone prompts (Asterisk)": recorded.telephone_prompts(),
        "cards (PocketSphinx speaker)": recorded.cards(),
        **{
            f"espeak-ng {rate} wpm": speech.utterance(45, words_per_minute=rate)
            for rate in args.rates
        },
    }
    print("| speech | words | batch WER | live final WER |")
    print("|---|---|---|---|")
    refs, batch, final = [], [], []
    for name, (audio, reference) in sources.items():
        audio = np.concatenate([audio, speech.silence(1.0)])
        refs.append(reference)
        batch.append(await worker.transcribe_speech(audio))
        final.append(await dictate(worker, audio))
        print(
            f"| {name} | {len(speech.normalise(reference))} "
            f"| {speech.wer(reference, batch[-1]):.2f} % "
            f"| {speech.wer(reference, final[-1]):.2f} % |",
            flush=True,
        )
    pooled = " ".join(refs)
    print(
        f"| pooled | {len(speech.normalise(pooled))} | {speech.wer(pooled, ' '.join(batch)):.2f} % "
        f"| {speech.wer(pooled, ' '.join(final)):.2f} % |"
    )
    await worker.close()


if __name__ == "__main__":
    asyncio.run(main())
