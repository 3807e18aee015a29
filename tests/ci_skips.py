"""Under CI (``V2M_CI=1``, set by ``.ci/run``) a skipped test fails the run, unless its
reason is one the machine decides.

``.ci/setup`` installs every tool the tests use, so there a skip for a missing tool
means a missing install step, not a missing feature of the machine. Loaded by
``conftest.py``.
"""

from __future__ import annotations

import os

import pytest

# The skips CI accepts, by reason, and why: each depends on the machine, not on what
# .ci/setup installs. Every other skip in tests/ is for a tool that .ci/setup installs.
ALLOWED = {
    # Root reads any file: the refusal of an unreadable file is tested as a user.
    "root reads files whatever their mode": "CI runs as root",
    # Only root can give a file away: the refusal of another user's file is tested as root.
    "changing a file's owner needs root": "CI runs as a user",
    # The fallback from a GPU that fails to load is tested where there is no GPU to load.
    "needs a machine without CUDA": "the CI machine has a GPU",
}


def unexpected_skip(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """The reason of a skip CI does not accept; None for any other outcome, or outside CI."""
    if os.environ.get("V2M_CI") != "1" or not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)
    reason = reason.removeprefix("Skipped: ")
    return None if reason in ALLOWED else reason


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = unexpected_skip(report)
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI (V2M_CI=1), and tests/ci_skips.py does not allow it: {reason}\n"
            ".ci/setup should install what this test needs"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail(outcome.get_result())
