"""The package's shape holds (issue 12): no private reach across parts, small rooms, no import cycle.

import-linter (``make check``) holds the layers and the edge's imports; these
checks cover what its contracts do not express.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import pumpops

SRC = Path(pumpops.__file__).resolve().parent
MAX_LINES = 600


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def _imports(path: Path, *, module_level_only: bool) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.If) and module_level_only:
            continue  # `if TYPE_CHECKING:` blocks are not imports at run time
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def test_no_part_imports_another_parts_underscore_module() -> None:
    reach = []
    for module, path in _modules():
        own = _part(module)
        for line, target in _imports(path, module_level_only=False):
            pieces = target.split(".")
            if pieces[0] != "pumpops" or len(pieces) < 3 or pieces[1] == own:
                continue
            private = pieces[2].startswith("_") and not pieces[2].startswith("__")
            exists = (SRC / pieces[1] / f"{pieces[2]}.py").exists() or (SRC / pieces[1] / pieces[2]).is_dir()
            if private and exists:
                reach.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    assert reach == []


def test_no_source_file_is_over_600_lines() -> None:
    big = [
        f"{path.relative_to(SRC)}: {n} lines"
        for _, path in _modules()
        if "migrations" not in path.parts and (n := len(path.read_text("utf-8").splitlines())) > MAX_LINES
    ]
    assert big == []


def test_no_import_cycle_at_module_level() -> None:
    known = dict(_modules())
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        targets = set()
        for _, imported in _imports(path, module_level_only=True):
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                targets.add(target)
        graph[module] = targets
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
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
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []


@pytest.mark.parametrize("package", sorted({_part(m) for m, _ in _modules() if _part(m)}))
def test_every_module_says_what_it_owns(package: str) -> None:
    silent = [
        str(path.relative_to(SRC))
        for module, path in _modules()
        if _part(module) == package
        and "migrations" not in path.parts
        and ast.get_docstring(ast.parse(path.read_text("utf-8"))) is None
    ]
    assert silent == []
