"""What the commands print: plain text, not docstring markup, claiming only what was checked."""

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


def test_the_device_list_does_not_claim_a_device_opens_and_leaves_stderr_to_errors(capsys):
    ctl.print_devices(["default", "pipewire"])
    shown = capsys.readouterr()
    assert shown.out == "default\npipewire\n" and shown.err == ""  # one name a line, for scripts
    ctl.print_devices([])
    assert capsys.readouterr() == ("", "v2mctl: no capture devices found\n")  # no name to read
    with pytest.raises(SystemExit):
        ctl.main(["--help"])
    assert "not opened to check them" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        ctl.main(["devices", "--help"])
    assert "whether the configured one opens" in " ".join(capsys.readouterr().out.split())


def test_the_history_says_when_there_is_none():
    assert ctl.history_lines([]) == ["no dictations in the history yet"]
    (line,) = ctl.history_lines([(1_700_000_000_000, "raw words", "")])
    assert line.endswith("  raw words")
    (line,) = ctl.history_lines([(1_700_000_000_000, "raw words", "Refined words.")])
    assert line.endswith("  Refined words.")
