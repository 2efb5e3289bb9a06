"""The test environment is real: a real API server validates the CRD, real controllers scale Deployments and
follow HPAs, RBAC is enforced, and a real Prometheus answers PromQL."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiClient, ApiException

from campaign_autoscaler import API_GROUP, API_VERSION, PLURAL
from campaign_autoscaler.devenv.controlplane import (
    OPERATOR_NAMESPACE,
    OPERATOR_SERVICE_ACCOUNT,
    ControlPlane,
    ControlPlaneError,
)
from campaign_autoscaler.devenv.prometheus import MetricFeed, PrometheusServer, PrometheusUnavailable
from tests.integration.harness import wait_until
from tests.unit.test_crd import (
    EXAMPLE_PATH,
    FULL_SPEC,
    FULL_STATUS,
    INVALID_SPECS,
    SCHEDULED_SPEC,
    InvalidSpec,
    campaign_event,
)

HTTP_FORBIDDEN = 403
HTTP_UNPROCESSABLE = 422


def kubectl(
    kubeconfig: str | Path, *arguments: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    command = ["kubectl", f"--kubeconfig={kubeconfig}", *arguments]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False
    )


def deployment_manifest(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/shop/web:1"}]},
            },
        },
    }


# -- the CRD against the real API server ------------------------------------------------------------------


def test_crd_is_established_with_its_names(campaignevent_crd, api_client: ApiClient):
    extensions = kubernetes.client.ApiextensionsV1Api(api_client)
    crd = extensions.read_custom_resource_definition(campaignevent_crd["metadata"]["name"])
    conditions = {condition.type: condition.status for condition in crd.status.conditions}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert crd.status.accepted_names.short_names == ["ce", "campaign"]


def test_kubectl_explain_shows_the_field_descriptions(campaignevent_crd, kubeconfig: str):
    schema = campaignevent_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    targets = schema["properties"]["spec"]["properties"]["targets"]

    def explained() -> str | None:  # the OpenAPI document picks the CRD up a moment after it is Established
        result = kubectl(kubeconfig, "explain", "campaignevent.spec.targets")
        return " ".join(result.stdout.split()) if result.returncode == 0 else None

    text = wait_until(explained, timeout=30, message="kubectl explain campaignevent.spec.targets")
    assert " ".join(targets["description"].split()) in text
    for field_name, field_schema in targets["items"]["properties"].items():
        assert field_name in text
        assert " ".join(field_schema["description"].split()) in text


def test_the_9_9_example_is_accepted_and_stored_as_written(
    campaignevent_crd, kubeconfig: str, namespace: str
):
    example = yaml.safe_load(EXAMPLE_PATH.read_text())
    example["metadata"]["namespace"] = namespace
    # The API server is what validates here; kubectl's own client-side check is switched off.
    applied = kubectl(kubeconfig, "apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump(example))
    assert applied.returncode == 0, applied.stderr
    stored = json.loads(kubectl(kubeconfig, "get", "ce", "sale-9-9", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"] == example["spec"]  # no defaults filled in, nothing pruned
    listing = kubectl(kubeconfig, "get", "campaign", "-n", namespace).stdout.splitlines()
    assert listing[0].split() == ["NAME", "PHASE", "START", "END", "NEXT", "AGE"]
    assert listing[1].startswith("sale-9-9")


@pytest.mark.parametrize("spec", [FULL_SPEC, SCHEDULED_SPEC], ids=["window", "schedule"])
def test_every_contract_field_survives_the_round_trip(
    campaignevent_crd, api_client: ApiClient, namespace, spec
):
    custom = kubernetes.client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, campaign_event(spec))
    custom.patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, namespace, PLURAL, "sale", {"status": FULL_STATUS}
    )
    stored = custom.get_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, "sale")
    assert stored["spec"] == spec
    assert stored["status"] == FULL_STATUS


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda case: case.id)
def test_invalid_events_are_refused_by_the_api_server(
    campaignevent_crd, api_client, namespace, case: InvalidSpec
):
    custom = kubernetes.client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, campaign_event(case.spec)
        )
    assert refused.value.status == HTTP_UNPROCESSABLE
    message = json.loads(refused.value.body)["message"]
    assert case.field in message
    assert custom.list_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL)["items"] == []


# -- controllers and the readiness simulator ---------------------------------------------------------------


def test_scaled_deployment_turns_ready_after_the_simulated_delay(
    control_plane: ControlPlane, api_client: ApiClient, namespace: str
):
    apps = kubernetes.client.AppsV1Api(api_client)
    core = kubernetes.client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment_manifest("web", replicas=0))
    ready_after = control_plane.pod_ready_after
    scaled_at = time.monotonic()
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})

    readings = ready_replicas_readings(apps, namespace, "web", until_ready=3, timeout=ready_after + 15)
    early = [(elapsed, ready) for elapsed, ready in readings if elapsed - scaled_at < ready_after]
    assert early and early[-1][0] - scaled_at > ready_after / 2, "not observed late enough to tell"
    assert all(ready == 0 for _, ready in early), f"Ready before {ready_after}s: {early}"
    first_ready = next(elapsed for elapsed, ready in readings if ready) - scaled_at
    assert ready_after <= first_ready < ready_after + 5

    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert {pod.status.phase for pod in pods} == {"Running"}
    assert all(pod.spec.node_name is None for pod in pods)
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 1}})
    wait_until(
        lambda: len(core.list_namespaced_pod(namespace, label_selector="app=web").items) == 1,
        timeout=10,
        message="unscheduled Pods deleted at once on scale-down",
    )


def ready_replicas_readings(
    apps: kubernetes.client.AppsV1Api, namespace: str, name: str, until_ready: int, timeout: float
) -> list[tuple[float, int]]:
    """(monotonic time of the answer, status.readyReplicas) every 50 ms until `until_ready` are Ready."""
    readings: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = apps.read_namespaced_deployment_status(name, namespace).status.ready_replicas or 0
        readings.append((time.monotonic(), ready))
        if ready == until_ready:
            return readings
        time.sleep(0.05)
    raise AssertionError(f"{name} did not reach {until_ready} ready replicas in {timeout}s: {readings[-3:]}")


def test_restricted_identity_is_forbidden_until_granted(
    control_plane: ControlPlane, api_client, namespace: str
):
    restricted = kubernetes.config.new_client_from_config(
        config_file=str(control_plane.restricted_kubeconfig_path), persist_config=False
    )
    try:
        restricted_apps = kubernetes.client.AppsV1Api(restricted)
        with pytest.raises(ApiException) as forbidden:
            restricted_apps.list_namespaced_deployment(namespace)
        assert forbidden.value.status == HTTP_FORBIDDEN

        grant_deployment_reads(api_client, namespace)

        def listed() -> bool:
            try:
                restricted_apps.list_namespaced_deployment(namespace)
            except ApiException as error:
                assert error.status == HTTP_FORBIDDEN
                return False
            return True

        wait_until(listed, timeout=10, message="the RoleBinding to take effect")
        with pytest.raises(ApiException) as elsewhere:
            restricted_apps.list_namespaced_deployment("default")
        assert elsewhere.value.status == HTTP_FORBIDDEN
    finally:
        restricted.close()


def grant_deployment_reads(api_client: ApiClient, namespace: str) -> None:
    rbac = kubernetes.client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "deployment-reader"},
            "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]}
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "campaign-autoscaler-reads-deployments"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployment-reader"},
            "subjects": [
                {"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
            ],
        },
    )


def test_hpa_controller_raises_a_deployment_to_min_replicas(api_client: ApiClient, namespace: str):
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment_manifest("checkout", replicas=1))
    kubernetes.client.AutoscalingV1Api(api_client).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": "checkout"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
                "minReplicas": 3,
                "maxReplicas": 6,
                "targetCPUUtilizationPercentage": 80,
            },
        },
    )
    wait_until(
        lambda: apps.read_namespaced_deployment("checkout", namespace).spec.replicas == 3,
        timeout=20,
        message="the HPA controller to scale checkout to minReplicas 3",
    )


# -- Prometheus --------------------------------------------------------------------------------------------


def test_promql_returns_the_exporter_value_and_follows_changes(metric_feed: MetricFeed, prometheus):
    labels = {"app": "checkout"}
    assert metric_feed.set_and_wait("campaign_env_requests_per_second", 812.5, labels) == 812.5
    assert metric_feed.set_and_wait("campaign_env_requests_per_second", 95.0, labels) == 95.0
    answer = prometheus.query('sum(campaign_env_requests_per_second{app="checkout"})')
    assert answer["resultType"] == "vector"
    assert float(answer["result"][0]["value"][1]) == 95.0


def test_prometheus_restarts_on_the_same_data_and_port(metric_feed: MetricFeed, prometheus: PrometheusServer):
    metric_feed.set_and_wait("campaign_env_restart_probe", 7.0)
    url = prometheus.url
    prometheus.stop()
    with pytest.raises(PrometheusUnavailable):
        prometheus.query("campaign_env_restart_probe")
    prometheus.start()
    assert prometheus.url == url
    history = prometheus.query_samples("max_over_time(campaign_env_restart_probe[5m])")
    assert [sample.value for sample in history] == [7.0]
    assert metric_feed.set_and_wait("campaign_env_restart_probe", 8.0) == 8.0


def test_backfilled_history_is_queryable_at_once(prometheus: PrometheusServer):
    peak_day = datetime.now(UTC) - timedelta(days=365)
    timestamps = [(peak_day + timedelta(minutes=minute)).timestamp() for minute in range(180)]
    lines = [
        f'campaign_env_last_year_rps{{app="checkout"}} {100 + minute} {timestamp:.0f}'
        for minute, timestamp in enumerate(timestamps)
    ]
    blocks = prometheus.backfill_openmetrics("\n".join(lines))
    assert blocks and all(block.parent == prometheus.data_dir for block in blocks)
    samples = prometheus.query_samples(
        'max_over_time(campaign_env_last_year_rps{app="checkout"}[4h] offset 364d20h)'
    )
    assert [sample.value for sample in samples] == [279.0]


# -- the environment's own lifecycle -----------------------------------------------------------------------


def test_a_control_plane_stops_without_leaving_processes_or_files(control_plane: ControlPlane):
    with ControlPlane(control_plane.assets_dir, pod_ready_after=0.5) as second:
        pids = second.process_ids
        workdir = second.workdir
        assert kubectl(second.kubeconfig_path, "get", "namespaces").returncode == 0
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not workdir.exists()


@pytest.mark.parametrize(
    ("complaint", "attempts"),
    [
        ("etcdmain: cannot access data directory: permission denied", 1),
        ("listen tcp: address already in use", 3),
    ],
    ids=["fatal", "port-taken-is-retried"],
)
def test_a_failing_component_reports_the_tail_of_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, complaint: str, attempts: int
):
    fake_assets = tmp_path / "assets"
    fake_assets.mkdir()
    starts = tmp_path / "starts"
    for binary in ("etcd", "kube-apiserver", "kube-controller-manager"):
        script = fake_assets / binary
        script.write_text(f"#!/bin/sh\necho started >> {starts}\necho '{complaint}' >&2\nexit 3\n")
        script.chmod(0o755)
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    plane = ControlPlane(fake_assets, start_timeout=10)
    with pytest.raises(ControlPlaneError, match=r"etcd exited during start-up \(exit code 3\)") as failed:
        plane.start()
    assert failed.value.args[0].rstrip().endswith(complaint)
    assert len(starts.read_text().splitlines()) == attempts
    assert plane.process_ids == {}
    assert list(temp_root.iterdir()) == []
