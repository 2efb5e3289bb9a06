"""Helpers for driving the real operator process against the local control plane."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from campaign_autoscaler import API_GROUP, API_VERSION, PLURAL
from campaign_autoscaler.planning.claims import CAMPAIGN_ANNOTATIONS, CLAIMS_ANNOTATION

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "campaignevents.autoscaling.campaigns.dev.yaml"
T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.1, message: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; after `timeout`, fail naming `message`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout}s waiting for {message}; last value: {last!r}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(port: int) -> str:
    """The operator's /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def utc_now() -> datetime:
    return datetime.now(UTC)


def ensure_crd(api_client: client.ApiClient, path: Path = CRD_PATH) -> None:
    """Create (or update) a CRD (the CampaignEvent one by default) and wait until it is Established and
    served."""
    extensions = client.ApiextensionsV1Api(api_client)
    body = yaml.safe_load(path.read_text())
    name = body["metadata"]["name"]
    try:
        existing = extensions.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = existing.metadata.resource_version
        extensions.replace_custom_resource_definition(name, body)
    except ApiException as err:
        if err.status != 404:
            raise
        extensions.create_custom_resource_definition(body)

    def established() -> bool:
        crd = extensions.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_until(established, timeout=30, message=f"CRD {name} Established")
    custom = client.CustomObjectsApi(api_client)
    group, plural = body["spec"]["group"], body["spec"]["names"]["plural"]
    version = next(entry["name"] for entry in body["spec"]["versions"] if entry.get("storage"))
    wait_until(lambda: _served(custom, group, version, plural), timeout=30, message=f"{plural} served")


def _served(custom: client.CustomObjectsApi, group: str, version: str, plural: str) -> bool:
    try:
        custom.list_cluster_custom_object(group, version, plural)
        return True
    except ApiException:
        return False


def deployment_body(
    name: str,
    replicas: int,
    labels: dict[str, str] | None = None,
    requests: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment of `replicas` Pods labelled app=<name> (plus `labels` on the Deployment), each Pod
    requesting `requests` (nothing when None)."""
    selector = {"app": name}
    container: dict[str, Any] = {"name": "app", "image": "registry.invalid/shop/app:1"}
    if requests is not None:
        container["resources"] = {"requests": requests}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**selector, **(labels or {})}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {"containers": [container]},
            },
        },
    }


def install_from_manifests(api_client: client.ApiClient, kinds: Collection[str]) -> None:
    """Create the objects of `kinds` from manifests/campaign-autoscaler.yaml (the chart as it renders)."""
    documents = yaml.safe_load_all((REPO / "manifests" / "campaign-autoscaler.yaml").read_text())
    chosen = [doc for doc in documents if doc and doc["kind"] in kinds]
    kubernetes.utils.create_from_yaml(api_client, yaml_objects=chosen)


class Cluster:
    """Thin typed conveniences over the admin client for one test namespace."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.autoscaling = client.AutoscalingV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    # Deployments ------------------------------------------------------------------------------------------
    def create_deployment(
        self, name: str, replicas: int, labels: dict[str, str] | None = None, namespace: str | None = None
    ) -> None:
        self.apps.create_namespaced_deployment(
            namespace or self.namespace, deployment_body(name, replicas, labels)
        )

    def deployment(self, name: str, namespace: str | None = None) -> Any:
        return self.apps.read_namespaced_deployment(name, namespace or self.namespace)

    def replicas(self, name: str, namespace: str | None = None) -> int:
        return self.deployment(name, namespace).spec.replicas

    def ready(self, name: str) -> int:
        return self.deployment(name).status.ready_replicas or 0

    def annotations(self, name: str) -> dict[str, str]:
        return dict(self.deployment(name).metadata.annotations or {})

    def claims(self, name: str) -> dict[str, int]:
        return json.loads(self.annotations(name).get(CLAIMS_ANNOTATION) or "{}")

    def campaign_annotations(self, name: str) -> dict[str, str]:
        return {key: value for key, value in self.annotations(name).items() if key in CAMPAIGN_ANNOTATIONS}

    def scale(self, name: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(name, self.namespace, {"spec": {"replicas": replicas}})

    # HPAs -------------------------------------------------------------------------------------------------
    def create_hpa(self, name: str, target: str, min_replicas: int, max_replicas: int) -> None:
        body = {
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
                "targetCPUUtilizationPercentage": 80,
            },
        }
        self.autoscaling.create_namespaced_horizontal_pod_autoscaler(self.namespace, body)

    def hpa_bounds(self, name: str) -> tuple[int, int]:
        hpa = self.autoscaling.read_namespaced_horizontal_pod_autoscaler(name, self.namespace)
        return hpa.spec.min_replicas, hpa.spec.max_replicas

    # CampaignEvents ---------------------------------------------------------------------------------------
    def create_event(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "CampaignEvent",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(API_GROUP, API_VERSION, self.namespace, PLURAL, body)

    def event(self, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, PLURAL, name
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def status(self, name: str) -> dict[str, Any]:
        return (self.event(name) or {}).get("status") or {}

    def phase(self, name: str) -> str | None:
        return self.status(name).get("phase")

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == kind), None)

    def delete_event(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(API_GROUP, API_VERSION, self.namespace, PLURAL, name)

    def patch_event_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            API_GROUP, API_VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )

    def k8s_events(self, reason: str | None = None, kind: str | None = None) -> list[Any]:
        items = self.core.list_namespaced_event(self.namespace).items
        return [
            e
            for e in items
            if (reason is None or e.reason == reason) and (kind is None or e.involved_object.kind == kind)
        ]


# Logged once the workload watches have their first listings (adapters/informer.py).
READY_LINE = "every first listing is in"


class OperatorProcess:
    """The real operator, `python -m campaign_autoscaler run`, in its own process."""

    def __init__(self, kubeconfig: str, log_path: Path, args: Sequence[str] = ()) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.args = list(args)
        if "--metrics-port" not in self.args:
            self.args += ["--metrics-port", str(free_port())]
        self.metrics_port = int(self.args[self.args.index("--metrics-port") + 1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("KUBECONFIG", None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "campaign_autoscaler",
                    "run",
                    "--kubeconfig",
                    self.kubeconfig,
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    def wait_ready(self, timeout: float = 60) -> OperatorProcess:
        """Until the operator's watches have their first listings in (its start-up is over): a test that
        times a lifecycle from the creation of its event must not start the clock while the operator is still
        importing (6.8 s at the lowest dependency versions, whose prometheus-api-client imports pandas)."""
        assert self.process is not None, "start() first"
        process = self.process
        wait_until(
            lambda: READY_LINE in self.log() or process.poll() is not None,
            timeout=timeout,
            message="the operator's first listings",
        )
        assert process.poll() is None, f"Operator exited:\n{self.log()[-2000:]}"
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a node dies."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then wait; returns the exit code (SIGKILL after `timeout`)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"Operator did not stop within {timeout}s of SIGTERM") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def passes(self, namespace: str, event: str) -> int:
        """How many passes of the event this operator has completed (its /metrics), 0 before the first."""
        return event_passes(scrape(self.metrics_port), namespace, event)

    def wait_for_passes(self, namespace: str, event: str, count: int, timeout: float = 15) -> None:
        """Wait until `count` more passes of the event complete: the positive signal that the operator looked
        again (a pass in flight when this is called may have read the world before it, hence count >= 2
        for "after what the test just did")."""
        wait_for_more_passes(self, namespace, [event], count, timeout)


def wait_for_more_passes(
    operator: OperatorProcess, namespace: str, events: Sequence[str], count: int, timeout: float = 15
) -> None:
    """Until the operator has completed `count` more passes of every one of `events` (from its /metrics)."""

    def passes() -> dict[str, int]:
        page = scrape(operator.metrics_port)
        return {name: event_passes(page, namespace, name) for name in events}

    before = passes()
    wait_until(
        lambda: all(seen >= before[name] + count for name, seen in passes().items()),
        timeout=timeout,
        message=f"{count} more passes of each of CampaignEvents {', '.join(events)} in {namespace}",
    )


def event_passes(metrics_page: str, namespace: str, event: str) -> int:
    """campaign_autoscaler_event_passes_total of one event in a /metrics page."""
    for family in text_string_to_metric_families(metrics_page):
        if family.name != "campaign_autoscaler_event_passes":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels == {"namespace": namespace, "event": event}:
                return int(sample.value)
    return 0


@contextmanager
def operator_watching(
    kubeconfig: str | Path, namespace: str, log_path: Path, resync: str = "2"
) -> Iterator[OperatorProcess]:
    """The operator acting in one namespace; afterwards stopped with SIGTERM (its log's tail printed), and an
    exit code other than 0 fails."""
    process = OperatorProcess(
        str(kubeconfig), log_path, ["--namespace", namespace, "--resync-interval", resync]
    )
    process.start()
    try:
        yield process
    finally:
        code = process.stop()
        print(process.log()[-4000:])
    assert code == 0, f"Operator exited with {code} on SIGTERM"


@contextmanager
def running_operator(kubeconfig: str, log_path: Path, args: Sequence[str]) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(kubeconfig, log_path, args).start()
    try:
        yield operator
    finally:
        operator.stop()


def campaign_spec(
    *,
    start: datetime,
    end: datetime,
    targets: list[dict[str, Any]],
    lead_time: str = "6s",
    ramp_up_steps: int = 2,
    ramp_down: dict[str, Any] | None = None,
    multiplier: float = 2.5,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "timezone": "UTC",
        "start": rfc3339(start),
        "end": rfc3339(end),
        "leadTime": lead_time,
        "rampUp": {"steps": ramp_up_steps},
        "rampDown": ramp_down or {"duration": "4s", "steps": 2},
        "trafficMultiplier": multiplier,
        "targets": targets,
    }
    spec.update(extra)
    return spec


def active_soon(targets: list[dict[str, Any]], *, opens_in: float = 2, **extra: Any) -> dict[str, Any]:
    """A one-off event whose window opens `opens_in` seconds from now (1 s lead time, one step) and stays
    open for five minutes: for tests about what happens while a window is open."""
    start = seconds_from_now(opens_in)
    return campaign_spec(
        start=start,
        end=start + timedelta(minutes=5),
        lead_time="1s",
        ramp_up_steps=1,
        targets=targets,
        **extra,
    )


def seconds_from_now(seconds: float) -> datetime:
    return (utc_now() + timedelta(seconds=seconds)).replace(microsecond=0) + timedelta(seconds=1)
