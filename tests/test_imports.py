"""Module layering: no import circles between softbpr's modules (imports at module level, where
a circle makes the import order matter; imports inside functions are deliberate and lazy)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "softbpr"

# Modules that must stay out of every circle. (To be widened to the whole package once no
# module is in one.)
CHECKED = {"rundir", "checkpoint", "sweep", "report", "plots", "recommend", "split", "prepare",
           "data", "readers", "_version"}


def _module(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts) or "softbpr"


def _resolve(here: str, is_pkg: bool, level: int, target: str | None) -> str:
    base = here.split(".") if here != "softbpr" else []
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    name = ".".join([*base, *([target] if target else [])])
    return name or "softbpr"


def import_graph() -> dict[str, set[str]]:
    """module -> the softbpr modules it imports at module level (`from . import x` counts as
    importing x when x is a module, else the package)."""
    files = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.level:
                target = _resolve(mod, is_pkg, node.level, node.module)
                names = [f"{target}.{a.name}" if target != "softbpr" else a.name
                         for a in node.names]
                hits = [n for n in names if n in files] or [target]
                graph[mod].update(h for h in hits if h in files and h != mod)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in getattr(node, "names", []):
                    n = (node.module if isinstance(node, ast.ImportFrom) else a.name) or ""
                    if n.startswith("softbpr."):
                        graph[mod].add(n.removeprefix("softbpr."))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_circle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_relative_imports():
    g = import_graph()
    assert "data" in g["split"] and "readers" in g["split"]
    assert "_version" in g["checkpoint"]


def test_no_import_circles_through_these_modules():
    bad = [c for c in cycles(import_graph()) if c & CHECKED]
    assert not bad, f"import circles: {bad}"
    g = import_graph()
    assert "readers" not in g["data"]  # data.py is pure: readers build on it, not the reverse
    assert "softbpr" not in g["checkpoint"]  # the version comes from _version.py
