"""The inference thread: jobs by priority, and file jobs held back while someone dictates."""

from __future__ import annotations

import asyncio
import threading

import pytest

from v2md.asr.scheduler import InferenceThread, Priority


@pytest.fixture
def inference():
    thread = InferenceThread("test-inference")
    yield thread
    thread.close()


def busy(inference: InferenceThread) -> tuple[threading.Event, asyncio.Future]:
    """Occupy the thread until the returned event is set, so that later jobs queue up."""
    started, go = threading.Event(), threading.Event()

    def block():
        started.set()
        go.wait(10)

    job = inference.submit(Priority.FINAL, block)
    assert started.wait(10)
    return go, job


async def test_jobs_run_by_priority_then_in_order_of_arrival(inference):
    order: list[str] = []
    go, first = busy(inference)
    jobs = [
        inference.submit(priority, lambda name=name: order.append(name))
        for priority, name in [
            (Priority.FILE, "file"),
            (Priority.LIVE, "live 1"),
            (Priority.FINAL, "final"),
            (Priority.LIVE, "live 2"),
        ]
    ]
    go.set()
    await asyncio.gather(first, *jobs)
    assert order == ["final", "live 1", "live 2", "file"]


async def test_held_file_jobs_wait_while_other_jobs_run(inference):
    release = inference.hold_files()
    ran: list[str] = []
    file_job = inference.submit(Priority.FILE, lambda: ran.append("file"))
    await inference.submit(Priority.FINAL, lambda: ran.append("final"))
    await inference.submit(Priority.LIVE, lambda: ran.append("live"))
    assert ran == ["final", "live"]  # the thread ran past the file job, twice
    release()
    await asyncio.wait_for(file_job, 10)
    assert ran == ["final", "live", "file"]


async def test_files_run_again_only_when_every_hold_is_released(inference):
    first, second = inference.hold_files(), inference.hold_files()
    ran: list[str] = []
    file_job = inference.submit(Priority.FILE, lambda: ran.append("file"))
    first()
    first()  # a second call of the same release changes nothing
    await inference.submit(Priority.LIVE, lambda: ran.append("live"))
    assert ran == ["live"]
    second()
    await asyncio.wait_for(file_job, 10)
    assert ran == ["live", "file"]


async def test_close_drops_held_jobs():
    inference = InferenceThread("test-inference")
    inference.hold_files()
    file_job = inference.submit(Priority.FILE, lambda: None)
    inference.close()
    with pytest.raises(asyncio.CancelledError):
        await file_job
