"""The inference thread: one thread running decode jobs by priority, then arrival.

The final text a person is waiting for goes first, provisional text next, and a file
last; file jobs can be held back entirely while someone dictates.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Priority(IntEnum):
    """Which inference job goes first; lower first, then in arrival order."""

    FINAL = 0  # the final text of a dictation: a person may be waiting on Stop
    LIVE = 1  # provisional text while speaking
    FILE = 2  # one window of a TranscribeFile


@dataclass(order=True)
class _Job:
    priority: Priority
    seq: int
    fn: Callable[[], Any] = field(compare=False)
    future: Future[Any] = field(compare=False)


class InferenceThread:
    """One thread running jobs by priority, then in order of arrival.

    File jobs can be held back entirely (``hold_files``) while someone dictates: a
    file window runs for a second or more and cannot be interrupted, so even a
    lower-priority file job would make a pause's decode, and then Stop, wait for it."""

    def __init__(self, name: str = "whisper") -> None:
        self._jobs: list[_Job] = []
        self._seq = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self._file_holds = 0
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, priority: Priority, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Queue ``fn``; its result or exception arrives in the returned awaitable.

        Cancelling the awaitable before the job starts drops the job."""
        future: Future[Any] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the inference thread is closed")
            heapq.heappush(self._jobs, _Job(priority, next(self._seq), fn, future))
            self._ready.notify()
        return asyncio.wrap_future(future)

    def hold_files(self) -> Callable[[], None]:
        """Run no file job until the returned release is called (once; later calls do
        nothing). Holds nest: files run again when every hold is released."""
        with self._ready:
            self._file_holds += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._ready:
                if not released:
                    released = True
                    self._file_holds -= 1
                    self._ready.notify()

        return release

    def _runnable(self) -> bool:
        """A job may run now (the heap's first is the most urgent)."""
        return bool(self._jobs) and not (
            self._file_holds and self._jobs[0].priority >= Priority.FILE
        )

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._runnable() and not self._closed:
                    self._ready.wait()
                if not self._jobs:
                    return
                job = heapq.heappop(self._jobs)
            if not job.future.set_running_or_notify_cancel():
                continue  # its caller gave up waiting before it started
            try:
                job.future.set_result(job.fn())
            except BaseException as exc:
                job.future.set_exception(exc)

    def close(self, timeout: float = 30.0) -> None:
        """Drop queued jobs and wait for the thread to end the one it is running (a daemon
        thread, so that a process exiting without closing is not held up by it)."""
        with self._ready:
            self._closed = True
            for job in self._jobs:
                job.future.cancel()
            self._jobs.clear()
            self._ready.notify()
        self._thread.join(timeout)
