"""TranscribeFile's reader: demuxers that read one file, blocks, a bound on length."""

from __future__ import annotations

import numpy as np
import pytest
import speech

from v2md import audiofile
from v2md.errors import InvalidArgumentError

SR = speech.SAMPLE_RATE


def test_a_list_of_other_files_is_refused_not_followed(tmp_path):
    other = speech.write_wav(tmp_path / "other.wav", np.full(SR, 0.1, np.float32))
    listing = tmp_path / "mine.wav"
    listing.write_text(f"ffconcat version 1.0\nfile '{other}'\n")
    with pytest.raises(InvalidArgumentError, match="not audio v2m reads"):
        list(audiofile.blocks(listing, SR, 10 * SR))


def test_a_file_comes_in_blocks_and_a_long_one_is_refused_by_name(tmp_path):
    audio = np.sin(np.arange(25 * SR) / 7).astype(np.float32) * 0.3
    path = speech.write_wav(tmp_path / "tone.wav", audio)
    blocks = list(audiofile.blocks(path, 10 * SR, 60 * SR))
    assert [b.size for b in blocks] == [10 * SR, 10 * SR, 5 * SR]
    assert np.max(np.abs(np.concatenate(blocks) - audio)) < 1e-3
    assert audiofile.duration_s(path) == pytest.approx(25, abs=0.1)
    with pytest.raises(InvalidArgumentError, match="max_file_s = 20 s"):
        list(audiofile.blocks(path, 10 * SR, 20 * SR))
