"""Imports point down the floors of docs/architecture.md.

Every module under diffupose/ is parsed with `ast` (module-level imports and the ones deferred
into functions alike; nothing is imported or run) and placed on a floor by `MODULE_FLOORS`. The
test fails on

- an import of a higher floor ("up");
- an import a floor is denied although it sits lower (`DENIED`, "sideways");
- a cycle of imports between modules ("cycle");
- an import of another module's private name, `from .x import _name` ("private").

What the package does today and should not is listed in `KNOWN_VIOLATIONS`; the test also
fails when a listed violation is gone, so the list only shrinks. A new module must be placed in
`MODULE_FLOORS` (the test names it); `geometry/` may import nothing above itself.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "diffupose"
ARCHITECTURE_DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

# Lowest first; the same floors, names and order as docs/architecture.md.
FLOORS: tuple[str, ...] = ("base", "geometry", "data", "model/diffusion", "inference", "training/evaluation",
                           "workbench", "cli")

# Module (dotted, relative to diffupose; "__init__" is the package itself) -> floor. A package
# name places all its modules; the longest matching name wins.
MODULE_FLOORS: dict[str, str] = {
    "errors": "base", "utils": "base",
    "geometry": "geometry",
    "data": "data",
    "model": "model/diffusion", "diffusion": "model/diffusion", "config": "model/diffusion",
    "inference": "inference",
    "training": "training/evaluation", "evaluation": "training/evaluation",
    "workbench": "workbench", "viz": "workbench", "lifting": "workbench",
    "cli": "cli", "__main__": "cli", "__init__": "cli",
}

# Module group (as in MODULE_FLOORS) or floor -> lower floors it may still not import.
DENIED: dict[str, tuple[str, ...]] = {
    # The model works on tensors and skeletons; dataset files and keypoint layouts are not its business.
    "model/diffusion": ("data",),
    # Figures draw arrays they are given; they do not run or score models.
    "viz": ("inference", "training/evaluation"),
}

# What the package does today and should not (issue 19). Remove an entry when it is fixed: the
# test fails while a listed violation no longer exists.
KNOWN_VIOLATIONS: frozenset[str] = frozenset()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "__init__"


def is_package(name: str) -> bool:
    return name == "__init__" or (PACKAGE_DIR / name.replace(".", "/") / "__init__.py").is_file()


def is_module(name: str) -> bool:
    return name == "__init__" or is_package(name) or (PACKAGE_DIR / (name.replace(".", "/") + ".py")).is_file()


def join(*parts: str) -> str:
    return ".".join(p for p in parts if p and p != "__init__") or "__init__"


def floor_of(name: str) -> str:
    key = group_of(name)
    return MODULE_FLOORS[key]


def group_of(name: str) -> str:
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in MODULE_FLOORS:
            return ".".join(parts[:k])
    raise KeyError(f"diffupose/{name.replace('.', '/')}: not placed on a floor; add it to MODULE_FLOORS "
                   f"(and to docs/architecture.md)")


def imports_of(name: str, path: Path) -> list[tuple[str, str | None]]:
    """(imported module, private name imported from it or None) for every import in the file."""
    if name == "__init__":
        package = "__init__"
    else:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0] or "__init__"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "diffupose" or alias.name.startswith("diffupose."):
                    out.append((alias.name.partition(".")[2] or "__init__", None))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package != "__init__" else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                base_name = join(".".join(base), node.module or "")
            elif node.module and (node.module == "diffupose" or node.module.startswith("diffupose.")):
                base_name = node.module.partition(".")[2] or "__init__"
            else:
                continue
            for alias in node.names:
                sub = join(base_name, alias.name)
                if alias.name != "*" and is_module(sub):
                    out.append((sub, None))
                else:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    out.append((base_name, alias.name if private else None))
    return out


def import_graph() -> dict[str, list[tuple[str, str | None]]]:
    return {module_name(p): imports_of(module_name(p), p) for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def violations(graph: dict[str, list[tuple[str, str | None]]]) -> set[str]:
    out = set()
    edges: dict[str, set[str]] = {}
    for src, imports in graph.items():
        for dst, private in imports:
            if dst == src:
                continue
            edges.setdefault(src, set()).add(dst)
            src_floor, dst_floor = floor_of(src), floor_of(dst)
            denied = DENIED.get(group_of(src), ()) + DENIED.get(src_floor, ())
            if FLOORS.index(dst_floor) > FLOORS.index(src_floor):
                out.add(f"up: {src} -> {dst}")
            elif dst_floor in denied:
                out.add(f"sideways: {src} -> {dst}")
            if private is not None:
                out.add(f"private: {src} -> {dst}.{private}")
    for component in cycles(edges):
        out.add("cycle: " + " <-> ".join(component))
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_module_sits_on_a_known_floor(graph):
    assert set(MODULE_FLOORS.values()) <= set(FLOORS)
    unplaced = []
    for name in graph:
        try:
            floor_of(name)
        except KeyError as e:
            unplaced.append(str(e))
    assert not unplaced, "\n".join(unplaced)


def test_imports_point_down_the_floors(graph):
    new = sorted(violations(graph) - KNOWN_VIOLATIONS)
    assert not new, ("imports against docs/architecture.md (move the code to the floor it needs, or "
                     "list the import in KNOWN_VIOLATIONS with the reason):\n" + "\n".join(new))


def test_known_violations_still_exist(graph):
    gone = sorted(KNOWN_VIOLATIONS - violations(graph))
    assert not gone, "fixed, remove from KNOWN_VIOLATIONS:\n" + "\n".join(gone)


def test_geometry_imports_nothing_above_itself(graph):
    allowed = {"base", "geometry"}
    bad = [f"{src} -> {dst}" for src, imports in graph.items() if group_of(src) == "geometry"
           for dst, _ in imports if floor_of(dst) not in allowed]
    assert not bad, bad
    assert not [v for v in KNOWN_VIOLATIONS if v.split(": ", 1)[1].startswith("geometry")]


def test_the_checker_sees_what_it_should(tmp_path, monkeypatch):
    """The parser resolves relative, deferred and package imports and private names (a self-check
    on this file's logic, on the package and on a made-up module)."""
    graph = import_graph()
    assert ("inference.metrics", None) in graph["evaluation.protocols"]   # from ..inference import metrics
    assert ("inference.lifter", None) in graph["evaluation.scoring"]      # from ..inference.lifter import ...
    assert ("training.state", None) in graph["training.loop"]             # from .state import ... (subpackage)
    made_up = tmp_path / "made_up.py"
    made_up.write_text("from .evaluation.protocols import _private, evaluate\nfrom .inference import metrics\n"
                       "def f():\n    from .viz import curves\n")
    found = imports_of("made_up", made_up)
    assert {("evaluation.protocols", "_private"), ("evaluation.protocols", None), ("inference.metrics", None),
            ("viz.curves", None)} <= set(found)
    monkeypatch.setitem(MODULE_FLOORS, "made_up", "training/evaluation")
    assert violations({"made_up": found}) == {"private: made_up -> evaluation.protocols._private",
                                              "up: made_up -> viz.curves"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_floors_are_the_documented_ones():
    text = ARCHITECTURE_DOC.read_text()
    missing = [f for f in FLOORS if f"`{f}`" not in text]
    assert not missing, f"docs/architecture.md does not name the floors {missing}"
