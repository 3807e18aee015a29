"""Audio kept on disk: private to the user, and a capture file that outlives its daemon."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import wave

import numpy as np
import pytest

from v2md.audio import journal
from v2md.audio.recordings import GrowingRecording


@pytest.fixture(autouse=True)
def state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    old = os.umask(0o022)
    yield tmp_path / "state"
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_spill_past_capacity_is_private_and_so_are_its_directories(state_home):
    spilled = GrowingRecording(16000, "not transcribed in time")
    path = spilled.append(np.zeros(1600, dtype=np.float32))
    spilled.close()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700  # recordings/
    assert mode(state_home / "v2m") == 0o700


def test_a_live_capture_file_is_not_taken_and_goes_when_discarded():
    capture = journal.CaptureFile(16000)
    capture.append(np.full(8000, 0.25, dtype=np.float32))
    assert mode(capture.path) == 0o600
    assert journal.orphans() == []  # its writer holds it
    capture.discard()
    assert not capture.path.exists() and journal.orphans() == []


def test_a_capture_file_whose_process_was_killed_is_a_complete_wav(state_home):
    script = textwrap.dedent("""
        import os, signal
        import numpy as np
        from v2md.audio.journal import CaptureFile
        capture = CaptureFile(16000)
        capture.append(np.full(16000, 0.5, dtype=np.float32))
        capture.append(np.full(8000, -0.5, dtype=np.float32))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, "XDG_STATE_HOME": str(state_home)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (orphan,) = journal.orphans()
    assert orphan.samples == 24000 and orphan.duration_s == 1.5
    with wave.open(str(orphan.path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (16000, 1, 24000)
        pcm = np.frombuffer(wav.readframes(24000), dtype="<i2")
    assert pcm[0] == 16383 and pcm[-1] == -16383
    kept = journal.keep(orphan)
    assert kept.parent.name == "recordings" and mode(kept) == 0o600
    assert journal.orphans() == []
