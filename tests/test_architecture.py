"""ARCHITECTURE.md's table of rooms holds: every module of v2md/ is in a room, and no module
imports a room of a layer above its own (imports point from the bus inward)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "v2md"


def layers() -> dict[str, int]:
    """Room (a dotted module or package name) → layer number, from ARCHITECTURE.md."""
    rooms: dict[str, int] = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        row = re.match(r"\| (\d+) [^|]+\| ([^|]+) \|", line)
        if row:
            for room in re.findall(r"`([\w.]+)`", row.group(2)):
                rooms[room] = int(row.group(1))
    return rooms


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The v2md modules ``path`` imports, wherever in the file (functions and TYPE_CHECKING
    blocks too): ``from v2md.x import y`` names v2md.x.y when that is a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "v2md" or name.startswith("v2md.")}


def room_of(name: str, rooms: dict[str, int]) -> str | None:
    """The longest room that is ``name`` or holds it."""
    while name:
        if name in rooms:
            return name
        name = name.rpartition(".")[0]
    return None


def test_the_table_lists_rooms_in_six_layers():
    rooms = layers()
    assert set(rooms.values()) == set(range(1, 7))
    assert {"v2md.daemon", "v2md.workflow", "v2md.asr", "v2md.config"} <= rooms.keys()


def test_every_module_is_in_a_room():
    rooms = layers()
    homeless = [
        module_name(path) for path in PACKAGE.rglob("*.py") if not room_of(module_name(path), rooms)
    ]
    assert not homeless, f"not in ARCHITECTURE.md's table: {homeless}"


def outward(path: Path, name: str, rooms: dict[str, int]) -> list[str]:
    """The imports of module ``name`` (its source at ``path``) that point to a layer above."""
    layer = rooms[room_of(name, rooms)]
    wrong = []
    for target in sorted(imported(path)):
        room = room_of(target, rooms)
        # A name imported from a module (a class, a function) lies in that module's room.
        if room is not None and rooms[room] < layer:
            wrong.append(f"{name} (layer {layer}) imports {target} (layer {rooms[room]})")
    return wrong


def test_imports_point_from_the_bus_inward():
    rooms = layers()
    wrong = [
        line
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in outward(path, module_name(path), rooms)
    ]
    assert not wrong, "\n".join(wrong)


def test_a_feature_that_imports_the_workflow_or_the_bus_is_caught(tmp_path):
    stray = tmp_path / "stray.py"
    stray.write_text(
        "from v2md.config import Config\n"
        "def later():\n"
        "    from v2md.service import DictationService\n"
        "    import v2md.workflow\n"
    )
    assert outward(stray, "v2md.asr.stray", layers()) == [
        "v2md.asr.stray (layer 4) imports v2md.service (layer 1)",
        "v2md.asr.stray (layer 4) imports v2md.service.DictationService (layer 1)",
        "v2md.asr.stray (layer 4) imports v2md.workflow (layer 2)",
    ]
