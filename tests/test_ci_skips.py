"""The CI skip check (tests/ci_skips.py), run on tests of its own through pytester."""

from __future__ import annotations

import pytest

SKIPPING = """
import pytest

def test_needs_a_tool():
    pytest.skip("frobnicator is not installed")

@pytest.mark.skipif(True, reason="needs a machine without CUDA")
def test_depends_on_the_machine():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False
"""


MODULE_SKIP = """
import pytest

pytest.skip("no gizmo", allow_module_level=True)
"""


def run(pytester):
    # pytest-asyncio is of no use here, and warns about a setting the inner run lacks.
    return pytester.runpytest(
        "-p", "ci_skips", "-p", "no:asyncio", "--continue-on-collection-errors"
    )


def test_under_ci_a_skip_not_allowed_fails_the_run(pytester, monkeypatch):
    monkeypatch.setenv("V2M_CI", "1")
    pytester.makepyfile(test_skipping=SKIPPING, test_module=MODULE_SKIP)
    result = run(pytester)
    result.assert_outcomes(failed=1, skipped=1, xfailed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*skipped under CI (V2M_CI=1)*: no gizmo",
            "*skipped under CI (V2M_CI=1)*: frobnicator is not installed",
        ],
        consecutive=False,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_outside_ci_a_skip_is_only_a_skip(pytester, monkeypatch):
    monkeypatch.delenv("V2M_CI", raising=False)
    pytester.makepyfile(test_skipping=SKIPPING, test_module=MODULE_SKIP)
    result = run(pytester)
    result.assert_outcomes(skipped=3, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
