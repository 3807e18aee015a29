"""TranscribeFile's reader: demuxers that read one file, blocks, a bound on length."""

from __future__ import annotations

import os

import numpy as np
import pytest
import speech

from v2md.asr.filedecode import decode_file
from v2md.audio import files as audiofile
from v2md.errors import InvalidArgumentError

SR = speech.SAMPLE_RATE


def test_a_list_of_other_files_is_refused_not_followed(tmp_path):
    other = speech.write_wav(tmp_path / "other.wav", np.full(SR, 0.1, np.float32))
    listing = tmp_path / "mine.wav"
    listing.write_text(f"ffconcat version 1.0\nfile '{other}'\n")
    with pytest.raises(InvalidArgumentError, match="not audio v2m can read"):
        list(audiofile.blocks(listing, SR, 10 * SR))


def test_a_text_file_is_not_audio_in_plain_words(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are notes, not audio\n" * 20)
    with pytest.raises(InvalidArgumentError) as info:
        list(audiofile.blocks(path, SR, 10 * SR))
    assert str(info.value) == (
        f"{path} is not audio v2m can read (it reads WAV, FLAC, MP3, Ogg, Opus, M4A, "
        "WebM and other audio formats)"
    )


def test_a_file_comes_in_blocks_and_a_long_one_is_refused_by_name(tmp_path):
    audio = np.sin(np.arange(25 * SR) / 7).astype(np.float32) * 0.3
    path = speech.write_wav(tmp_path / "tone.wav", audio)
    blocks = list(audiofile.blocks(path, 10 * SR, 60 * SR))
    assert [b.size for b in blocks] == [10 * SR, 10 * SR, 5 * SR]
    assert np.max(np.abs(np.concatenate(blocks) - audio)) < 1e-3
    assert audiofile.duration_s(path) == pytest.approx(25, abs=0.1)
    with pytest.raises(InvalidArgumentError, match="max_file_s = 20 s"):
        list(audiofile.blocks(path, 10 * SR, 20 * SR))


async def test_a_header_stating_eighteen_hours_is_refused_before_decoding(tmp_path):
    # it was refused only once decoded past max_file_s: 24-38 s of CPU spent first
    path = speech.write_wav(tmp_path / "long.wav", np.zeros(SR, np.float32))
    raw = bytearray(path.read_bytes())
    stated = 18 * 3600 * SR * 2  # bytes of 16-bit mono
    raw[4:8] = (36 + stated).to_bytes(4, "little")
    raw[40:44] = stated.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    os.truncate(path, 44 + stated)  # sparse: 18 h of silence take no disk

    async def never(_audio, _at):
        raise AssertionError("decoded a file that should have been refused")

    with pytest.raises(
        InvalidArgumentError, match=r"64800 s long, longer than .*max_file_s = 14400"
    ):
        await decode_file(path, 4 * 3600, never)
