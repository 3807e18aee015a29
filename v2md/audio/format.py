"""The one audio format inside v2m: mono float32 samples at ``SAMPLE_RATE``.

The rate is the Rust engine's own (it captures, resamples and decodes to it), so
Python and Rust cannot come to disagree; every Python module takes it from here.
"""

try:
    from v2md._engine import SAMPLE_RATE
except ImportError as exc:  # a source tree nobody built: say what to do
    raise ImportError(f"the v2m audio engine is not built ({exc}): reinstall v2m") from exc

__all__ = ["SAMPLE_RATE"]
