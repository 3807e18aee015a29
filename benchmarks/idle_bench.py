"""What an idle v2md costs: CPU time and wake-ups over a quiet interval, model loaded.

A dictation daemon runs all day and is used for seconds at a time, so at rest
it must cost nothing. This starts the real daemon on a private bus, waits until
the model is loaded and one dictation has run (so every lazy part is warm),
then counts, over ``--seconds``, the CPU time of the whole process and its
context switches (every wake-up of any thread is one). The watchdog is off
here, as outside systemd; under systemd it adds one ping per WatchdogSec/2.

    python benchmarks/idle_bench.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import speech  # noqa: E402
from harness import PrivateBus, assert_eventually, running_daemon  # noqa: E402


def totals(process: psutil.Process) -> tuple[float, int]:
    """CPU seconds of the process, and context switches summed over all its threads."""
    cpu = process.cpu_times()
    switches = 0
    for status in Path(f"/proc/{process.pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                switches += int(line.split()[1])
    return cpu.user + cpu.system, switches


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    bus = PrivateBus()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            wav = speech.write_wav(Path(tmp) / "s.wav", speech.speak(speech.SENTENCES[0]))
            settings = {"V2M_AUDIO__FILE": str(wav), "V2M_AUDIO__REALTIME": "false"}
            async with running_daemon(bus, Path(tmp), **settings) as (daemon, iface, _props):
                finals: list[str] = []
                iface.on_transcription_updated(lambda t, final: final and finals.append(t))
                await iface.call_start()
                await assert_eventually(lambda: finals, timeout=60)
                await asyncio.sleep(1)  # let delivery and notification attempts settle
                process = psutil.Process(daemon.proc.pid)
                cpu0, switches0 = totals(process)
                started = time.monotonic()
                await asyncio.sleep(args.seconds)
                elapsed = time.monotonic() - started
                cpu1, switches1 = totals(process)
                threads = process.num_threads()
    finally:
        bus.close()
    print(f"idle v2md over {elapsed:.1f} s, model loaded, {threads} threads:")
    print(f"| CPU time | {1000 * (cpu1 - cpu0):.1f} ms |")
    print(
        f"| context switches (all threads) | {switches1 - switches0} "
        f"({(switches1 - switches0) / elapsed:.2f}/s) |"
    )


if __name__ == "__main__":
    asyncio.run(main())
