"""Imports point down the floors of docs/architecture.md.

Every module under diffupose/ is parsed with `ast` (module-level imports and the ones deferred
into functions alike; nothing is imported or run) and placed on a floor by `MODULE_FLOORS`. The
test fails on

- an import of a higher floor ("up");
- an import a floor is denied although it sits lower (`DENIED`, "sideways");
- a cycle of imports between modules ("cycle");
- a cycle between sub-packages ("package cycle"): `training` importing `evaluation` while
  `evaluation` imports `training` is a loop even when no two modules import each other, so the
  sub-packages (and the top-level modules) depend one way too;
- an import of another module's private name, `from .x import _name` ("private").

Imports deferred into functions are listed with their reason in docs/architecture.md ("Deferred
imports", `importer -> imported: why`); the test fails on one that is not listed and on a listed
one that no longer exists.

What the package does today and should not is listed in `KNOWN_VIOLATIONS`; the test also
fails when a listed violation is gone, so the list only shrinks. A new module must be placed in
`MODULE_FLOORS` (the test names it); `geometry/` may import nothing above itself.
"""
from __future__ import annotations

import ast
import re
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


def package_name(name: str, path: Path) -> str:
    """The package a module's relative imports start from."""
    if name == "__init__":
        return "__init__"
    return name if path.name == "__init__.py" else name.rpartition(".")[0] or "__init__"


def resolve_import(node: ast.Import | ast.ImportFrom, package: str) -> list[tuple[str, str | None]]:
    """(imported module, private name imported from it or None) of one import of the package's
    own modules; [] for a library."""
    out = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "diffupose" or alias.name.startswith("diffupose."):
                out.append((alias.name.partition(".")[2] or "__init__", None))
        return out
    if node.level:
        base = package.split(".") if package != "__init__" else []
        base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
        base_name = join(".".join(base), node.module or "")
    elif node.module and (node.module == "diffupose" or node.module.startswith("diffupose.")):
        base_name = node.module.partition(".")[2] or "__init__"
    else:
        return out
    for alias in node.names:
        sub = join(base_name, alias.name)
        if alias.name != "*" and is_module(sub):
            out.append((sub, None))
        else:
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            out.append((base_name, alias.name if private else None))
    return out


def imports_of(name: str, path: Path) -> list[tuple[str, str | None]]:
    """(imported module, private name imported from it or None) for every import in the file."""
    package = package_name(name, path)
    return [found for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, (ast.Import, ast.ImportFrom)) for found in resolve_import(node, package)]


def deferred_imports_of(name: str, path: Path) -> set[tuple[str, str]]:
    """(importer, imported) for every import inside a function: `imported` is a module of the
    package (dotted, relative to diffupose) or a library's top-level name."""
    package, out = package_name(name, path), set()
    for fn in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                own = resolve_import(node, package)
                if own:
                    out |= {(name, module) for module, _ in own}
                elif isinstance(node, ast.Import):
                    out |= {(name, alias.name.split(".")[0]) for alias in node.names}
                else:
                    out.add((name, node.module.split(".")[0]))
    return out


def deferred_imports() -> set[tuple[str, str]]:
    return {found for p in sorted(PACKAGE_DIR.rglob("*.py")) for found in deferred_imports_of(module_name(p), p)}


_DEFERRED_ENTRY = re.compile(r"^- ((?:`[\w.]+ -> [\w.*]+`(?:, )?)+): \S")


def documented_deferred(text: str) -> set[tuple[str, str]]:
    """The (importer, imported) pairs of the "Deferred imports" section of docs/architecture.md:
    bullets `- `importer -> imported`[, ...]: why`, names relative to diffupose (a package
    covers its modules), `*` for anything."""
    section = text.split("\n## Deferred imports\n", 1)[1].split("\n## ", 1)[0]
    bullets: list[str] = []
    for line in section.splitlines():
        if line.startswith("- "):
            bullets.append(line)
        elif line.startswith("  ") and bullets:        # a bullet's continuation line
            bullets[-1] += " " + line.strip()
    entries = set()
    for bullet in bullets:
        m = _DEFERRED_ENTRY.match(bullet)
        if m:
            entries |= set(re.findall(r"`([\w.]+) -> ([\w.*]+)`", m[1]))
    return entries


def covers(entry: tuple[str, str], found: tuple[str, str]) -> bool:
    (importer, imported), (src, dst) = entry, found
    return ((src == importer or src.startswith(importer + "."))
            and (imported == "*" or dst == imported or dst.startswith(imported + ".")))


def undocumented(found: set[tuple[str, str]], entries: set[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(deferred imports no entry covers, entries that cover none), as `importer -> imported`."""
    missing = sorted(f"{a} -> {b}" for a, b in found if not any(covers(e, (a, b)) for e in entries))
    stale = sorted(f"{a} -> {b}" for a, b in entries if not any(covers((a, b), f) for f in found))
    return missing, stale


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
    for component in cycles(package_edges(edges)):
        out.add("package cycle: " + " <-> ".join(component))
    return out


def package_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Module imports -> imports between the sub-packages and top-level modules (MODULE_FLOORS'
    groups) that hold them."""
    out: dict[str, set[str]] = {}
    for src, dsts in edges.items():
        for dst in dsts:
            if group_of(src) != group_of(dst):
                out.setdefault(group_of(src), set()).add(group_of(dst))
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
    assert ("evaluation.metrics", None) in graph["evaluation.protocols"]  # from . import metrics
    assert ("inference.lifter", None) in graph["evaluation.scoring"]      # from ..inference.lifter import ...
    assert ("training.state", None) in graph["training.loop"]             # from .state import ... (subpackage)
    made_up = tmp_path / "made_up.py"
    made_up.write_text("from .evaluation.protocols import _private, evaluate\nfrom .inference import lifter\n"
                       "def f():\n    from .viz import curves\n    import plotly.io\n")
    found = imports_of("made_up", made_up)
    assert {("evaluation.protocols", "_private"), ("evaluation.protocols", None), ("inference.lifter", None),
            ("viz.curves", None)} <= set(found)
    assert deferred_imports_of("made_up", made_up) == {("made_up", "viz.curves"), ("made_up", "plotly")}
    monkeypatch.setitem(MODULE_FLOORS, "made_up", "training/evaluation")
    assert violations({"made_up": found}) == {"private: made_up -> evaluation.protocols._private",
                                              "up: made_up -> viz.curves"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_floors_are_the_documented_ones():
    text = ARCHITECTURE_DOC.read_text()
    missing = [f for f in FLOORS if f"`{f}`" not in text]
    assert not missing, f"docs/architecture.md does not name the floors {missing}"


def test_packages_depend_one_way(graph):
    edges = {src: {dst for dst, _ in imports if dst != src} for src, imports in graph.items()}
    loops = cycles(package_edges(edges))
    assert not loops, "sub-packages importing each other: " + "; ".join(" <-> ".join(c) for c in loops)


def _plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_package_loop_fails_the_check(tmp_path, monkeypatch):
    """training/loop.py imports evaluation/scoring.py and evaluation/ablations.py imports
    training/state.py: no two modules import each other, yet the packages loop (as they did
    before the ablations moved). The check names it; with ablations moved up to the workbench
    floor it passes."""
    root = tmp_path / "diffupose"
    _plant(root, {"__init__.py": "", "training/__init__.py": "", "training/state.py": "",
                  "training/loop.py": "from ..evaluation.scoring import score\n",
                  "evaluation/__init__.py": "", "evaluation/scoring.py": "def score():\n    pass\n",
                  "evaluation/ablations.py": "from ..training.state import RunState\n",
                  "workbench/__init__.py": ""})
    monkeypatch.setitem(globals(), "PACKAGE_DIR", root)
    found = violations(import_graph())
    assert found == {"package cycle: evaluation <-> training"}, found
    (root / "evaluation" / "ablations.py").rename(root / "workbench" / "ablations.py")
    assert violations(import_graph()) == set()


def test_deferred_imports_are_the_documented_ones():
    missing, stale = undocumented(deferred_imports(), documented_deferred(ARCHITECTURE_DOC.read_text()))
    assert not missing, ("imports inside functions that docs/architecture.md (\"Deferred imports\") does not "
                         "list: move them to the top of the file, or list them with the reason:\n" + "\n".join(missing))
    assert not stale, "listed in docs/architecture.md but no longer deferred; remove:\n" + "\n".join(stale)


def test_the_deferred_import_check_sees_an_unlisted_one(tmp_path, monkeypatch):
    root = tmp_path / "diffupose"
    _plant(root, {"__init__.py": "", "viz/__init__.py": "", "workbench/__init__.py": "",
                  "workbench/progress.py": "def emit():\n    pass\n",
                  "viz/curves.py": "def kaleido_available():\n    from ..workbench.progress import emit\n"
                                   "    import plotly.io\n"})
    monkeypatch.setitem(globals(), "PACKAGE_DIR", root)
    entries = documented_deferred("# A\n\n## Deferred imports\n\n- `viz -> plotly`,\n  `viz -> kaleido`: heavy\n"
                                  "- `cli -> *`: gone\n\n## Next\n- `viz -> workbench`: not this section\n")
    assert entries == {("viz", "plotly"), ("viz", "kaleido"), ("cli", "*")}
    assert undocumented(deferred_imports(), entries) == (["viz.curves -> workbench.progress"],
                                                         ["cli -> *", "viz -> kaleido"])
