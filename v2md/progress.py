"""Progress as a fraction that only grows: what FileProgress and ModelProgress pass on."""

from __future__ import annotations

from collections.abc import Callable


class Rising:
    """Passes on each fraction larger than the last one passed and short of 1, then 1
    once the work is done (``done``): a bar never moves back, and 1 always means done."""

    def __init__(self, report: Callable[[float], None]) -> None:
        self._report = report
        self._last = -1.0

    def __call__(self, fraction: float) -> None:
        if self._last < fraction < 1.0:
            self._last = fraction
            self._report(fraction)

    def done(self) -> None:
        self._report(1.0)
