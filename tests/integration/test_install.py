"""Installed as platform teams install it: `kubectl apply -f crds/ -f manifests/`, the operator running as its
own ServiceAccount with exactly the rendered RBAC, HA through Kopf peering, and its /metrics endpoint."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler.devenv.controlplane import ControlPlane
from tests.integration.conftest import new_control_plane
from tests.integration.harness import (
    REPO,
    Cluster,
    OperatorProcess,
    active_soon,
    campaign_spec,
    free_port,
    scrape,
    seconds_from_now,
    wait_until,
)
from tests.integration.keda import scaled_object_body, scaled_object_crd

MANIFESTS = REPO / "manifests"
SERVICE_ACCOUNT_NAMESPACE = "campaign-system"
FORBIDDEN_LINE = re.compile(r"\b403\b|Forbidden", re.IGNORECASE)


def denied_line(line: str) -> bool:
    """A log line reporting a 403 / Forbidden; not its "[... 20:57:55,403]" timestamp, whose milliseconds
    may well read 403."""
    message = line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line
    return FORBIDDEN_LINE.search(message) is not None


def kubectl(kubeconfig: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rendered_operator_args() -> list[str]:
    """The container arguments of the operator Deployment in manifests/, as a cluster would run them."""
    for document in yaml.safe_load_all((MANIFESTS / "campaign-autoscaler.yaml").read_text()):
        if document and document.get("kind") == "Deployment":
            return list(document["spec"]["template"]["spec"]["containers"][0]["args"])
    raise AssertionError("no Deployment in manifests/campaign-autoscaler.yaml")


def local_args(args: list[str]) -> list[str]:
    """Cluster arguments adapted to a process on this machine: free ports, short intervals, readable logs."""
    replaced = {"--liveness-port", "--metrics-port", "--resync-interval", "--log-format"}
    kept = [arg for arg in args if arg.split("=", 1)[0] not in replaced]
    return [*kept, "--resync-interval=2s", "--log-format=text", f"--liveness-port={free_port()}"]


@pytest.fixture
def installed(control_plane: ControlPlane, campaignevent_crd: object, tmp_path: Path) -> Iterator[None]:
    """The operator installed from crds/ and manifests/ in one apply. Its RBAC bindings are removed
    afterwards, so that the restricted identity is granted nothing in the tests that follow."""
    admin = control_plane.kubeconfig_path
    applied = kubectl(admin, "apply", "-f", str(REPO / "crds"), "-f", str(MANIFESTS))
    assert applied.returncode == 0, applied.stderr
    yield
    documents = yaml.safe_load_all((MANIFESTS / "campaign-autoscaler.yaml").read_text())
    granted = [doc for doc in documents if doc and doc["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    bindings = tmp_path / "bindings.yaml"
    bindings.write_text(yaml.safe_dump_all(granted))
    removed = kubectl(admin, "delete", "--ignore-not-found", "-f", str(bindings))
    assert removed.returncode == 0, removed.stderr


@pytest.fixture(scope="module")
def fresh_control_plane() -> Iterator[ControlPlane]:
    """A control plane of its own that nothing else has touched: no CRD of any kind installed yet."""
    with new_control_plane() as plane:
        yield plane


def peering_object(api_client: client.ApiClient, name: str) -> dict[str, Any] | None:
    try:
        return client.CustomObjectsApi(api_client).get_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", name
        )
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def test_one_apply_installs_everything_on_a_fresh_cluster(fresh_control_plane: ControlPlane, tmp_path: Path):
    """`kubectl apply -f crds/ -f manifests/` once, as the README says, on a cluster that never had any of
    its CRDs; then two operator replicas, as the rendered Deployment runs them and with its RBAC, create
    their peering object, elect one active member, and run a campaign."""
    plane = fresh_control_plane
    admin = config.new_client_from_config(config_file=str(plane.kubeconfig_path))
    extensions = client.ApiextensionsV1Api(admin)
    assert [crd.metadata.name for crd in extensions.list_custom_resource_definition().items] == []

    applied = kubectl(plane.kubeconfig_path, "apply", "-f", str(REPO / "crds"), "-f", str(MANIFESTS))
    assert applied.returncode == 0, applied.stderr
    installed_crds = {crd.metadata.name for crd in extensions.list_custom_resource_definition().items}
    assert installed_crds == {
        "campaignevents.autoscaling.campaigns.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    args = local_args(rendered_operator_args())
    peering_name = next(arg.split("=", 1)[1] for arg in args if arg.startswith("--peering="))
    assert peering_object(admin, peering_name) is None  # nothing in the apply creates it

    namespace = "shop"
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": namespace}})
    cluster = Cluster(admin, namespace)
    cluster.create_deployment("checkout", replicas=2)
    restricted = str(plane.restricted_kubeconfig_path)
    replicas = [  # each with a liveness port of its own, as two pods would have
        OperatorProcess(restricted, tmp_path / f"op-{i}.log", local_args(rendered_operator_args())).start()
        for i in range(2)
    ]
    try:

        def both_peers_registered() -> bool:
            peering = peering_object(admin, peering_name)
            return peering is not None and len(peering.get("status") or {}) == 2

        wait_until(both_peers_registered, timeout=30, message="both keep-alives in the peering")
        start = seconds_from_now(6)
        cluster.create_event(
            "sale",
            campaign_spec(
                start=start,
                end=start + timedelta(seconds=4),
                lead_time="3s",
                ramp_up_steps=1,
                ramp_down={"duration": "2s", "steps": 1},
                targets=[{"name": "checkout", "replicas": 5}],
            ),
        )
        wait_until(lambda: cluster.replicas("checkout") == 5, timeout=20, message="checkout 2 -> 5")
        wait_until(lambda: cluster.phase("sale") == "Completed", timeout=20, message="Completed")
        assert cluster.replicas("checkout") == 2
    finally:
        codes = [replica.stop() for replica in replicas]
        logs = [replica.log() for replica in replicas]
        print("\n".join(f"--- replica {i} ---\n{log[-3000:]}" for i, log in enumerate(logs)))
    assert codes == [0, 0]
    created = [log for log in logs if "Created the ClusterKopfPeering" in log]
    assert len(created) >= 1  # one created it; the other found it there (or both raced, one got a 409)
    acting = [log for log in logs if "Scaled Deployment" in log]
    assert len(acting) == 1, "exactly one replica is active"
    denied = [line for log in logs for line in log.splitlines() if denied_line(line)]
    assert not denied, "the rendered RBAC must grant all the operator does:\n" + "\n".join(denied[:10])


def restricted_api(control_plane: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(control_plane.restricted_kubeconfig_path))


def forbidden(call: Any, *args: Any) -> bool:
    try:
        call(*args)
    except ApiException as err:
        return err.status == 403
    return False


def test_manifests_install_and_the_operator_runs_a_campaign_as_its_service_account(
    installed: None, control_plane: ControlPlane, api_client: client.ApiClient, namespace: str, tmp_path: Path
):
    cluster = Cluster(api_client, namespace)
    cluster.create_deployment("order-tracking", replicas=2)
    cluster.create_deployment("checkout", replicas=1)
    cluster.create_hpa("checkout", target="checkout", min_replicas=1, max_replicas=3)
    args = local_args(rendered_operator_args())
    assert "--peering=campaign-autoscaler" in args
    operator = OperatorProcess(
        str(control_plane.restricted_kubeconfig_path), tmp_path / "op.log", args
    ).start()
    try:
        start = seconds_from_now(6)
        cluster.create_event(
            "sale",
            campaign_spec(
                start=start,
                end=start + timedelta(seconds=6),
                lead_time="3s",
                ramp_up_steps=1,
                ramp_down={"duration": "2s", "steps": 1},
                targets=[{"name": "order-tracking"}, {"name": "checkout", "replicas": 4}],
            ),
        )
        wait_until(
            lambda: cluster.replicas("order-tracking") == 5, timeout=15, message="order-tracking 2 -> 5"
        )
        wait_until(lambda: cluster.hpa_bounds("checkout") == (4, 4), timeout=5, message="HPA raised")
        wait_until(lambda: cluster.phase("sale") == "Completed", timeout=20, message="Completed")
        assert cluster.replicas("order-tracking") == 2
        assert cluster.hpa_bounds("checkout") == (1, 3)
        assert cluster.campaign_annotations("order-tracking") == {}
        cluster.delete_event("sale")
        wait_until(lambda: cluster.event("sale") is None, timeout=10, message="finalizer removed")
    finally:
        assert operator.stop() == 0
    log = operator.log()
    denied = [line for line in log.splitlines() if denied_line(line)]
    assert not denied, "the rendered RBAC must grant all the operator does:\n" + "\n".join(denied[:10])

    restricted = restricted_api(control_plane)
    core = client.CoreV1Api(restricted)
    assert forbidden(core.list_namespaced_secret, namespace)
    assert forbidden(core.list_secret_for_all_namespaces)
    assert forbidden(client.AppsV1Api(restricted).delete_namespaced_deployment, "order-tracking", namespace)


def test_the_rendered_rbac_lets_the_operator_raise_and_restore_a_keda_scaled_object(
    installed: None, control_plane: ControlPlane, api_client: client.ApiClient, namespace: str, tmp_path: Path
):
    cluster = Cluster(api_client, namespace)
    cluster.create_deployment("checkout", replicas=1)
    with scaled_object_crd(api_client):
        body = scaled_object_body("checkout", "checkout", min_count=1, max_count=3)
        cluster.custom.create_namespaced_custom_object(
            "keda.sh", "v1alpha1", namespace, "scaledobjects", body
        )

        def bounds() -> tuple[int | None, int | None]:
            spec = cluster.custom.get_namespaced_custom_object(
                "keda.sh", "v1alpha1", namespace, "scaledobjects", "checkout"
            )["spec"]
            return spec.get("minReplicaCount"), spec.get("maxReplicaCount")

        operator = OperatorProcess(
            str(control_plane.restricted_kubeconfig_path),
            tmp_path / "op.log",
            local_args(rendered_operator_args()),
        ).start()
        try:
            cluster.create_event("sale", active_soon([{"name": "checkout", "replicas": 4}]))
            wait_until(lambda: bounds() == (4, 4), timeout=15, message="ScaledObject raised to 4/4")
            cluster.delete_event("sale")
            wait_until(lambda: cluster.event("sale") is None, timeout=10, message="finalizer removed")
            assert bounds() == (1, 3)
        finally:
            assert operator.stop() == 0
    denied = [line for line in operator.log().splitlines() if denied_line(line)]
    assert not denied, "the rendered RBAC must grant all the operator does:\n" + "\n".join(denied[:10])


def test_namespaced_mode_touches_nothing_outside_its_namespaces(
    control_plane: ControlPlane,
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    campaignevent_crd: object,
):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import render_manifests
    finally:
        sys.path.pop(0)
    other = f"{namespace}-other"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": other}})
    rendered = render_manifests.render_chart(
        {"watchNamespaces": [namespace], "peering": {"enabled": False}, "replicaCount": 1}
    )
    objects = [
        doc.text
        for doc in render_manifests.rendered_objects(rendered)
        if doc.kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    ]
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text("\n---\n".join(objects))
    kubectl(control_plane.kubeconfig_path, "create", "namespace", SERVICE_ACCOUNT_NAMESPACE)  # may exist
    applied = kubectl(control_plane.kubeconfig_path, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    try:
        cluster = Cluster(api_client, namespace)
        cluster.create_deployment("checkout", replicas=2)
        cluster.create_deployment("checkout", replicas=2, namespace=other)
        restricted_apps = client.AppsV1Api(restricted_api(control_plane))
        assert forbidden(
            restricted_apps.patch_namespaced_deployment, "checkout", other, {"spec": {"replicas": 9}}
        )
        assert forbidden(restricted_apps.list_namespaced_deployment, other)
        args = ["--namespace", namespace, "--resync-interval=2s"]
        operator = OperatorProcess(
            str(control_plane.restricted_kubeconfig_path), tmp_path / "op.log", args
        ).start()
        try:
            start = seconds_from_now(3)
            cluster.create_event(
                "sale",
                campaign_spec(
                    start=start,
                    end=start + timedelta(seconds=4),
                    lead_time="1s",
                    ramp_up_steps=1,
                    ramp_down={"duration": "1s", "steps": 1},
                    targets=[{"name": "checkout", "replicas": 5}],
                ),
            )
            wait_until(
                lambda: cluster.replicas("checkout") == 5, timeout=10, message="scaled in its namespace"
            )
            wait_until(lambda: cluster.phase("sale") == "Completed", timeout=15, message="Completed")
            assert cluster.replicas("checkout") == 2
            assert cluster.replicas("checkout", namespace=other) == 2
        finally:
            assert operator.stop() == 0
        denied = [line for line in operator.log().splitlines() if denied_line(line)]
        assert not denied, "\n".join(denied[:10])
    finally:
        kubectl(
            control_plane.kubeconfig_path, "delete", "--wait=false", "--ignore-not-found", "-f", str(manifest)
        )
        client.CoreV1Api(api_client).delete_namespace(other)


def test_ha_standby_takes_over_when_the_active_replica_is_killed(
    installed: None, control_plane: ControlPlane, api_client: client.ApiClient, namespace: str, tmp_path: Path
):
    cluster = Cluster(api_client, namespace)
    cluster.create_deployment("checkout", replicas=2)
    base = [
        "--namespace",
        namespace,
        "--peering",
        "campaign-autoscaler",
        "--peering-lifetime",
        "4s",
        "--resync-interval",
        "2s",
    ]
    kubeconfig = str(control_plane.kubeconfig_path)
    # Operators that serve a namespace elect their leader through a KopfPeering object in it, which they
    # create at start-up.
    active = OperatorProcess(kubeconfig, tmp_path / "active.log", [*base, "--priority", "200"]).start()
    standby = OperatorProcess(kubeconfig, tmp_path / "standby.log", [*base, "--priority", "100"]).start()
    try:
        peering = wait_until(
            lambda: client.CustomObjectsApi(api_client).list_namespaced_custom_object(
                "kopf.dev", "v1", namespace, "kopfpeerings"
            )["items"],
            timeout=15,
            message="the KopfPeering created by the operators",
        )
        assert [item["metadata"]["name"] for item in peering] == ["campaign-autoscaler"]
        time.sleep(3)  # let both see each other
        start = seconds_from_now(4)
        end = start + timedelta(seconds=14)
        cluster.create_event(
            "sale",
            campaign_spec(
                start=start,
                end=end,
                lead_time="2s",
                ramp_up_steps=1,
                ramp_down={"duration": "4s", "steps": 2},
                targets=[{"name": "checkout", "replicas": 6}],
            ),
        )
        wait_until(lambda: cluster.phase("sale") == "Active", timeout=15, message="Active")
        assert cluster.replicas("checkout") == 6
        assert "Scaled Deployment" in active.log() and "Scaled Deployment" not in standby.log()
        active.kill()
        killed_at = time.time()
        cluster.scale("checkout", 3)  # drift while nobody is active: the standby must correct it
        wait_until(
            lambda: cluster.replicas("checkout") == 6, timeout=20, message="standby re-asserted the floor"
        )
        print(f"standby took over {time.time() - killed_at:.1f}s after the kill")
        wait_until(
            lambda: cluster.phase("sale") == "Completed", timeout=30, message="Completed by the standby"
        )
        assert cluster.replicas("checkout") == 2
        assert cluster.campaign_annotations("checkout") == {}
        assert "Restored Deployment" in standby.log()
    finally:
        print("--- active ---\n" + active.log()[-3000:] + "\n--- standby ---\n" + standby.log()[-3000:])
        active.stop()
        assert standby.stop() == 0


def test_metrics_endpoint_exposes_the_campaign(
    control_plane: ControlPlane,
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    campaignevent_crd: object,
):
    cluster = Cluster(api_client, namespace)
    cluster.create_deployment("checkout", replicas=2)
    port = free_port()
    args = ["--namespace", namespace, "--resync-interval", "2s", "--metrics-port", str(port)]
    operator = OperatorProcess(str(control_plane.kubeconfig_path), tmp_path / "op.log", args).start()
    try:
        cluster.create_event("sale", active_soon([{"name": "checkout", "replicas": 4}], opens_in=8))

        def page() -> str:
            try:
                return scrape(port)
            except OSError:
                return ""  # /metrics not served yet

        # The transition to Active is counted only when the operator saw the event Pending before: on a
        # busy machine its start-up may take seconds, so wait for that first.
        wait_until(
            lambda: 'campaign_autoscaler_events{phase="Pending"} 1.0' in page(),
            timeout=8,
            message="the event seen Pending before its window opened",
        )
        wait_until(lambda: cluster.phase("sale") == "Active", timeout=15, message="Active")
        text = wait_until(
            lambda: (body := page()) and 'campaign_autoscaler_events{phase="Active"} 1.0' in body and body,
            timeout=5,
            message="the Active event in /metrics",
        )
        labels = f'event="sale",namespace="{namespace}",target="checkout"'
        assert f"campaign_autoscaler_target_baseline_replicas{{{labels}}} 2.0" in text
        assert f"campaign_autoscaler_target_desired_replicas{{{labels}}} 4.0" in text
        assert 'campaign_autoscaler_transitions_total{phase="Active"} 1.0' in text
        assert 'campaign_autoscaler_scale_operations_total{reason="Scaled"}' in text
        lag_count = re.search(r"^campaign_autoscaler_transition_lag_seconds_count (\S+)$", text, re.MULTILINE)
        assert lag_count and float(lag_count.group(1)) >= 1
        assert "campaign_autoscaler_kubernetes_api_errors_total" in text or "kubernetes_api_errors" in text
    finally:
        assert operator.stop() == 0
