"""Silero voice activity detection, streamed over audio as it arrives.

Runs the Silero VAD v6 ONNX model that faster-whisper ships on 512-sample
frames (32 ms at 16 kHz), carrying the model's recurrent state and any partial
frame between calls, so the cost is spread over the recording instead of paid
at stop. Hysteresis (``min_speech_ms``, ``min_silence_ms`` and a lower release
threshold) turns frame probabilities into a steady speech/silence state.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import onnxruntime
from faster_whisper.utils import get_assets_path

from v2md.audio.format import SAMPLE_RATE
from v2md.config import VADConfig
from v2md.errors import InvalidArgumentError

log = logging.getLogger(__name__)

MODEL_PATH = Path(get_assets_path()) / "silero_vad_v6.onnx"
FRAME = 512  # samples per model step at 16 kHz
CONTEXT = 64  # samples of the previous frame the model sees before each frame
# Speech ends only when the probability falls this far below the threshold,
# as in Silero's reference segmenter: it keeps soft syllables inside speech.
RELEASE_GAP = 0.15


@functools.cache
def _session() -> onnxruntime.InferenceSession:
    """One shared session: ``run`` is thread-safe and each detector keeps its own state."""
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return onnxruntime.InferenceSession(
        str(MODEL_PATH), sess_options=opts, providers=["CPUExecutionProvider"]
    )


class SileroVAD:
    """Stateful speech detector: feed chunks of any size, read the speech state."""

    def __init__(self, cfg: VADConfig) -> None:
        self._cfg = cfg
        self._session = _session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames = 0  # frames run through the model
        self._frame_ms = 1000 * FRAME / SAMPLE_RATE
        self._run_start: int | None = None  # frame where a not-yet-confirmed speech run began
        self._quiet_since: int | None = None  # frame where silence began inside speech
        self._first_start: int | None = None  # sample where the first speech began
        self._last_end: int | None = None  # sample where the latest finished speech ended
        self.speech_active = False

    @property
    def samples_seen(self) -> int:
        return self._frames * FRAME + self._pending.size

    @property
    def silence_after_speech_ms(self) -> float:
        """Silence since speech last ended; 0 while speaking or before any speech."""
        if self.speech_active or self._last_end is None:
            return 0.0
        return 1000 * (self._frames * FRAME - self._last_end) / SAMPLE_RATE

    def process(self, samples: np.ndarray) -> None:
        """Run every complete frame of ``samples`` (plus the remainder of earlier calls)."""
        if samples.ndim != 1:
            raise InvalidArgumentError("VAD input must be one-dimensional (mono) samples")
        audio = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        count = audio.size // FRAME
        self._pending = audio[count * FRAME :]
        if count == 0:
            return
        frames = audio[: count * FRAME].reshape(count, FRAME)
        # Each row is one frame preceded by the tail of the frame before it.
        previous = np.vstack([self._context, frames[:-1, -CONTEXT:]])
        batch = np.concatenate([previous, frames], axis=1)
        self._context = frames[-1, -CONTEXT:].copy()
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        for prob in np.asarray(probs).reshape(-1):
            self._step(float(prob))
            self._frames += 1

    def _step(self, prob: float) -> None:
        frame = self._frames
        cfg = self._cfg
        if not self.speech_active:
            if prob < cfg.threshold:
                self._run_start = None
                return
            if self._run_start is None:
                self._run_start = frame
            if (frame + 1 - self._run_start) * self._frame_ms >= cfg.min_speech_ms:
                self.speech_active = True
                self._quiet_since = None
                if self._first_start is None:
                    self._first_start = self._run_start * FRAME
                log.debug("speech started at %.2f s", self._run_start * FRAME / SAMPLE_RATE)
            return
        if prob >= cfg.threshold - RELEASE_GAP:
            self._quiet_since = None
            return
        if self._quiet_since is None:
            self._quiet_since = frame
        if (frame + 1 - self._quiet_since) * self._frame_ms >= cfg.min_silence_ms:
            self.speech_active = False
            self._run_start = None
            self._last_end = self._quiet_since * FRAME
            log.debug("speech ended at %.2f s", self._last_end / SAMPLE_RATE)

    def speech_bounds(self, *, padded: bool = True) -> tuple[int, int] | None:
        """First speech start and last speech end in samples (padded by ``speech_pad_ms``
        unless ``padded`` is false); None if no speech yet."""
        if self._first_start is None:
            return None
        if self.speech_active:
            end = self.samples_seen if self._quiet_since is None else self._quiet_since * FRAME
        else:
            assert self._last_end is not None  # set whenever speech has ended
            end = self._last_end
        pad = self._cfg.speech_pad_ms * SAMPLE_RATE // 1000 if padded else 0
        return max(0, self._first_start - pad), min(self.samples_seen, end + pad)
