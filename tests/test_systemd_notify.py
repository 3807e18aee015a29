"""The daemon's side of Type=notify: READY after the name, STATUS, watchdog pings, STOPPING."""

from __future__ import annotations

import asyncio
import signal
import socket

from dbus_fast.aio import MessageBus
from harness import Daemon

from v2md.asr.types import ModelState
from v2md.client import name_has_owner
from v2md.daemon import _Systemd


async def test_notify_protocol_and_watchdog(own_bus, tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    daemon = Daemon(own_bus, tmp_path, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="200000").start()
    bus = await MessageBus(bus_address=own_bus.address).connect()
    messages: list[str] = []
    try:

        async def next_message() -> str:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout=60)
            messages.append(data.decode())
            return messages[-1]

        while "READY=1" not in await next_message():
            pass
        assert await name_has_owner(bus), "READY=1 came before the bus name was owned"
        pings = 0
        while pings < 3:  # 200 ms watchdog: pings every 100 ms from the event loop
            pings += "WATCHDOG=1" in await next_message()
        daemon.proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in await next_message():
            pass
        assert daemon.proc.wait(timeout=30) == 0
    finally:
        bus.disconnect()
        sock.close()
        daemon.stop()
    assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for m in messages)


def test_a_status_line_stays_one_line(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        _Systemd().model_changed(ModelState.FAILED, "cannot load\nSTOPPING=1")
        assert sock.recv(4096).decode() == "STATUS=model failed: cannot load\\nSTOPPING=1"
    finally:
        sock.close()
