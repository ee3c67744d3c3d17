"""The package's shape, checked: layers, no import circle, small modules, one sampler call, a light CLI.

``ARCHITECTURE.md`` describes the layers; :data:`LAYERS` is the same list, lowest first. A module may import
modules of its own layer or of lower ones, never of a higher one, and no chain of imports leads back to
where it started.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nexusbayes"

#: The layers, lowest first: a module's layer is that of the longest prefix of its name listed here.
LAYERS = [
    ("nexusbayes", "nexusbayes.errors", "nexusbayes.constants"),   # the package's names are imported lazily
    ("nexusbayes.interrupts", "nexusbayes.files", "nexusbayes.outputs", "nexusbayes.cluster"),
    ("nexusbayes.spec",),
    ("nexusbayes.data",),
    ("nexusbayes.model",),
    ("nexusbayes.analysis",),
    ("nexusbayes.inference",),
    ("nexusbayes.fit", "nexusbayes.fit_file"),
    ("nexusbayes.report",),
    ("nexusbayes.workflows",),
    ("nexusbayes.cli", "nexusbayes.cli_draws", "nexusbayes.cli_choice", "nexusbayes.cli_batch", "nexusbayes.__main__"),
]
MAX_LINES = 500
#: Calls that run a sampler; only :mod:`nexusbayes.inference.sample` makes them.
SAMPLER_CALLS = {("nutpie", "sample"), ("pm", "sample"), ("pymc", "sample")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    best, found = -1, None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), i
    assert found is not None, f"{module} is in no layer: add it to LAYERS and ARCHITECTURE.md"
    return found


def imports(path: Path) -> dict[str, int]:
    """The nexusbayes modules a file imports (at any depth, lazy imports included), with a line of each."""
    out = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "nexusbayes":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.setdefault(sub if sub in MODULES else node.module, node.lineno)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "nexusbayes":
                    out.setdefault(alias.name, node.lineno)
    return out


GRAPH = {name: {m for m in imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_higher_layer(module):
    found = imports(MODULES[module])
    upward = [f"{m} (line {line}, layer {layer(m)})" for m, line in found.items()
              if m in MODULES and layer(m) > layer(module)]
    assert not upward, f"{module} (layer {layer(module)}) imports from a higher layer: {', '.join(upward)}"


def test_no_import_circle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name):
        state[name] = 1
        stack.append(name)
        for nxt in sorted(GRAPH[name]):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_a_planted_circle_is_found():
    GRAPH["nexusbayes.errors"].add("nexusbayes.fit")
    try:
        with pytest.raises(pytest.fail.Exception, match="import circle"):
            test_no_import_circle()
    finally:
        GRAPH["nexusbayes.errors"].discard("nexusbayes.fit")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_small(module):
    n = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines (at most {MAX_LINES}): split it by concept"


def sampler_calls(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in SAMPLER_CALLS:
            lines.append(node.lineno)
    return lines


def test_one_module_calls_a_sampler():
    callers = {name: lines for name, path in MODULES.items() if (lines := sampler_calls(path))}
    benchmark_callers = {str(p.relative_to(ROOT)): lines for p in sorted((ROOT / "benchmarks").glob("*.py"))
                         if (lines := sampler_calls(p))}
    assert list(callers) == ["nexusbayes.inference.sample"], callers
    assert not benchmark_callers, f"benchmarks must sample through nexusbayes.inference.sample: {benchmark_callers}"


def test_help_does_not_import_pymc():
    code = ("import sys; from nexusbayes.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "libs = ('pymc', 'pytensor', 'arviz', 'nutpie', 'dask', 'matplotlib')\n"
            "heavy = sorted(m for m in libs if m in sys.modules)\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "HEAVY []" in out, out.splitlines()[-1]
