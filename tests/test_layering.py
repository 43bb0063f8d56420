"""The product's import graph, read from the source (ast, nothing imported): no cycle, and the layers
DESIGN.md draws (fitting/ and store/ never import cluster/, training/ or the CLI; store/ never imports
torch; only cluster/ and training/ import ray; fitting's parts build on each other in one order).

Imports inside functions count: they hide a cycle from Python, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# package -> folder, as pyproject's package-dir maps them
ROOTS = {
    "spinfits.fitting": REPO / "fitting",
    "spinfits.store": REPO / "store",
    "spinfits.cluster": REPO / "cluster",
    "spinfits.training": REPO / "training",
    "spinfits": REPO / "spinfits",
}
# fitting's parts, each importing only those before it (converters/synthetic: data the fitter never loads)
FITTING_ORDER = ["body", "data", "smplify", "offline", "evaluation"]


def product_modules() -> dict[str, Path]:
    modules = {}
    for package, folder in ROOTS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            modules.setdefault(name, path)
    return modules


def imports_of(path: Path, name: str, is_package: bool) -> set[str]:
    """Every module ``name`` imports (absolute names), top-level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = product_modules()
    edges = {}
    for name, path in modules.items():
        targets = imports_of(path, name, path.name == "__init__.py")
        edges[name] = {t for t in targets if t in modules and t != name} | {
            t for t in targets if not t.startswith("spinfits")
        }
    return edges


def internal(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    return {name: {t for t in targets if t in edges} for name, targets in edges.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def module_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Module-to-module edges, a package's ``__init__`` left out (its lazy exports name everything)."""
    inits = {name for name, path in product_modules().items() if path.name == "__init__.py"}
    return {
        n: {t for t in targets if t not in inits} for n, targets in internal(graph).items() if n not in inits
    }


def test_no_import_cycle(graph):
    cycle = find_cycle(module_edges(graph))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def violations(graph, source_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        if name == source_prefix or name.startswith(source_prefix + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )


@pytest.mark.parametrize("package", ["spinfits.fitting", "spinfits.store"])
def test_fitting_and_store_stay_below_cluster_training_and_cli(graph, package):
    assert violations(graph, package, ("spinfits.cluster", "spinfits.training", "spinfits.cli")) == []


def test_store_never_imports_torch(graph):
    assert violations(graph, "spinfits.store", ("torch", "spinfits.fitting")) == []


def test_only_cluster_and_training_import_ray(graph):
    found = [
        v
        for v in violations(graph, "spinfits", ("ray",))
        if not v.startswith(("spinfits.cluster", "spinfits.training"))
    ]
    assert found == []


def test_fitting_parts_build_in_order(graph):
    wrong = []
    for name, targets in graph.items():
        if not name.startswith("spinfits.fitting.") or name.split(".")[2] not in FITTING_ORDER:
            continue
        rank = FITTING_ORDER.index(name.split(".")[2])
        for target in targets:
            part = target.split(".")[2] if target.startswith("spinfits.fitting.") else None
            if part in FITTING_ORDER and FITTING_ORDER.index(part) > rank:
                wrong.append(f"{name} imports {target}")
            if part == "synthetic" and not name.startswith("spinfits.fitting.evaluation.overlay"):
                wrong.append(f"{name} imports {target} (the fitter never imports synthetic data)")
    assert wrong == []


def test_no_module_imports_another_modules_private_names():
    wrong = []
    for name, path in product_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("spinfits"):
                wrong += [
                    f"{name}: from {node.module} import {a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
    assert wrong == []


#: Longest class and function in product code, in lines (decorators and docstring included). A
#: longer one says why on its ``def``/``class`` line: ``def solve_pool(  # long: the hot loop ...``.
MAX_CLASS_LINES, MAX_FUNCTION_LINES = 300, 80


def oversized(source: str) -> list[tuple[str, int]]:
    """(name, lines) of the classes over ``MAX_CLASS_LINES`` and functions over
    ``MAX_FUNCTION_LINES`` in ``source`` whose first line carries no ``# long:`` reason."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        length = node.end_lineno - first + 1
        limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
        if length > limit and "# long:" not in lines[node.lineno - 1]:
            found.append((node.name, length))
    return found


def test_no_oversized_class_or_function_without_a_reason():
    wrong = [
        f"{name}.{item} ({length} lines)"
        for name, path in product_modules().items()
        for item, length in oversized(path.read_text())
    ]
    assert wrong == [], f"split these, or say why on the def line (# long: reason): {wrong}"


def test_oversized_finds_long_functions_and_honours_a_reason():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert oversized(f"def short():\n    return 1\n\n\ndef long():\n{body}") == [
        ("long", MAX_FUNCTION_LINES + 1)
    ]
    assert oversized(f"def long():  # long: a hot loop\n{body}") == []
    methods = "".join(f"    def m{i}(self):\n        return {i}\n" for i in range(MAX_CLASS_LINES // 2))
    assert oversized(f"class Big:\n{methods}") == [("Big", MAX_CLASS_LINES + 1)]
