"""``v2m-demo``: dictate the bundled sample speech through the real daemon and bus API.

It runs ``v2md`` as a subprocess on the session bus (a private ``dbus-daemon``
when no session bus is reachable or a v2md already owns the name there), with
the sample WAV as its audio source played at real time, then drives it exactly
as a desktop client would: Start, watch TranscriptionUpdated, print the text.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from dbus_fast import BusType, DBusError, Variant
from dbus_fast.aio import MessageBus

from v2md import BUS_NAME, INTERFACE, help_text
from v2md.client import Proxy, dictation_proxy, name_has_owner, wait_for_name
from v2md.privatebus import PrivateBus

SAMPLE = resources.files("v2md") / "data" / "sample.wav"
SAMPLE_TEXT = resources.files("v2md") / "data" / "sample.txt"  # what the sample says


async def _name_owned(address: str | None) -> bool | None:
    """Whether BUS_NAME is owned on that bus; None when the bus cannot be reached."""
    try:
        bus = await MessageBus(bus_address=address, bus_type=BusType.SESSION).connect()
    except Exception:
        return None
    try:
        return await name_has_owner(bus)
    finally:
        bus.disconnect()


async def _wait_ready(props: Proxy, timeout: float) -> None:
    """Wait for ModelState=ready by subscribing, not by polling."""
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def changed(interface: str, values: dict[str, Variant], _invalid: list[str]) -> None:
        state = values.get("ModelState") if interface == INTERFACE else None
        if state is not None and state.value in ("ready", "failed") and not ready.done():
            ready.set_result(state.value)

    props.on_properties_changed(changed)
    current = (await props.call_get(INTERFACE, "ModelState")).value
    if current not in ("ready", "failed"):
        current = await asyncio.wait_for(ready, timeout)
    if current != "ready":
        raise SystemExit("v2m-demo: the model failed to load; see the daemon log above")


async def _dictate(address: str, sample: Path) -> str:
    bus = await MessageBus(bus_address=address).connect()
    try:
        await wait_for_name(bus, timeout=60)
        iface, props = await dictation_proxy(bus)
        await _wait_ready(props, timeout=120)
        final: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        started = time.monotonic()

        def on_text(text: str, is_final: bool) -> None:
            stamp = f"{time.monotonic() - started:5.1f}s"
            print(f"[{stamp}] {'final' if is_final else 'live '}: {text}", flush=True)
            if is_final and not final.done():
                final.set_result(text)

        iface.on_transcription_updated(on_text)
        print(f"dictating {sample.name} through {BUS_NAME} (Start, then live text):", flush=True)
        await iface.call_start()
        return await asyncio.wait_for(final, timeout=300)
    finally:
        bus.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="v2m-demo", description=help_text(__doc__))
    parser.add_argument("--file", type=Path, help="speech to dictate (default: bundled sample)")
    args = parser.parse_args(argv)
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    failure = ""
    bus: PrivateBus | None = None
    with contextlib.ExitStack() as stack:
        if asyncio.run(_name_owned(address)) is not False:
            bus = stack.enter_context(PrivateBus())
            address = bus.address
            print(f"using a private session bus at {address}", flush=True)
        assert address is not None  # else the name would not be known unowned
        sample = args.file or stack.enter_context(resources.as_file(SAMPLE))
        state = stack.enter_context(tempfile.TemporaryDirectory(prefix="v2m-demo-"))
        env = dict(
            os.environ,
            DBUS_SESSION_BUS_ADDRESS=address,
            V2M_AUDIO__FILE=str(Path(sample).resolve()),
            V2M_AUDIO__REALTIME="true",
            V2M_OUTPUT__CLIPBOARD="false",
            XDG_DATA_HOME=state,
            XDG_STATE_HOME=state,
        )
        daemon = subprocess.Popen([sys.executable, "-m", "v2md.daemon"], env=env)
        try:
            text = asyncio.run(_dictate(address, Path(sample)))
        except (DBusError, TimeoutError) as exc:  # the daemon's log above says more
            # Said once the daemon has stopped, so that its log does not bury it.
            failure = str(exc) or "the daemon did not answer in time"
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    if failure:
        if bus is not None and bus.messages:
            print(f"v2m-demo: the private bus said: {bus.messages}", file=sys.stderr)
        print(f"v2m-demo: {failure}", file=sys.stderr)
        return 1
    print(f"\nfinal text: {text}")
    if args.file is None:
        print(f"the sample says: {SAMPLE_TEXT.read_text().strip()}")
    return 0 if text else 1


if __name__ == "__main__":
    sys.exit(main())
