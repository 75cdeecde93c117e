"""The package's layout is the compiler's pipeline: every module imports only from its own
stage or an earlier one, no two modules import each other (directly or round a loop), and
the front end runs without array code. Imports are read from the source, function-local and
TYPE_CHECKING ones included: a cycle hidden inside a function is still a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "netspec"

# In the order data flows. A module may import its own stage and those above it.
STAGES = [
    # neutral: nothing of ours but these
    ("errors", "schema", "types", "lazy", "memory", "version", "wording"),
    ("ops",),  # NumPy/CuPy numerics
    ("layers",),  # the vocabulary: schema, shape rule and runtime of each entry
    ("losses",),
    ("optim",),
    ("data",),
    ("frontend",),  # YAML -> a checked Spec with its analysed Graph
    ("network",),  # compile(): the executable graph
    ("training",),
    ("export",),
    ("cli",),
]
STAGE = {name: rank for rank, names in enumerate(STAGES) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The netspec modules `path` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "netspec":
                found |= {f"netspec.{a.name}" for a in node.names}
            elif node.module.startswith("netspec."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("netspec.")}
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "lazy_import"
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value.startswith("netspec.")
        ):
            found.add(node.args[0].value)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
KNOWN = set(MODULES)


def resolve(name: str) -> str:
    """`netspec.cli.plot` -> itself; `netspec.training.trainer.Trainer`-style -> its module."""
    while name not in KNOWN and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    return STAGE.get(parts[1]) if len(parts) > 1 else None  # None: the package root (the API)


GRAPH = {m: {resolve(i) for i in imports_of(p)} - {m} for m, p in MODULES.items()}


def test_every_module_belongs_to_a_stage():
    assert [m for m in MODULES if m != "netspec" and stage_of(m) is None] == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "netspec"))
def test_a_module_imports_no_later_stage(module):
    later = sorted(
        used
        for used in GRAPH[module]
        if used != "netspec" and stage_of(used) > stage_of(module)  # type: ignore[operator]
    )
    assert later == [], f"{module} imports a later stage"


def test_the_package_root_is_imported_by_no_module():
    # netspec/__init__ is the public API over everything: a module importing it sits below
    # the whole package (it did, for __version__).
    assert sorted(m for m, used in GRAPH.items() if "netspec" in used and m != "netspec") == []


def test_no_import_cycles():
    # Tarjan's strongly connected components: every one must be a single module.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for used in GRAPH[m] - {"netspec"}:
            if used not in index:
                visit(used)
                low[m] = min(low[m], low[used])
            elif used in on_stack:
                low[m] = min(low[m], index[used])
        if low[m] == index[m]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == m:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for m in sorted(GRAPH):
        if m not in index:
            visit(m)
    assert cycles == []


def test_load_and_infer_run_without_array_code():
    spec = Path(__file__).resolve().parent.parent / "specs" / "lenet5.yaml"
    script = textwrap.dedent(
        f"""
        import sys
        import netspec
        from netspec.lazy import is_loaded
        netspec.infer(netspec.load({str(spec)!r}), batch_size=8)
        loaded = sorted(
            name for name, module in sys.modules.items()
            if (name == "numpy" or name.startswith(("numpy.", "netspec.ops.")))
            and is_loaded(module)
        )
        print(loaded)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
