"""What the demo starts and creates: the cluster (the embedded control plane, or a throw-away namespace of
an existing one), Prometheus with the synthetic traffic exporter, the demo's objects, the operator process."""

from __future__ import annotations

import contextlib
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler import API_GROUP, API_VERSION, PLURAL
from campaign_autoscaler.devenv.controlplane import (
    ControlPlane,
    ControlPlaneError,
    ManagedProcess,
    SchedulingWorld,
)
from campaign_autoscaler.devenv.nodes import NodeShape
from campaign_autoscaler.devenv.prometheus import PrometheusServer, Sample, SyntheticExporter
from campaign_autoscaler.devenv.provisioner import ProvisionerConfig

from .scenario import (
    DEPLOYMENTS,
    EVENT_NAME,
    TRAFFIC_LABELS,
    TRAFFIC_SERIES,
    CompressedTraffic,
    DemoTimeline,
    deployment_manifest,
)

CRD_PATH = Path(__file__).resolve().parents[3] / "crds" / "campaignevents.autoscaling.campaigns.dev.yaml"
CRD_NAME = f"{PLURAL}.{API_GROUP}"
OPERATOR_INTERVAL = "2s"  # --resync-interval and --metrics-interval
REQUEST_TIMEOUT_SECONDS = 5
READY_TIMEOUT_SECONDS = 60.0  # the embedded control plane's Pods are Ready in seconds
REAL_PODS_READY_TIMEOUT_SECONDS = 180.0  # a real cluster may pull the image first
DELETE_TIMEOUT_SECONDS = 120.0
HTTP_NOT_FOUND = 404
THROWAWAY_PREFIX = "campaign-demo-"


class DemoError(RuntimeError):
    """The demo could not run: a component failed to start, or the operator died."""


def wait_for(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise DemoError(f"Timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


@dataclass(frozen=True)
class ExistingCluster:
    """`--kubeconfig FILE [--context NAME]`: run in a throw-away namespace of this cluster."""

    kubeconfig: Path
    context: str | None
    api_client: Any  # a kubernetes ApiClient for it, loaded (and checked) by the CLI


def throwaway_namespace() -> str:
    return f"{THROWAWAY_PREFIX}{secrets.token_hex(3)}"


# --- the embedded control plane ---------------------------------------------------------------------------
# Two Nodes with room for 6 Pods each hold the 7 baseline Pods, not the floor of 18: the node provisioner adds
# Nodes as the ramp-up asks for them, 2 s after Pods found no room (2 to 5 minutes at the compressed pace,
# what a cloud takes to boot one), and removes them once they stayed empty for 15 s after the ramp-down.
DEMO_NODE_SHAPE = NodeShape(cpu="2", memory="4Gi", pods=6)
DEMO_PROVISIONER = ProvisionerConfig(
    shape=DEMO_NODE_SHAPE, provisioning_delay=2.0, unschedulable_after=1.0, empty_after=15.0
)
DEMO_WORLD = SchedulingWorld(nodes=2, shape=DEMO_NODE_SHAPE, provisioner=DEMO_PROVISIONER)


def start_control_plane(stack: contextlib.ExitStack, assets: Path, timeline: DemoTimeline) -> ControlPlane:
    plane = ControlPlane(assets, pod_ready_after=timeline.pod_ready_after, scheduling=DEMO_WORLD)
    stack.callback(plane.stop)
    try:
        return plane.start()
    except ControlPlaneError as err:
        raise DemoError(str(err)) from err


@contextlib.contextmanager
def api_client_for(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(kubeconfig), persist_config=False)
    try:
        yield api_client
    finally:
        api_client.close()


# --- Prometheus and the traffic ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveMetric:
    exporter: SyntheticExporter
    server: PrometheusServer


def _prometheus_scrapes(server: PrometheusServer) -> None:
    def exporter_is_up(samples: list[Sample]) -> bool:
        return any(sample.value == 1 for sample in samples)

    server.wait_for("up", exporter_is_up, timeout=30)


def start_live_metric(stack: contextlib.ExitStack, operator_address: str | None = None) -> LiveMetric:
    """The exporter and Prometheus scraping it every second, and the operator's /metrics at
    `operator_address` (host:port; the operator starts later, its target is down until then)."""
    exporter = stack.enter_context(SyntheticExporter())
    targets = [exporter.address, *([operator_address] if operator_address else [])]
    server = PrometheusServer(targets, scrape_interval="1s")
    stack.callback(server.close)
    server.start()
    _prometheus_scrapes(server)
    return LiveMetric(exporter, server)


class TrafficFeed:
    """Sets the synthetic traffic series on the exporter once a second, from a background thread. The series
    carries the demo namespace in its `namespace` label, as Prometheus' Kubernetes discovery would: the
    operator holds every query to its event's namespace (--metrics-namespace-label namespace)."""

    def __init__(
        self,
        exporter: SyntheticExporter,
        traffic: CompressedTraffic,
        clock: Callable[[], datetime],
        namespace: str,
    ) -> None:
        self._exporter = exporter
        self._traffic = traffic
        self._labels = {**TRAFFIC_LABELS, "namespace": namespace}
        self._clock = clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def __enter__(self) -> TrafficFeed:
        self._set_now()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.wait(1.0):
            self._set_now()

    def _set_now(self) -> None:
        rps = self._traffic.rps_at(self._clock())
        self._exporter.set(TRAFFIC_SERIES, rps, self._labels)


# --- the demo's objects -----------------------------------------------------------------------------------
def _serves_campaign_events(custom: client.CustomObjectsApi, namespace: str) -> bool:
    try:
        custom.list_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL)
    except ApiException:
        return False
    return True


def _exists(read: Callable[[], object]) -> bool:
    """Whether `read` finds its object: False on 404, other API errors raised."""
    try:
        read()
    except ApiException as err:
        if err.status == HTTP_NOT_FOUND:
            return False
        raise
    return True


def _crd_exists(extensions: client.ApiextensionsV1Api) -> bool:
    return _exists(
        lambda: extensions.read_custom_resource_definition(CRD_NAME, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    )


def install_crd(stack: contextlib.ExitStack, api_client: client.ApiClient, *, delete_after: bool) -> bool:
    """Create the CampaignEvent CRD from crds/ unless the cluster has it; True when it was created. With
    `delete_after`, a CRD it created is deleted again when the stack closes."""
    extensions = client.ApiextensionsV1Api(api_client)
    if _crd_exists(extensions):
        return False
    if not CRD_PATH.is_file():
        raise DemoError(f"The CRD {CRD_PATH} is missing: run the demo from a checkout of the repository")
    extensions.create_custom_resource_definition(yaml.safe_load(CRD_PATH.read_text()))
    if delete_after:
        stack.callback(_delete_crd, extensions)
    return True


def _delete_crd(extensions: client.ApiextensionsV1Api) -> None:
    with contextlib.suppress(ApiException):
        extensions.delete_custom_resource_definition(CRD_NAME, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    wait_for(lambda: not _crd_exists(extensions), DELETE_TIMEOUT_SECONDS, f"the CRD {CRD_NAME} to be deleted")


def create_namespace(
    stack: contextlib.ExitStack, api_client: client.ApiClient, namespace: str, *, delete_after: bool
) -> None:
    """Create the namespace and wait until it serves CampaignEvents; with `delete_after`, delete it (and
    everything in it) when the stack closes."""
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": namespace, "labels": {"app.kubernetes.io/part-of": "demo"}}})
    if delete_after:
        stack.callback(_delete_namespace, core, namespace)
    custom = client.CustomObjectsApi(api_client)
    wait_for(
        lambda: _serves_campaign_events(custom, namespace), READY_TIMEOUT_SECONDS, "the CampaignEvent CRD"
    )


def _namespace_exists(core: client.CoreV1Api, namespace: str) -> bool:
    return _exists(lambda: core.read_namespace(namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS))


def _delete_namespace(core: client.CoreV1Api, namespace: str) -> None:
    with contextlib.suppress(ApiException):
        core.delete_namespace(namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    wait_for(
        lambda: not _namespace_exists(core, namespace),
        DELETE_TIMEOUT_SECONDS,
        f"namespace {namespace} to be deleted",
    )


def _ready_at_baseline(apps: client.AppsV1Api, namespace: str) -> bool:
    listing = apps.list_namespaced_deployment(namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    ready = {obj.metadata.name: (obj.status.ready_replicas or 0) for obj in listing.items}
    return all(ready.get(deployment.name) == deployment.replicas for deployment in DEPLOYMENTS)


def create_deployments(api_client: client.ApiClient, namespace: str, ready_timeout: float) -> None:
    apps = client.AppsV1Api(api_client)
    for deployment in DEPLOYMENTS:
        apps.create_namespaced_deployment(namespace, deployment_manifest(deployment))
    wait_for(lambda: _ready_at_baseline(apps, namespace), ready_timeout, "the Deployments to be Ready")


def create_event(
    stack: contextlib.ExitStack,
    api_client: client.ApiClient,
    manifest: Mapping[str, Any],
    *,
    delete_after: ManagedProcess | None,
) -> None:
    """Create the CampaignEvent; with `delete_after` (the operator), when the stack closes (before the
    operator stops), delete it and wait until the operator has released it, so that its finalizer does not
    hold the namespace."""
    custom = client.CustomObjectsApi(api_client)
    namespace = manifest["metadata"]["namespace"]
    custom.create_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, dict(manifest))
    if delete_after is not None:
        stack.callback(_delete_event, custom, namespace, delete_after)


def _event_exists(custom: client.CustomObjectsApi, namespace: str) -> bool:
    return _exists(
        lambda: custom.get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, EVENT_NAME, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
    )


def _delete_event(custom: client.CustomObjectsApi, namespace: str, operator: ManagedProcess) -> None:
    """Delete the event and wait until the operator released it. An operator that died cannot: its
    finalizer is then removed, so that the throw-away namespace (and the Deployments) can go."""
    with contextlib.suppress(ApiException):
        custom.delete_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, EVENT_NAME, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
    what = f"CampaignEvent {namespace}/{EVENT_NAME} to be deleted"
    wait_for(
        lambda: not operator.is_running() or not _event_exists(custom, namespace), READY_TIMEOUT_SECONDS, what
    )
    if _event_exists(custom, namespace):
        with contextlib.suppress(ApiException):
            custom.patch_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, EVENT_NAME, {"metadata": {"finalizers": None}}
            )
        wait_for(lambda: not _event_exists(custom, namespace), READY_TIMEOUT_SECONDS, what)


# --- the operator -----------------------------------------------------------------------------------------
def operator_argv(
    kubeconfig: Path,
    timeline: DemoTimeline,
    prometheus_url: str | None,
    namespace: str,
    context: str | None = None,
    metrics_port: int | None = None,
) -> list[str]:
    """The real operator's command line: `run`, watching the demo namespace, with compressed intervals;
    with `metrics_port`, serving its own /metrics there."""
    stabilization = timeline.scale_down_stabilization.total_seconds()
    argv = [
        sys.executable, "-m", "campaign_autoscaler", "run",
        "--kubeconfig", str(kubeconfig),
        "--namespace", namespace,
        "--resync-interval", OPERATOR_INTERVAL,
        "--metrics-interval", OPERATOR_INTERVAL,
        "--scale-down-stabilization", f"{stabilization:g}s",
    ]  # fmt: skip
    if context:
        argv += ["--context", context]
    if prometheus_url:
        argv += ["--prometheus-url", prometheus_url]
    if metrics_port:
        argv += ["--metrics-port", str(metrics_port)]
    return argv


def start_operator(stack: contextlib.ExitStack, argv: Sequence[str], log_path: Path) -> ManagedProcess:
    operator = ManagedProcess("operator", argv, log_path)
    stack.callback(operator.stop)
    operator.start()
    return operator


def shown_command(argv: Sequence[str]) -> str:
    return " ".join(["python", *argv[1:]])
