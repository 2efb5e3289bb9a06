"""The planning layer never reads the clock and imports only the standard library, cronsim and promql_parser
(a pure parser: no I/O)."""

import ast
from pathlib import Path

import pytest

import campaign_autoscaler.planning

PLANNING_DIR = Path(campaign_autoscaler.planning.__file__).parent
MODULES = sorted(PLANNING_DIR.glob("*.py"))
ALLOWED_IMPORTS = {
    "__future__",
    "collections",
    "cronsim",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "hashlib",
    "json",
    "math",
    "promql_parser",
    "re",
    "types",
    "typing",
    "zoneinfo",
}
CLOCK_READS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "sleep"}


def imported_packages(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def test_the_package_has_modules():
    assert {path.name for path in MODULES} >= {
        "spec.py",
        "timeline.py",
        "floors.py",
        "claims.py",
        "metrics.py",
    }


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_imports_only_pure_libraries(module):
    tree = ast.parse(module.read_text())
    assert set(imported_packages(tree)) <= ALLOWED_IMPORTS


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_never_reads_the_clock(module):
    tree = ast.parse(module.read_text())
    calls = [node.func for node in ast.walk(tree) if isinstance(node, ast.Call)]
    clock_calls = [
        ast.unparse(func) for func in calls if isinstance(func, ast.Attribute) and func.attr in CLOCK_READS
    ]
    assert clock_calls == []
