"""The package's shape: no import cycle, every import goes down a layer.

The import graph is read from the source (every ``import`` and ``from ... import``,
including those inside functions and ``TYPE_CHECKING`` blocks: a cycle hidden in a
function is still a cycle).  Importing ``ecg_dicom.a.b`` also runs the package
``ecg_dicom.a``'s ``__init__``, so that edge is in the graph too.

Layers, bottom up (docs/architecture.md): foundation -> jobs -> results -> pages ->
model -> pipeline -> dicom -> worker -> web -> service -> train -> cli.  Nothing
``serve`` runs imports ``train/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "ecg_dicom"

#: Rank of each top-level part of the package; an import may go to an equal or lower rank.
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        ("ecg_dicom", "config", "errors", "records", "sop", "logs", "metrics",
         "durable", "startup", "audit", "progress"),
        0,
    ),
    "jobs": 1,
    "results": 2,
    "pages": 3,
    "model": 4,
    "pipeline": 5,
    "dicom": 6,
    "worker": 7,
    "remote": 7,
    "web": 8,
    "service": 9,
    "train": 10,
    "cli": 11,
    "__main__": 11,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imports_of(name: str) -> set[str]:
    """The ecg_dicom modules ``name`` imports (anywhere in its source)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = name.split(".") if is_package(name) else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # ``from pkg import mod`` imports the module; ``from mod import name`` the module.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                       for a in node.names]
        for target in targets:
            if not target.startswith("ecg_dicom"):
                continue
            while target not in MODULES:  # ``import ecg_dicom.a.b.Name`` and the like
                target = target.rsplit(".", 1)[0]
            found.add(target)
            # Python runs every parent package's __init__ first (not our own packages:
            # they are already being imported when we run).
            parts = target.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if not (name == parent or name.startswith(parent + ".")):
                    found.add(parent)
    found.discard(name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def layer(name: str) -> tuple[str, int]:
    part = name.split(".")[1] if "." in name else name
    return part, LAYERS[part]


def find_cycle() -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_is_read() -> None:
    # The reader must see the package as it is: if it missed imports, the tests below
    # could not fail.
    assert len(MODULES) > 30
    assert "ecg_dicom.pipeline" in GRAPH["ecg_dicom.worker"]
    assert "ecg_dicom.model" in GRAPH["ecg_dicom.pipeline"]


def test_no_import_cycle() -> None:
    cycle = find_cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_down_the_layers(name: str) -> None:
    part, rank = layer(name)
    upward = sorted(
        f"{target} ({layer(target)[0]})" for target in GRAPH[name] if layer(target)[1] > rank
    )
    assert not upward, f"{name} ({part}) imports from a higher layer: {upward}"


def test_serve_never_imports_training() -> None:
    seen: set[str] = set()
    todo = ["ecg_dicom.service", "ecg_dicom.worker"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(GRAPH[name])
    assert not sorted(n for n in seen if n.startswith("ecg_dicom.train")), (
        "the serve path imports training code"
    )


def test_public_faces_declare_all() -> None:
    for name in MODULES:
        if is_package(name) and name != "ecg_dicom":
            tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
            exported = {
                t.id for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)
            }
            assert "__all__" in exported, f"{name}/__init__.py has no __all__"


def test_modules_stay_short() -> None:
    """One job per module: none grows far beyond ~300 lines."""
    long = {
        name: n for name, path in MODULES.items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 340
    }
    assert not long, f"modules over 340 lines: {long}"
