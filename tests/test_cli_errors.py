"""The command-line tools answer bad situations with one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from harness import ROOT, Daemon, running_daemon


def run(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env or {**os.environ, "PYTHONPATH": str(ROOT)},
        **kwargs,
    )


def without_bus() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY")}
    return {**env, "XDG_RUNTIME_DIR": "/nonexistent", "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("command", [("v2md.ctl", "status"), ("v2md.daemon",)])
def test_no_session_bus_is_one_line_not_a_traceback(command, tmp_path):
    env = {**without_bus(), "XDG_CONFIG_HOME": str(tmp_path)}
    result = run(*command, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "session bus" in result.stderr


def test_no_daemon_on_the_bus_says_it_is_not_running_and_how_to_start_it(own_bus):
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": own_bus.address, "PYTHONPATH": str(ROOT)}
    for command in ("status", "toggle"):
        result = run("v2md.ctl", command, env=env)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert "v2md is not running" in result.stderr and "ServiceUnknown" not in result.stderr
        assert "`systemctl --user start v2md`" in result.stderr
        assert "`python3 -m v2md.daemon`" in result.stderr


def test_a_negative_history_count_is_a_usage_error():
    result = run("v2md.ctl", "history", "-1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "not a count" in result.stderr


@pytest.mark.slow
async def test_output_cut_short_by_a_pipe_is_not_an_error(own_bus, tmp_path):
    async with running_daemon(own_bus, tmp_path / "home"):
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": own_bus.address, "PYTHONPATH": str(ROOT)}
        # `true` reads nothing and exits at once: v2mctl then writes into a closed pipe.
        result = subprocess.run(
            f"{sys.executable} -m v2md.ctl status | true",
            shell=True,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


async def test_refine_without_a_provider_names_the_config_file_v2md_was_given(own_bus, tmp_path):
    config = tmp_path / "elsewhere" / "dictation.toml"
    config.parent.mkdir()
    config.write_text('[llm]\nprovider = "none"\n')
    daemon = Daemon(own_bus, tmp_path / "home").start("--config", str(config))
    try:
        await daemon.wait_ready()
        result = run("v2md.ctl", "refine", "hello", env={**daemon.env})
    finally:
        daemon.stop()
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert f"set provider under [llm] in {config} " in result.stderr
    assert f"GEMINI_API_KEY in the environment or in {config.parent / '.env'}" in result.stderr


def test_the_demo_on_a_file_that_is_not_audio_says_why_in_one_line(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 50)
    env = {**without_bus(), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    result = run("v2md.demo", "--file", str(text), env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("v2m-demo: ") and "not audio" in last, result.stderr
