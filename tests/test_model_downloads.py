"""Models from a hub: downloaded with progress, resumed, listed, removed; failures named.

Every download comes from a hub of the tests' own on loopback (``fake_hub.py``, the
bundled tiny.en playing a hub repository), with ``HF_ENDPOINT`` pointed at it and
``HF_HOME`` at the test's own directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import filecmp
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import speech
from dbus_fast import DBusError
from fake_hub import FakeHub, bundled_model_dir, files_of, serving
from harness import ROOT, Watch, assert_eventually, read_until_closed, running_daemon

from v2md import INTERFACE
from v2md.asr import downloads
from v2md.ctl import bar_line
from v2md.errors import ERROR_PREFIX, InvalidArgumentError, ModelError

REPO = "v2m-test/whisper-tiny.en"
MAX_WER = 20.0  # tiny.en on espeak speech, as in test_dictation
MODEL_BIN_SIZE = 75_537_502  # the bundled tiny.en's model.bin


@pytest.fixture(scope="module")
def tiny_files():
    return files_of(bundled_model_dir())


@pytest.fixture
def hub(tiny_files):
    with serving(FakeHub(repos={REPO: tiny_files})) as served:
        yield served


def hub_env(hub: FakeHub, tmp_path: Path) -> dict[str, str]:
    return {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def snapshot(tmp_path: Path) -> Path:
    folder = tmp_path / "hf" / "hub" / ("models--" + REPO.replace("/", "--"))
    (path,) = (folder / "snapshots").iterdir()
    return path


async def state_is(props, expected: str) -> bool:
    return (await props.call_get(INTERFACE, "ModelState")).value == expected


async def test_a_model_not_on_this_machine_downloads_with_progress_then_transcribes(
    own_bus, tmp_path, hub, speech_file
):
    hub.gate = threading.Event()  # nothing arrives until the test has seen the download begin
    hub.pace_s = 0.002  # about 2.5 s for model.bin: progress in between
    settings = {"V2M_WHISPER__MODEL": REPO, **hub_env(hub, tmp_path)}
    async with running_daemon(own_bus, tmp_path / "home", **settings) as (daemon, iface, props):
        watch = Watch(iface, props)
        await assert_eventually(lambda: state_is(props, "downloading"), timeout=30)
        with pytest.raises(DBusError) as info:  # one download at a time
            await iface.call_pull_model("v2m-test/another")
        assert info.value.type == ERROR_PREFIX + "Busy"
        assert f"{REPO!r} is downloading" in info.value.text
        hub.gate.set()
        await assert_eventually(lambda: "ready" in watch.model_states, timeout=120)
        await assert_eventually(lambda: watch.progress and watch.progress[-1] == 1.0)

        assert (
            watch.model_states[watch.model_states.index("ready") - 1] == "loading"
        )  # after the download
        assert all(a <= b for a, b in itertools.pairwise(watch.progress)), watch.progress
        assert any(0.0 < f < 1.0 for f in watch.progress), watch.progress
        assert watch.progress.count(1.0) == 1
        assert (await props.call_get(INTERFACE, "Model")).value == REPO

        text = await iface.call_transcribe_file(str(speech_file.path))
        assert speech.wer(speech_file.text, text) <= MAX_WER, text

        # The model in use cannot be removed; it is listed as cached, English only.
        with pytest.raises(DBusError) as info:
            await iface.call_remove_model(REPO)
        assert info.value.type == ERROR_PREFIX + "InvalidState"
        assert "in use" in info.value.text
        listed = {name: rest for name, *rest in await iface.call_list_models()}
        assert listed[REPO] == [str(snapshot(tmp_path)), listed[REPO][1], False, False]
        assert MODEL_BIN_SIZE < listed[REPO][1] < MODEL_BIN_SIZE + 5_000_000
        assert listed["tiny.en"][2:] == [False, True]  # the bundled one
    assert daemon.proc.returncode == 0


async def test_a_failed_download_is_a_model_error_and_keeps_the_model_in_use(
    own_bus, tmp_path, hub
):
    hub.missing.add("vocabulary.txt")
    async with running_daemon(own_bus, tmp_path / "home", **hub_env(hub, tmp_path)) as (
        _daemon,
        iface,
        props,
    ):
        await assert_eventually(lambda: state_is(props, "ready"), timeout=60)
        with pytest.raises(DBusError) as info:
            await iface.call_pull_model("v2m-test/no-such-model")
        assert info.value.type == ERROR_PREFIX + "Model"
        assert "no Whisper model 'v2m-test/no-such-model'" in info.value.text

        with pytest.raises(DBusError) as info:
            await iface.call_pull_model(REPO)
        assert info.value.type == ERROR_PREFIX + "Model"
        assert REPO in info.value.text and "pull it again" in info.value.text
        assert "HTTP 404 for " in info.value.text and "/vocabulary.txt" in info.value.text
        assert await state_is(props, "ready")
        assert (await props.call_get(INTERFACE, "Model")).value == "tiny.en (bundled)"
        # Half a model is not listed as one.
        assert REPO not in [name for name, *_ in await iface.call_list_models()]

        # Pulled again: what arrived the first time is not fetched again.
        hub.missing.clear()
        path = await iface.call_pull_model(REPO)
        assert Path(path) == snapshot(tmp_path)
        assert len(hub.gets("model.bin")) == 1
        assert len(hub.gets("vocabulary.txt")) == 1
        assert (await props.call_get(INTERFACE, "ModelProgress")).value == 1.0


async def test_a_configured_model_that_cannot_be_had_fails_saying_why(
    own_bus, tmp_path, hub, speech_file
):
    settings = {"V2M_WHISPER__MODEL": "v2m-test/no-such-model", **hub_env(hub, tmp_path)}
    async with running_daemon(own_bus, tmp_path / "home", **settings) as (daemon, iface, props):
        await assert_eventually(lambda: state_is(props, "failed"), timeout=60)
        with pytest.raises(DBusError) as info:
            await iface.call_transcribe_file(str(speech_file.path))
        assert info.value.type == ERROR_PREFIX + "Model"
        assert "no Whisper model 'v2m-test/no-such-model'" in info.value.text
        assert "set [whisper] model = 'tiny.en'" in info.value.text
    assert daemon.proc.returncode == 0


def _v2mctl(env: dict[str, str], *argv: str, **kwargs) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "v2md.ctl", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        **kwargs,
    )


async def test_v2mctl_pulls_a_cut_download_to_the_end_then_lists_and_removes_it(
    own_bus, tmp_path, hub
):
    hub.cut_after["model.bin"] = 25_000_000  # the first connection breaks there
    async with running_daemon(own_bus, tmp_path / "home", **hub_env(hub, tmp_path)) as (
        daemon,
        _iface,
        _props,
    ):
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": daemon.bus.address}
        terminal, other_end = os.openpty()
        pull = _v2mctl(env, "model", "pull", REPO, stderr=other_end)
        os.close(other_end)  # v2mctl holds the only one left: reading ends when it exits
        try:
            drawn = (await asyncio.to_thread(read_until_closed, terminal, 120)).decode()
            out = pull.communicate(timeout=60)[0].decode()
        finally:
            os.close(terminal)
            pull.kill()  # only if it is still running
        assert pull.returncode == 0, drawn
        assert out.strip() == str(snapshot(tmp_path))
        full = bar_line(1.0, 80)
        assert any(0 < float(p) < 100 for p in _percents(drawn)), drawn  # a bar that moved
        assert drawn.endswith(f"\r{' ' * len(full)}\r"), drawn

        # The broken connection was resumed where it broke, not started over.
        gets = hub.gets("model.bin")
        assert len(gets) == 2 and gets[0].range is None, gets
        start = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
        assert 0 < start <= 25_000_000
        assert filecmp.cmp(snapshot(tmp_path) / "model.bin", bundled_model_dir() / "model.bin")

        listed = subprocess.run(
            [sys.executable, "-m", "v2md.ctl", "model", "list"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        (line,) = [row for row in listed if row.startswith(REPO)]
        assert "English only" in line and f"cached: {snapshot(tmp_path)}" in line
        assert " 78 MB " in line
        assert any(row.startswith("tiny.en ") and row.endswith("bundled") for row in listed)

        removed = subprocess.run(
            [sys.executable, "-m", "v2md.ctl", "model", "rm", REPO],
            env=env,
            capture_output=True,
            text=True,
        )
        assert removed.returncode == 0 and removed.stdout == f"removed {REPO} (78 MB)\n"
        assert not (tmp_path / "hf" / "hub" / ("models--" + REPO.replace("/", "--"))).exists()
        again = subprocess.run(
            [sys.executable, "-m", "v2md.ctl", "model", "rm", REPO],
            env=env,
            capture_output=True,
            text=True,
        )
        assert again.returncode == 1
        assert "InvalidArgument" in again.stderr and "not in the download cache" in again.stderr


def _percents(drawn: str) -> list[str]:
    return [part.split("]")[-1].strip().rstrip("%") for part in drawn.split("\r") if "]" in part]


def test_names_map_to_repositories_as_faster_whisper_maps_them():
    assert downloads.repo_id("base") == "Systran/faster-whisper-base"
    assert downloads.repo_id("owner/model") == "owner/model"
    assert downloads.model_name("Systran/faster-whisper-large-v3") == "large-v3"
    assert downloads.model_name("owner/model") == "owner/model"
    with pytest.raises(ModelError, match="unknown Whisper model 'tiny-but-huge'"):
        downloads.repo_id("tiny-but-huge")
    with pytest.raises(InvalidArgumentError, match="no Hugging Face repository id"):
        downloads.repo_id("a/b/c")


def test_the_vocabulary_tells_multilingual_from_english_only(tmp_path):
    assert downloads.is_multilingual(bundled_model_dir()) is False  # tiny.en
    (tmp_path / "vocabulary.txt").write_text("t\n" * downloads.MULTILINGUAL_VOCABULARY)
    assert downloads.is_multilingual(tmp_path) is True


@contextlib.contextmanager
def silent_server():
    """A loopback server that accepts every connection and never answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for conn in held:
            conn.close()


def closed_port() -> str:
    """An address where nothing listens: what no network looks like on loopback."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


async def test_a_server_that_never_answers_times_out_and_leaves_nothing_busy(own_bus, tmp_path):
    with silent_server() as url:
        env = {"HF_ENDPOINT": url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
        async with running_daemon(own_bus, tmp_path / "home", **env) as (_daemon, iface, props):
            await assert_eventually(lambda: state_is(props, "ready"), timeout=60)
            for _ in range(2):  # the second is not Busy: the first left nothing behind
                started = time.monotonic()
                with pytest.raises(DBusError) as info:
                    await asyncio.wait_for(iface.call_pull_model(REPO), timeout=30)
                assert time.monotonic() - started < 15
                assert info.value.type == ERROR_PREFIX + "Timeout", info.value.text
                assert "did not answer within 2 s" in info.value.text
                assert "files that arrived" not in info.value.text
            with pytest.raises(DBusError) as info:
                await iface.call_remove_model(REPO)
            assert info.value.type == ERROR_PREFIX + "InvalidArgument"  # not in the cache


async def test_a_download_that_stalls_mid_file_times_out_and_keeps_what_arrived(
    own_bus, tmp_path, hub
):
    hub.stall_at["model.bin"] = 10_000_000  # every connection, a resumed one too
    env = {**hub_env(hub, tmp_path), "HF_HUB_DOWNLOAD_TIMEOUT": "1"}
    async with running_daemon(own_bus, tmp_path / "home", **env) as (_daemon, iface, props):
        await assert_eventually(lambda: state_is(props, "ready"), timeout=60)
        started = time.monotonic()
        with pytest.raises(DBusError) as info:
            await asyncio.wait_for(iface.call_pull_model(REPO), timeout=90)
        assert time.monotonic() - started < 30  # huggingface_hub tries six times: 12 s
        assert info.value.type == ERROR_PREFIX + "Timeout", info.value.text
        assert "did not answer within 1 s (HF_HUB_DOWNLOAD_TIMEOUT)" in info.value.text
        assert "the files that arrived are kept" in info.value.text
        # Not Busy: the pull left nothing behind but the files that arrived.
        assert await iface.call_remove_model(REPO) > 1_000_000
        assert await state_is(props, "ready")


async def test_the_start_up_download_from_a_silent_server_fails_the_model(own_bus, tmp_path):
    with silent_server() as url:
        env = {
            "HF_ENDPOINT": url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_DOWNLOAD_TIMEOUT": "2",
            "V2M_WHISPER__MODEL": REPO,
        }
        async with running_daemon(own_bus, tmp_path / "home", **env) as (daemon, _iface, props):
            await assert_eventually(lambda: state_is(props, "failed"), timeout=30)
        assert "did not answer within 2 s" in daemon.log()


async def test_no_network_fails_at_once_saying_so(own_bus, tmp_path):
    env = {"HF_ENDPOINT": closed_port(), "HF_HOME": str(tmp_path / "hf")}
    async with running_daemon(own_bus, tmp_path / "home", **env) as (_daemon, iface, props):
        await assert_eventually(lambda: state_is(props, "ready"), timeout=60)
        started = time.monotonic()
        with pytest.raises(DBusError) as info:
            await iface.call_pull_model("small")
        assert time.monotonic() - started < 5  # 23 s of retries before
        assert info.value.type == ERROR_PREFIX + "Model"
        assert "cannot be reached (no network?" in info.value.text
        assert "nothing of it arrived" in info.value.text
