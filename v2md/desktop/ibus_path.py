"""v2md's side of the IBus path: the helper process (``v2md/desktop/ibus.py``), started and asked.

The helper is started when delivery may go through IBus, so that it follows the
dictation from its first words; one that exits is started again at the next need. A
commit is one JSON line to its stdin and one answer from its stdout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
COMMIT_TIMEOUT_S = 10.0
# A helper that could not start (no IBus) is tried again after this long, not at every
# delivery: the other paths must not wait for it each time.
RETRY_S = 30.0


class IBusUnavailable(Exception):
    """The helper could not start, or could not put the text into the field."""


class IBusHelper:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if environ is None else environ)
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.reason = "the IBus helper has not started yet"  # why it is unavailable
        self._failed_at: float | None = None

    async def available(self) -> bool:
        """Whether IBus can take the text now (starts the helper if need be)."""
        if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_S:
            return False
        try:
            await self._running()
        except IBusUnavailable as exc:
            self.reason = str(exc)
            self._failed_at = time.monotonic()
            return False
        self._failed_at = None
        return True

    async def commit(self, text: str) -> None:
        async with self._lock:
            proc = await self._start()
            assert proc.stdin is not None  # started with a pipe
            try:
                proc.stdin.write(json.dumps({"commit": text}).encode() + b"\n")
                await proc.stdin.drain()
                answer = await asyncio.wait_for(self._answer(proc), COMMIT_TIMEOUT_S)
            except (TimeoutError, ConnectionError) as exc:
                await self._stop()
                raise IBusUnavailable(f"the IBus helper did not answer ({exc!r})") from None
        if "error" in answer:
            raise IBusUnavailable(answer["error"])

    async def _running(self) -> None:
        async with self._lock:
            await self._start()

    async def _start(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "v2md.desktop.ibus",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self._env,
            limit=1024 * 1024,
        )
        try:
            answer = await asyncio.wait_for(self._answer(proc), START_TIMEOUT_S)
        except TimeoutError:
            answer = {"error": f"the IBus helper did not start within {START_TIMEOUT_S:g} s"}
        if "ready" not in answer:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            raise IBusUnavailable(answer.get("error", "the IBus helper failed"))
        log.info("the IBus helper runs (pid %d)", proc.pid)
        self._proc = proc
        return proc

    @staticmethod
    async def _answer(proc: asyncio.subprocess.Process) -> dict[str, Any]:
        assert proc.stdout is not None  # started with a pipe
        line = await proc.stdout.readline()
        if not line:
            await proc.wait()
            return {"error": f"the IBus helper exited with status {proc.returncode}"}
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def _stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        self._proc = None

    async def close(self) -> None:
        async with self._lock:
            await self._stop()
