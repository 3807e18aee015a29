"""What `bash .ci/setup` needs before it starts, checked with the python3 it will use.

    python3 .ci/prereqs.py                     # one line per missing prerequisite, with the fix
    python3 .ci/prereqs.py externally-managed  # exit 0: this python3 refuses pip installs

Written for old Pythons too (3.7 on), so an old python3 gets the message, not a syntax error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUSTUP_INSTALL = (
    "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . ~/.cargo/env"
)


def _declared(path: str, pattern: str) -> tuple[int, ...]:
    """A minimum version as the project states it, once, where its own tool reads it."""
    with open(os.path.join(ROOT, path)) as f:
        found = re.search(pattern, f.read(), re.MULTILINE)
    if found is None:
        raise SystemExit(f"{path} states no minimum version ({pattern})")
    return tuple(int(part) for part in found.group(1).split("."))


def _text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def python_problem(version: tuple[int, ...]) -> str | None:
    needed = _declared("pyproject.toml", r'^requires-python\s*=\s*">=\s*([\d.]+)"')
    if version >= needed:
        return None
    python = f"python{_text(needed[:2])}"
    return (
        f"v2m needs Python >= {_text(needed)}, python3 is {_text(version)}: install {python} and "
        f"{python}-venv, then run setup in a venv of it: "
        f"{python} -m venv .venv && . .venv/bin/activate && bash .ci/setup"
    )


def rust_problem() -> str | None:
    """None when rustc and cargo on PATH are new enough to build the engine and its tests."""
    needed = _declared("engine/Cargo.toml", r'^rust-version\s*=\s*"([\d.]+)"')
    rustc, rustup = shutil.which("rustc"), shutil.which("rustup")
    if rustup is None:
        # Debian's and Ubuntu's own cargo is older; rustup installs into ~/.cargo/bin beside it.
        fix = RUSTUP_INSTALL
    elif rustc is None or os.path.dirname(rustc) == os.path.dirname(rustup):
        fix = "rustup update stable"
    else:
        fix = (
            f"rustup update stable, and put {os.path.dirname(rustup)} "
            f"before {os.path.dirname(rustc)} on PATH"
        )
    if rustc is None or shutil.which("cargo") is None:
        return f"v2m's audio engine needs Rust >= {_text(needed)}, no rustc or cargo on PATH: {fix}"
    out = subprocess.run([rustc, "--version"], stdout=subprocess.PIPE, text=True).stdout
    found = re.match(r"rustc (\d+)\.(\d+)\.(\d+)", out)
    if found is None:
        return f"{rustc} --version printed {out.strip()!r}, not a version: {fix}"
    version = tuple(int(part) for part in found.groups())
    if version >= needed:
        return None
    return f"v2m's audio engine needs Rust >= {_text(needed)}, {rustc} is {_text(version)}: {fix}"


def externally_managed(stdlib: str, in_venv: bool) -> bool:
    """PEP 668: pip refuses to install into a Python whose stdlib holds EXTERNALLY-MANAGED,
    unless it runs in a virtual environment."""
    return not in_venv and os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED"))


def main(argv: list[str]) -> int:
    if argv == ["externally-managed"]:
        in_venv = sys.prefix != sys.base_prefix
        return 0 if externally_managed(sysconfig.get_path("stdlib"), in_venv) else 1
    if argv:
        raise SystemExit(__doc__)
    problems = [p for p in (python_problem(sys.version_info[:3]), rust_problem()) if p]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
