"""The house, drawn from the code itself: every import between opref's modules (also the ones
inside functions) goes down the layer map of ../shared/STYLE.md or stays on its floor, there is
no circle, and no module but the case catalog's data is over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "opref"

# The floors, lowest first. A module may import from its own floor or any below it, never above.
FLOORS: dict[int, tuple[str, ...]] = {
    1: ("readings", "dtypes", "verdicts", "errors", "version", "limits", "escape"),
    2: ("geometry", "boundary", "model", "forms", "codec", "outdir", "reaper", "runtimes"),
    3: ("catalog", "cases", "phases", "reference", "direct", "frameworks", "tolerance", "formvalues"),
    4: ("vectors",),
    5: ("protocol", "suite"),
    6: ("pool", "worker", "judge", "expectations", "diagnose", "formdiagnose"),
    7: ("validate", "fuzz", "tensors", "gpu", "bench", "bench_shapes", "progress", "quantize"),
    8: ("report", "bugreport", "conformance"),
    9: ("cli", "__main__"),
}
LINE_LIMIT = 600
OVER_THE_LIMIT = {"opref/catalog.py"}  # the catalog's data
NOT_YET_MOVED: set[str] = set()


def floor_of(module: str) -> int:
    """The floor of ``opref.x.y`` by its top-level name below opref (``runtimes.ort`` -> runtimes)."""
    top = module.split(".")[1]
    for floor, names in FLOORS.items():
        if top in names:
            return floor
    raise KeyError(module)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` (a dotted import target) names or lies in."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """opref modules ``path`` imports anywhere in its body (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from opref import readings` names a module; `from opref.report import x`, a name
            # in the package (its __init__).
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target.startswith("opref"):
                mod = resolve(target, known)
                if mod and mod != here and mod != "opref":
                    found.add(mod)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) for name, path in known.items() if name != "opref"}


def test_every_module_has_a_floor():
    missing = [name for name in graph() if name != "opref" and not _has_floor(name)]
    assert not missing, f"modules not on the layer map of tests/test_layout.py: {missing}"


def _has_floor(name: str) -> bool:
    try:
        floor_of(name)
    except KeyError:
        return False
    return True


def test_no_import_goes_up_a_floor():
    up = [
        f"{mod} (floor {floor_of(mod)}) imports {dep} (floor {floor_of(dep)})"
        for mod, deps in graph().items()
        for dep in sorted(deps)
        if _has_floor(mod) and _has_floor(dep) and floor_of(dep) > floor_of(mod)
    ]
    assert not up, "\n".join(up)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_circle():
    # A package's __init__ and its submodules form one room: a submodule importing a sibling
    # through the package is not a circle of rooms.
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_a_house_of_its_own(path):
    rel = str(path.relative_to(ROOT))
    lines = len(path.read_text().splitlines())
    if rel in OVER_THE_LIMIT:
        return
    assert lines <= LINE_LIMIT, f"{rel} has {lines} lines (limit {LINE_LIMIT}): split it by job"


def test_scripts_are_entry_points():
    """scripts/*.py parse arguments and call package code; the library lives in opref/."""
    fat = {
        p.name: n
        for p in sorted((ROOT / "scripts").glob("*.py"))
        if (n := len(p.read_text().splitlines())) > 200 and p.name not in NOT_YET_MOVED
    }
    assert not fat, f"scripts with library code in them (lines): {fat}"
