"""pyproject's runtime dependencies: every library the code imports is declared, at a floor that has what the
code calls. `make test-lowest` runs the unit tests with each dependency at exactly its floor."""

from __future__ import annotations

import ast
import re
import socket
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from campaign_autoscaler.adapters.prometheus import (
    MetricsUnavailableError,
    PrometheusMetricsSource,
    PrometheusSettings,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "operator" / "campaign_autoscaler"

# The first release with what the code calls (requests: the first that installs beside kubernetes 37).
NEEDED = {
    "kopf": ("1.42.3", "kopf.AiohttpSession, returned by the login handler"),
    "aiohttp": ("3.12", "ClientSession(middlewares=), the bounded session"),
    "kubernetes": ("37.0.0", "ApiClient.param_serialize, in KubeAdapter._request"),
    "prometheus-api-client": ("0.5.7", "PrometheusConnect(timeout=) and custom_query(timeout=)"),
    "prometheus-client": ("0.20", "start_http_server returning (server, thread)"),
    "requests": ("2.30", "support for urllib3 2 (kubernetes 37 needs urllib3>=2.8)"),
    "promql-parser": ("0.9.0", "promql_parser.transform and walk, in planning/promql.py"),
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def floors(requirements: list[str]) -> dict[str, Version | None]:
    """Each requirement's lowest allowed version (None without one), by canonical name."""
    result: dict[str, Version | None] = {}
    for line in requirements:
        requirement = Requirement(line)
        specifiers = requirement.specifier
        lows = [Version(spec.version) for spec in specifiers if spec.operator in (">=", "==", "~=")]
        result[canonical(requirement.name)] = max(lows) if lows else None
    return result


@pytest.mark.parametrize("name", sorted(NEEDED))
def test_floor_has_what_the_code_calls(name: str):
    needed, why = NEEDED[name]
    floor = floors(project()["dependencies"]).get(name)
    assert floor is not None, f"{name} must be a dependency with a floor: the code needs {why}"
    assert floor >= Version(needed), f"{name}>={floor} allows versions without {why} (since {needed})"


def test_every_runtime_dependency_has_a_floor():
    assert all(floors(project()["dependencies"]).values()), project()["dependencies"]


def imported_modules() -> set[str]:
    """Top-level modules imported anywhere in the package, the standard library and itself left out."""
    modules: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"campaign_autoscaler"}


def test_every_imported_library_is_declared():
    """A library imported directly is a direct dependency (the demo's plots: the demo extra), not left to
    arrive with another package."""
    extras = project()["optional-dependencies"]
    declared = set(floors(project()["dependencies"])) | set(floors(extras["demo"]))
    distributions = packages_distributions()
    modules = imported_modules()
    assert {"kopf", "kubernetes", "aiohttp", "requests", "urllib3"} <= modules
    undeclared = {
        module: distributions.get(module)
        for module in modules
        if not {canonical(name) for name in distributions.get(module, [])} & declared
    }
    assert not undeclared, f"imported but not declared in pyproject: {undeclared}"


def test_prometheus_source_on_a_refused_connection():
    """The adapter's calls into prometheus-api-client and requests/urllib3, at whatever version is installed:
    a refused connection is told as such (a loopback port bound but not listening refuses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        source = PrometheusMetricsSource(PrometheusSettings(url=f"http://127.0.0.1:{port}/", timeout=2.0))
        with pytest.raises(MetricsUnavailableError) as raised:
            source.value("up")
    assert raised.value.reason == "ConnectionFailed", raised.value
