"""The house rules that a reader of the code relies on, checked on the source itself: imports flow
one way (no cycle, also through imports inside functions or type-only ones), no module imports another's private
(``_name``) objects, and the tests use only public names of roarkar's modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "roarkar"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(tree: ast.AST):
    """Every import statement, also those under ``if TYPE_CHECKING:``: two modules that need each
    other's types are as entangled as two that call each other (move the type to the lower one)."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for name, path in mods.items():
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            elif node.module and node.module.startswith("roarkar"):
                targets = [(node.module, a.name) for a in node.names]
            else:
                continue
            for module, obj in targets:
                full = f"{module}.{obj}" if obj else module
                target = full if full in mods else module
                if target in mods and target != name:
                    edges[name].add(target)
                if obj and obj.startswith("_") and not obj.startswith("__"):
                    private.append((name, full))
    return edges, private


def test_no_import_cycle_between_modules():
    edges, _ = _graph()
    packages = {m for m, p in _modules().items() if p.name == "__init__.py"}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node] - packages):  # a package's __init__ only re-exports
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for module in sorted(set(edges) - packages):
        if module not in state:
            visit(module, [])
    assert cycles == [], f"import cycles: {cycles}"


def test_no_private_name_is_imported_across_modules():
    _, private = _graph()
    assert private == [], f"private names imported from another module: {private}"


TESTS = Path(__file__).resolve().parents[1]


def _private_uses_in_tests() -> list[str]:
    """``from roarkar... import _name`` and ``<roarkar module>._name`` in tests/: names bound to a
    roarkar module by ``import roarkar.x as m`` or ``from roarkar.x import m`` (m a module), then
    ``m._attr`` anywhere in the file, also ``m._a._b`` chains and ``monkeypatch.setattr(m, "_x")``."""
    mods = _modules()
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text())
        aliases: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("roarkar") and a.asname:
                        aliases.add(a.asname)
                    elif a.name.startswith("roarkar"):
                        aliases.add(a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("roarkar"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        found.append(f"{path.name}:{node.lineno} imports {node.module}.{a.name}")
                    if f"{node.module}.{a.name}" in mods:
                        aliases.add(a.asname or a.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                if node.attr.startswith("__"):
                    continue
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in aliases:
                    found.append(f"{path.name}:{node.lineno} reads {ast.unparse(node)}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("setattr", "setitem", "delattr")
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in aliases
                and isinstance(node.args[1], ast.Constant)
                and str(node.args[1].value).startswith("_")
            ):
                found.append(
                    f"{path.name}:{node.lineno} patches {node.args[0].id}.{node.args[1].value}"
                )
    return found


def test_tests_use_no_private_name_of_roarkar():
    found = _private_uses_in_tests()
    assert found == [], "tests reach into private names of roarkar modules:\n" + "\n".join(found)
