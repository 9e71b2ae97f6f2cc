"""The package's import structure: data flows one way, and no module reaches into another's private names.

The import graph is read from the source with ``ast``: every ``import`` and
``from ... import`` anywhere in a module (inside functions and
``TYPE_CHECKING`` blocks too), relative ones resolved. An edge goes to the
module an import names; the parent packages Python initialises on the way
are not edges of their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

LEVER = Path(__file__).resolve().parent.parent / "lever"



def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def read_package(root: Path) -> dict[str, tuple[ast.Module, bool]]:
    """Module name → (syntax tree, is a package) for every ``.py`` file under ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = (ast.parse(path.read_text(), filename=str(path)), is_package)
    return modules


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _known(name: str, modules) -> str | None:
    """The longest prefix of the dotted ``name`` that is one of ``modules``."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def analyse(modules) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """The import graph (module → modules it imports) and every (importer, owner, private name) use."""
    graph = {name: set() for name in modules}
    private = []
    for importer, (tree, is_package) in modules.items():
        aliases = {}  # local name -> the lever module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _known(alias.name, modules)
                    if target is None:
                        continue
                    graph[importer].add(target)
                    if alias.asname:
                        aliases[alias.asname] = target
                    else:
                        aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(importer, is_package, node.level, node.module)
                if _known(base, modules) != base:
                    continue
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in modules:
                        graph[importer].add(submodule)
                        aliases[alias.asname or alias.name] = submodule
                        continue
                    graph[importer].add(base)
                    if _is_private(alias.name) and base != importer:
                        private.append((importer, base, alias.name))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                owner = _dotted(node.value, aliases)
                if owner in modules and owner != importer:
                    private.append((importer, owner, node.attr))
    for importer in graph:
        graph[importer].discard(importer)
    return graph, private


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``a.b.c`` of a chain of attribute accesses on a name bound to a module, with the alias resolved."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

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
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_lever_has_no_import_cycle():
    graph, _ = analyse(read_package(LEVER))
    assert "lever.search" in graph["lever"] and graph["lever.compose"]  # the graph was really read
    assert cycles(graph) == []


def test_no_module_uses_another_modules_private_names():
    _, private = analyse(read_package(LEVER))
    offenders = sorted(set(private))
    assert offenders == [], "private names used across modules:\n  " + "\n  ".join(
        f"{importer} uses {owner}.{name}" for importer, owner, name in offenders)


def test_upper_layers_stay_above_the_ones_they_use():
    graph, _ = analyse(read_package(LEVER))

    def reaches(source: str, target: str) -> bool:
        seen, todo = set(), [source]
        while todo:
            node = todo.pop()
            if node == target:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph[node])
        return False

    worlds = [m for m in graph if m.startswith("lever.worlds")]
    assert {"lever.worlds.grid", "lever.worlds.tabular", "lever.worlds.gymnasium_import"} <= set(worlds)
    for lower in worlds:  # the worlds layer sits on the kernels, below everything that uses a world
        for upper in ("lever.evaluation", "lever.training", "lever.compose", "lever.embeddings", "lever.library"):
            assert not reaches(lower, upper), f"{lower} imports {upper}, directly or not"
    for lower, upper in (("lever.compose", "lever.search"), ("lever.compose", "lever.strategies"),
                         ("lever.library.store", "lever.library.build"), ("lever.search", "lever.sweep"),
                         ("lever.sweep.table", "lever.report"), ("lever.report", "lever.cli")):
        assert not reaches(lower, upper), f"{lower} imports {upper}, directly or not"


def test_the_checks_see_function_level_relative_and_attribute_uses(tmp_path):
    package = tmp_path / "lever"
    (package / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "",
        "a.py": "def f():\n    from .b import g\n    return g\n",
        "b.py": "from .a import _hidden\ng = 1\n",
        "c.py": "import lever.b as bee\nfrom . import a\nx = bee._secret + a._other\n",
        "sub/__init__.py": "from .d import y\n",
        "sub/d.py": "from .. import c\nfrom . import y as _y\ny = 0\n",
    }
    for name, text in sources.items():
        (package / name).write_text(text)
    graph, private = analyse(read_package(package))
    assert cycles(graph) == [["lever.a", "lever.b"], ["lever.sub", "lever.sub.d"]]
    assert graph["lever.sub.d"] == {"lever.c", "lever.sub"}
    assert sorted(private) == [("lever.b", "lever.a", "_hidden"), ("lever.c", "lever.a", "_other"),
                               ("lever.c", "lever.b", "_secret")]
