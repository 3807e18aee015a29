"""The application identity the desktop portals know v2md by: its installed desktop file."""

from __future__ import annotations

import configparser

from test_packaging import installed, needs_meson  # noqa: F401 (installed is a fixture)

from v2md import BUS_NAME


@needs_meson
def test_the_desktop_file_is_installed_under_the_registered_app_id(installed):  # noqa: F811
    desktop = installed / "applications" / f"{BUS_NAME}.desktop"
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(desktop)
    entry = parser["Desktop Entry"]
    unit = (installed / "systemd" / "user" / "v2md.service").read_text()
    (exec_start,) = (
        line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")
    )
    # The daemon the unit runs: a launcher in libexec is on no PATH, so a bare name would not do.
    assert entry["Type"] == "Application" and entry["Exec"] == exec_start
    assert entry["Name"] and entry["Icon"]
    # A service, not something to launch from the menu.
    assert entry["NoDisplay"] == "true"
