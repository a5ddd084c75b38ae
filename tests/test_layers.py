"""The package's rooms and their order: every import, read with ``ast`` (function-local and
``TYPE_CHECKING`` imports included), goes down or stays in its room; no circle between
rooms; no private name or private module of another room.

The order is the one ``enphase_battery/__init__.py`` describes.  Rooms on the same rung
(``statistics`` and ``quota``, ``live`` and ``reconcile``) may not import each other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "enphase_battery"

#: Room -> rung, from the bottom up.
RUNGS: dict[str, int] = {
    "util": 0,
    "exceptions": 1,
    "models": 2,
    "statistics": 3,
    "quota": 3,
    "http": 4,
    "auth": 5,
    "live": 6,
    "reconcile": 6,
    "client": 7,
    "store": 8,
    "postgres": 9,
    "poll": 10,
    "simulator": 11,
    # Intervals into databases (stream --out URL, serve): above the pollers, below the CLI.
    "sinks": 11,
    "cli": 12,
    # The package's own __init__ (its public names) and ``python -m enphase_battery``.
    "__init__": 13,
    "__main__": 13,
}


@attrs.frozen
class Edge:
    """One import of one module of the package by another."""

    source: str  # dotted module name of the importer
    target: str  # dotted module name imported (or imported from)
    names: tuple[str, ...]  # names taken from ``target`` (empty for ``import target``)
    line: int

    def __str__(self) -> str:
        names = f" ({', '.join(self.names)})" if self.names else ""
        return f"{self.source}:{self.line} imports {self.target}{names}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def edges(root: Path = PACKAGE) -> Iterator[Edge]:
    """Every import of the package by the package, at any depth of the code."""
    top = root.name
    for path in sorted(root.rglob("*.py")):
        source = module_name(path, root)
        is_package = path.name == "__init__.py"
        base = source.split(".") if is_package else source.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base[: len(base) - (node.level - 1)]
                    target = ".".join([*anchor, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                if target == top or target.startswith(top + "."):
                    # ``from enphase_battery.simulator import admin``: the submodule itself.
                    base_dir = root.parent.joinpath(*target.split("."))
                    names = []
                    for alias in node.names:
                        sub = base_dir / alias.name
                        if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
                            yield Edge(source, f"{target}.{alias.name}", (), node.lineno)
                        else:
                            names.append(alias.name)
                    if names or not node.names:
                        yield Edge(source, target, tuple(names), node.lineno)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == top or alias.name.startswith(top + "."):
                        yield Edge(source, alias.name, (), node.lineno)


def room(module: str) -> str:
    """``enphase_battery.poll.engine`` -> ``poll``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward(edge: Edge) -> bool:
    # ``from enphase_battery import util`` is already an edge to the room (see edges()).
    here, there = room(edge.source), room(edge.target)
    return here != there and RUNGS[there] >= RUNGS[here]


def private_reach(edge: Edge) -> bool:
    """A private module or name of another room."""
    if room(edge.source) == room(edge.target):
        return False
    path = edge.target.split(".")[1:]
    return any(part.startswith("_") and not part.startswith("__") for part in path) or any(
        name.startswith("_") for name in edge.names
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def room_graph(all_edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in all_edges:
        here, there = room(edge.source), room(edge.target)
        if here != there and there != "__init__":
            graph.setdefault(here, set()).add(there)
    return graph


ALL_EDGES = list(edges())


def test_every_room_has_a_rung() -> None:
    rooms = {room(module_name(p, PACKAGE)) for p in PACKAGE.rglob("*.py")}
    assert rooms <= set(RUNGS), f"rooms without a rung in RUNGS: {sorted(rooms - set(RUNGS))}"


def test_the_package_top_holds_at_most_sixteen_rooms() -> None:
    # Issue 19 asked for "about 15"; issue 20's sinks (with the exporter inside it) is
    # the sixteenth.  A seventeenth should make two rooms one instead.
    entries = {
        p.stem
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists()) and not p.name.startswith("__")
    }
    assert len(entries) <= 16, sorted(entries)


def test_no_room_imports_a_higher_one() -> None:
    bad = [str(e) for e in ALL_EDGES if upward(e)]
    assert not bad, "imports that go up a rung:\n" + "\n".join(bad)


def test_no_circle_between_rooms() -> None:
    assert cycles(room_graph(ALL_EDGES)) == []


def test_no_private_name_or_module_of_another_room() -> None:
    bad = [str(e) for e in ALL_EDGES if private_reach(e)]
    assert not bad, "private names reached across rooms:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "target", "names", "rule"),
    [
        # What the flat layout had, and each rule catches.
        ("enphase_battery.store.checkpoint", "enphase_battery.postgres", ("X",), upward),
        ("enphase_battery.client.client", "enphase_battery.poll.poller", (), upward),
        ("enphase_battery.live.now", "enphase_battery.reconcile", (), upward),
        ("enphase_battery.http.calls", "enphase_battery.models._converter", ("c",), private_reach),
        ("enphase_battery.cli.stream", "enphase_battery.poll.front", ("_hidden",), private_reach),
    ],
)
def test_the_rules_catch_what_they_name(
    source: str, target: str, names: tuple[str, ...], rule: object
) -> None:
    assert rule(Edge(source, target, names, 1))  # type: ignore[operator]


def test_a_circle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
