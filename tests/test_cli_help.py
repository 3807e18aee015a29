"""Every command's --help reads as plain text, not as the docstring markup it comes from."""

from __future__ import annotations

import pytest

from v2md import ctl, daemon, demo


@pytest.mark.parametrize(
    ("main", "args", "says"),
    [
        (ctl.main, ["--help"], "v2mctl: a thin command-line client over the org.v2m.Dictation"),
        (ctl.main, ["devices", "--help"], "usage: v2mctl devices"),
        (daemon.main, ["--help"], "v2m dictation daemon"),
        (demo.main, ["--help"], "v2m-demo: dictate the bundled sample speech"),
    ],
)
def test_help_is_plain_text(capsys, main, args, says):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal width
    assert says in shown
    assert "`" not in shown and ":mod:" not in shown
