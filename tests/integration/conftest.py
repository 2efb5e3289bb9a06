"""Fixtures of the integration tier: a real control plane and a real Prometheus for the whole session,
a fresh namespace per test.

Without the control-plane binaries (or the prometheus binary) the tests are skipped on a laptop and fail in CI
($CI=true): the integration tier is not optional there.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kubernetes
import pytest
import yaml

from campaign_autoscaler.devenv.controlplane import MISSING_ASSETS_HELP, ControlPlane, find_assets
from campaign_autoscaler.devenv.prometheus import (
    PROMETHEUS_HELP,
    MetricFeed,
    PrometheusServer,
    Sample,
    SyntheticExporter,
    find_prometheus,
    find_promtool,
)
from tests.integration.harness import Cluster, ensure_crd

HERE = Path(__file__).resolve().parent
CRD_PATH = HERE.parents[1] / "crds" / "campaignevents.autoscaling.campaigns.dev.yaml"
# Room is left for a suffix such as "-other" within the 63 characters of a namespace name.
NAMESPACE_NAME_LENGTH = 50
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def require(available: bool, help_text: str) -> None:
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"The integration tier must run in CI. {help_text}", pytrace=False)
    pytest.skip(help_text)


def namespace_name(test_name: str) -> str:
    """A valid, unique namespace name that says which test made it."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower().removeprefix("test_")).strip("-")
    suffix = secrets.token_hex(3)
    return f"{slug[: NAMESPACE_NAME_LENGTH - len(suffix) - 1].rstrip('-')}-{suffix}"


# -- Kubernetes ---------------------------------------------------------------------------------------------


@contextmanager
def new_control_plane() -> Iterator[ControlPlane]:
    """A control plane of its own, started, and stopped afterwards (skipped without the binaries)."""
    assets = find_assets()
    require(assets is not None, MISSING_ASSETS_HELP)
    with ControlPlane(assets) as plane:
        yield plane


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    with new_control_plane() as plane:
        yield plane


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> str:
    """Path of the admin kubeconfig (user campaign-admin, group system:masters)."""
    return str(control_plane.kubeconfig_path)


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=kubeconfig, persist_config=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def campaignevent_crd(api_client: kubernetes.client.ApiClient) -> dict[str, object]:
    """The CampaignEvent CRD from crds/, applied, Established and served; returns the manifest."""
    ensure_crd(api_client)
    return yaml.safe_load(CRD_PATH.read_text())


@pytest.fixture
def cluster(api_client: kubernetes.client.ApiClient, namespace: str, campaignevent_crd: object) -> Cluster:
    """Conveniences over the admin client for this test's namespace, with the CRD installed."""
    return Cluster(api_client, namespace)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, api_client: kubernetes.client.ApiClient) -> Iterator[str]:
    """A fresh namespace named after the test; deleted afterwards without waiting for its finalizers."""
    name = namespace_name(request.node.name)
    core = kubernetes.client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name, "labels": {"campaign-autoscaler/test": "true"}}})
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except kubernetes.client.ApiException as error:
        if error.status != HTTP_NOT_FOUND:
            raise


# -- Prometheus ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def synthetic_exporter() -> Iterator[SyntheticExporter]:
    require(find_prometheus() is not None and find_promtool() is not None, PROMETHEUS_HELP)
    with SyntheticExporter() as exporter:
        yield exporter


@pytest.fixture(scope="session")
def prometheus(synthetic_exporter: SyntheticExporter) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping the synthetic exporter every second; ready and scraped once on return."""
    with PrometheusServer([synthetic_exporter.address]) as server:
        wait_until_scraped(server)
        yield server


def wait_until_scraped(server: PrometheusServer) -> None:
    def exporter_is_up(samples: list[Sample]) -> bool:
        return any(sample.value == 1 for sample in samples)

    server.wait_for("up", exporter_is_up, timeout=30)


@pytest.fixture
def metric_feed(synthetic_exporter: SyntheticExporter, prometheus: PrometheusServer) -> Iterator[MetricFeed]:
    """Per test: set synthetic series (and wait until PromQL sees them); they are dropped afterwards.

    Prometheus is running when the test starts and again after it, even if the test stopped it.
    """
    if not prometheus.is_running():
        prometheus.start()
        wait_until_scraped(prometheus)
    feed = MetricFeed(synthetic_exporter, prometheus)
    yield feed
    feed.clear()
    if not prometheus.is_running():
        prometheus.start()
