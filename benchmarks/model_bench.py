"""The models v2m can load offline, side by side: load time, memory, speed and accuracy.

Each model runs in a process of its own, so that its resident memory is its own: the
load (from a warm page cache, the second of two loads), RSS after loading and after a
decode, then one batch decode (what TranscribeFile does) of each recorded speaker,
timed for the real-time factor (decode seconds per audio second) and scored for WER.

    python benchmarks/model_bench.py [--models tiny.en base]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def measure(name: str) -> dict[str, float]:
    """Run in the child: one model's figures."""
    import psutil
    import recorded
    import speech

    from v2md.asr import models
    from v2md.config import WhisperConfig

    spec = models.resolve(WhisperConfig(model=name))
    models.load(spec)  # the first load warms the page cache (and joins a packaged model)
    started = time.perf_counter()
    model = models.load(spec)
    figures = {"load_s": time.perf_counter() - started}
    figures["rss_loaded_mb"] = psutil.Process().memory_info().rss / 2**20
    options = {"beam_size": 1, "vad_filter": True, "condition_on_previous_text": False}
    audio_s = decode_s = 0.0
    for label, (audio, reference) in {
        "audiobook": recorded.audiobook(),
        "prompts": recorded.telephone_prompts(),
        "cards": recorded.cards(),
    }.items():
        started = time.perf_counter()
        text = "".join(piece for piece, _end in model.windows(audio, options))
        decode_s += time.perf_counter() - started
        audio_s += audio.size / speech.SAMPLE_RATE
        figures[f"wer_{label}"] = speech.wer(reference, text)
    figures["rtf"] = decode_s / audio_s
    figures["rss_after_decode_mb"] = psutil.Process().memory_info().rss / 2**20
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["tiny.en", "base"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    print("| model | load | RSS loaded / after decode | RTF | WER audiobook / prompts / cards |")
    print("|---|---|---|---|---|")
    for name in args.models:
        out = subprocess.run(
            [sys.executable, __file__, "--child", name], capture_output=True, text=True
        )
        if out.returncode:
            print(f"| {name} | failed: {out.stderr.strip().splitlines()[-1]} | | | |")
            continue
        f = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {name} | {f['load_s']:.2f} s | {f['rss_loaded_mb']:.0f} / "
            f"{f['rss_after_decode_mb']:.0f} MiB | {f['rtf']:.3f} | {f['wer_audiobook']:.1f} / "
            f"{f['wer_prompts']:.1f} / {f['wer_cards']:.1f} % |"
        )


if __name__ == "__main__":
    main()
