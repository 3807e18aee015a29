"""Live text where the cursor is: the IBus path beside the portal's keysym typing.

A real ibus-daemon and a real text window (GTK 3 by default) under Xvfb, as in
tests/test_ibus.py. Each report of the window carries the time it was made
(CLOCK_MONOTONIC, the clock every process shares), so what the user sees is timed in
the window itself.

First, dictations through the live daemon: recorded speech at real time, Stop a second
after it ends. Per provisional update, ``TranscriptionUpdated`` (seen by a bus client) to
that text shown as the field's preedit; per dictation, the final text published (the
first of ``LastText``'s change and the final ``TranscriptionUpdated``) to the field
holding it, committed.

Then the same final texts, and a text of 500 characters, handed to v2m's delivery
(``desktop.delivery.Delivery``) in this process, by both paths in turn: IBus (the helper
borrows ibus-daemon's extension slot, commits, gives it back; timed until the window
holds the text) and the RemoteDesktop portal's keysyms (two calls per character into
``tests/fake_portal.py`` on the same bus; timed until its last key has arrived). The
fake portal stands for xdg-desktop-portal and the compositor: its side is the bus round
trips v2m waits for, not the compositor's work nor the app's, so it is a lower bound.

    python benchmarks/ibus_bench.py [--runs 16] [--repeats 8] [--speech 4] [--toolkit gtk3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import recorded  # noqa: E402
import speech  # noqa: E402
from dbus_fast import Message  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402
from fake_portal import FakePortal  # noqa: E402
from harness import STOP_AFTER_PAUSE_S, PrivateBus, assert_eventually, running_daemon  # noqa: E402
from ibus_desktop import TOOLKITS, IBusDaemon, TextWindow, Xvfb  # noqa: E402

from v2md import INTERFACE  # noqa: E402
from v2md.config import OutputConfig  # noqa: E402
from v2md.desktop.delivery import Delivery  # noqa: E402
from v2md.desktop.ibus_path import IBusHelper  # noqa: E402
from v2md.desktop.portal import Portal, RemoteKeyboard, TokenFile  # noqa: E402

LONG = ("dictated at length, " * 25)[:499] + "."  # 500 characters, all on a US layout


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: list[float]) -> str:
    if not values:
        return "none"
    return f"{pct(values, 0.5) * 1000:.1f} / {pct(values, 0.95) * 1000:.1f} ms"


class StampedPortal(FakePortal):
    """The fake portal, noting when each key arrives."""

    last_key = 0.0

    def _NotifyKeyboardKeysym(self, msg: Message) -> Message:
        reply = super()._NotifyKeyboardKeysym(msg)
        self.last_key = time.monotonic()
        return reply


class Window:
    """What the window showed, and when."""

    def __init__(self, window: TextWindow) -> None:
        self.w = window

    def mark(self) -> int:
        return len(self.w.reports)

    async def clear(self) -> None:
        """Empty the field (a long line would grow the window past what X allows)."""
        if self.w.text() == "":
            return
        start = self.mark()
        await self.w.command("clear first")
        await assert_eventually(lambda: self.w.text() == "" and self.mark() > start, 10)

    def first(self, kind: str, text: str, start: int) -> tuple[int, float] | None:
        """The first report of ``kind`` for the first field with ``text`` from ``start``."""
        for i in range(start, len(self.w.reports)):
            report = self.w.reports[i]
            if report[0] == kind and report[1] == "first" and report[2] == text:
                return i, self.w.stamps[i]
        return None

    async def holds(self, text: str, start: int, timeout: float = 30) -> float:
        """When the field came to hold ``text`` (a report from ``start`` on)."""
        await assert_eventually(
            lambda: self.first("changed", text, start), timeout, f"never held {text[-40:]!r}"
        )
        found = self.first("changed", text, start)
        assert found is not None
        return found[1]


async def live(
    bus: PrivateBus, home: Path, env: dict[str, str], window: Window, runs: int, speech_s: float
) -> tuple[list[float], list[float], list[str], int]:
    """Dictations through the daemon: (preedit latencies, final→committed, finals, updates)."""
    preedit: list[float] = []
    committed: list[float] = []
    finals: list[str] = []
    updates = 0
    async with running_daemon(bus, home, **env) as (_daemon, iface, props):
        seen: list[tuple[float, str, bool]] = []  # (when, text, final)
        last_text: list[tuple[float, str]] = []
        iface.on_transcription_updated(lambda t, f: seen.append((time.monotonic(), t, f)))

        def changed(interface: str, values: dict, _invalidated: list) -> None:
            if interface == INTERFACE and "LastText" in values:
                last_text.append((time.monotonic(), values["LastText"].value))

        props.on_properties_changed(changed)

        async def path() -> str:
            return (await props.call_get(INTERFACE, "DeliveryPath")).value

        await assert_eventually(lambda: path(), timeout=30)
        assert await path() == "ibus", "the daemon does not deliver through IBus"
        for _ in range(runs):
            await window.clear()
            start, first_signal, first_last = window.mark(), len(seen), len(last_text)
            await iface.call_start()
            await asyncio.sleep(speech_s + STOP_AFTER_PAUSE_S)
            text = await iface.call_stop()
            if not text:
                continue
            await assert_eventually(
                lambda since=first_signal: any(f for _, _, f in seen[since:]), 10
            )
            published = min(
                [when for when, _, f in seen[first_signal:] if f]
                + [when for when, t in last_text[first_last:] if t == text]
            )
            committed.append(await window.holds(text, start) - published)
            finals.append(text)
            # Each provisional text to its preedit, in order; a repeat shows nothing new.
            at, previous = start, None
            for when, shown, final in seen[first_signal:]:
                if final or not shown or shown == previous:
                    continue
                previous = shown
                updates += 1
                found = window.first("preedit", shown, at)
                if found is not None:
                    at = found[0] + 1
                    preedit.append(found[1] - when)
    return preedit, committed, finals, updates


async def deliveries(
    bus: PrivateBus, env: dict[str, str], window: Window, texts: list[str], tmp: Path
) -> dict[str, list[float]]:
    """Each text by IBus, then by the portal's keysyms: seconds from the call to arrival."""
    times: dict[str, list[float]] = {"ibus": [], "portal": []}
    helper = IBusHelper(env)
    ibus = Delivery(OutputConfig(clipboard=False, type=True, typing_tool="ibus"), env, ibus=helper)
    fake = await StampedPortal(bus.address).start()
    client = await MessageBus(bus_address=bus.address).connect()
    keyboard = RemoteKeyboard(Portal(client), TokenFile(tmp / "token"))
    portal = Delivery(
        OutputConfig(clipboard=False, type=True, typing_tool="portal"),
        {"WAYLAND_DISPLAY": "wayland-0", "XDG_CURRENT_DESKTOP": "GNOME", "PATH": os.defpath},
        keyboard=keyboard,
    )
    try:
        await helper.available()  # started, as the daemon has it
        await portal.deliver(" ")  # the session made (and the grant's dialog) beforehand
        for text in texts:
            await window.clear()
            start = window.mark()
            began = time.monotonic()
            await ibus.deliver(text)
            times["ibus"].append(await window.holds(text, start) - began)
            typed = fake.typed
            began = time.monotonic()
            await portal.deliver(text)
            assert fake.typed == typed + text, "the portal's keys do not spell the text"
            times["portal"].append(fake.last_key - began)
    finally:
        await helper.close()
        client.disconnect()
        fake.stop()
    return times


async def run(args: argparse.Namespace) -> None:
    toolkit = {t.id: t for t in TOOLKITS}[args.toolkit]
    reason = toolkit.missing()
    if reason:
        sys.exit(reason)
    audio, _ = recorded.cards()
    audio = audio[: int(args.speech * speech.SAMPLE_RATE)]
    load_before = os.getloadavg()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="v2m-ibus-bench-") as name:
        tmp = Path(name)
        wav = speech.write_wav(tmp / "speech.wav", np.concatenate([audio, speech.silence(60)]))
        bus = PrivateBus()
        xvfb = Xvfb()
        ibus = await IBusDaemon(tmp / "ibus", xvfb.display, bus.address).start()
        win = await TextWindow.open(xvfb.display, ibus, toolkit)
        window = Window(win)
        env = {
            "DISPLAY": xvfb.display,
            "IBUS_ADDRESS": ibus.address,
            "V2M_OUTPUT__TYPE": "true",
            "V2M_AUDIO__FILE": str(wav),
            "V2M_AUDIO__REALTIME": "true",
        }
        try:
            preedit, committed, finals, updates = await live(
                bus, tmp / "home", env, window, args.runs, args.speech
            )
            helper_env = {
                **os.environ,
                **env,
                "DBUS_SESSION_BUS_ADDRESS": bus.address,
                "PYTHONPATH": str(ROOT),
            }
            dictated = await deliveries(bus, helper_env, window, finals, tmp)
            long = await deliveries(bus, helper_env, window, [LONG] * args.repeats, tmp)
            assert win.keys() == [], "the window received key events"
        finally:
            await win.close()
            ibus.stop()
            xvfb.stop()
            bus.close()
    load_after = os.getloadavg()
    early = [x for x in preedit if x < 0]
    if early:
        print(
            f"note: {len(early)} preedits showed before this client saw their signal, by up to "
            f"{-min(early) * 1000:.1f} ms: it was scheduled after the helper and the window"
        )
    chars = statistics.mean(len(t) for t in finals) if finals else 0

    def per_char(values: list[float], length: float) -> str:
        return f"{statistics.median(values) / length * 1000:.2f} ms" if values else "none"

    print(
        f"{os.cpu_count()} CPUs, load average (1/5/15 min) "
        f"{' / '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' / '.join(f'{x:.2f}' for x in load_after)} after; {toolkit.name} window; "
        f"{len(committed)} dictations of {args.speech:g} s of recorded speech, "
        f"{args.repeats} texts of {len(LONG)} characters; {time.monotonic() - began:.0f} s in all"
    )
    print()
    print("| measure | IBus (preedit, commit) | portal keysyms (fake portal) |")
    print("|---|---|---|")
    print(
        f"| provisional update → shown, p50 / p95 | {ms(preedit)} "
        f"({len(preedit)} of {updates} updates) | — (nothing is shown until the final text) |"
    )
    print(
        f"| final text published → in the field, p50 / p95 (daemon) | {ms(committed)} "
        f"(n={len(committed)}, {chars:.0f} characters on average) | — |"
    )
    print(
        f"| the same texts, delivery call → arrived, p50 / p95 | {ms(dictated['ibus'])} | "
        f"{ms(dictated['portal'])} |"
    )
    print(
        f"| {len(LONG)} characters, delivery call → arrived, p50 / p95 | {ms(long['ibus'])} | "
        f"{ms(long['portal'])} |"
    )
    print(
        f"| per character (p50 of {len(LONG)} characters) | {per_char(long['ibus'], len(LONG))} | "
        f"{per_char(long['portal'], len(LONG))} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16, help="dictations through the daemon")
    parser.add_argument("--repeats", type=int, default=8, help="deliveries of the long text")
    parser.add_argument("--speech", type=float, default=4.0, help="seconds of speech each")
    parser.add_argument("--toolkit", choices=[t.id for t in TOOLKITS], default="gtk3")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
