"""KEDA ScaledObjects on the real API server: the operator raises the ScaledObject, never the HPA KEDA owns
(a stand-in controller rewrites that HPA from the ScaledObject every second, as KEDA does), and restores both
exactly; a paused ScaledObject is left alone; without KEDA's CRD nothing changes and nothing errors; a SIGKILL
between the two writes loses no baseline, and the collector restores a ScaledObject whose event is gone."""

from __future__ import annotations

import copy
import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler.adapters.kube import KubeAdapter
from campaign_autoscaler.adapters.scaledobjects import scaled_object_view
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.views import deployment_view
from campaign_autoscaler.devenv.controlplane import ControlPlane
from campaign_autoscaler.planning.claims import BASELINE_ANNOTATION
from tests.integration.faultproxy import FaultProxy, RequestKind, ServingCertificate, proxied_kubeconfig
from tests.integration.harness import (
    Cluster,
    OperatorProcess,
    active_soon,
    campaign_spec,
    operator_watching,
    seconds_from_now,
    utc_now,
    wait_until,
)
from tests.integration.keda import GROUP, PLURAL, VERSION, KedaStandIn, scaled_object_body, scaled_object_crd

RESYNC = "2"
FIELD_MANAGER = "campaign-autoscaler"


@pytest.fixture
def keda_crd(api_client: client.ApiClient) -> Iterator[None]:
    with scaled_object_crd(api_client):
        yield


def start_operator(kubeconfig: str | Path, namespace: str, log_path: Path) -> OperatorProcess:
    return OperatorProcess(
        str(kubeconfig), log_path, ["--namespace", namespace, "--resync-interval", RESYNC]
    ).start()


@pytest.fixture
def operator(
    kubeconfig: str, namespace: str, tmp_path: Path, campaignevent_crd: object, keda_crd: None
) -> Iterator[OperatorProcess]:
    """The operator, started once KEDA's CRD is installed (it finds it by discovery at start-up)."""
    with operator_watching(kubeconfig, namespace, tmp_path / "operator.log", RESYNC) as process:
        yield process


def create_scaled_object(cluster: Cluster, body: dict[str, Any]) -> None:
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL, body)


def scaled_object(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.custom.get_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL, name)


def managers(obj: dict[str, Any]) -> set[str]:
    return {entry.get("manager") for entry in obj["metadata"].get("managedFields") or ()}


def keda_hpa(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.custom.get_namespaced_custom_object(
        "autoscaling", "v2beta2", cluster.namespace, "horizontalpodautoscalers", name
    )


def target_entry(cluster: Cluster, event: str) -> dict[str, Any] | None:
    return (cluster.status(event).get("targets") or [None])[0]


def test_the_floor_holds_on_the_scaled_object_through_the_window_and_both_are_restored(
    cluster: Cluster, operator: OperatorProcess
):
    cluster.create_deployment("checkout", replicas=2)
    # minReplicaCount absent (KEDA's 0), maxReplicaCount 4 below the floor of 6.
    create_scaled_object(cluster, scaled_object_body("checkout", "checkout", min_count=None, max_count=4))
    with KedaStandIn(operator_api(cluster), cluster.namespace, "checkout") as keda:
        spec_before = copy.deepcopy(scaled_object(cluster, "checkout")["spec"])
        hpa_before = keda_hpa(cluster, "keda-hpa-checkout")["spec"]
        start = seconds_from_now(5)
        end = start + timedelta(seconds=10)
        cluster.create_event(
            "sale",
            campaign_spec(
                start=start,
                end=end,
                lead_time="3s",
                ramp_up_steps=1,
                ramp_down={"duration": "2s", "steps": 1},
                targets=[{"name": "checkout", "replicas": 6}],
            ),
        )
        wait_until(
            lambda: scaled_object(cluster, "checkout")["spec"].get("minReplicaCount") == 6,
            timeout=12,
            message="ScaledObject minReplicaCount raised to 6",
        )
        raised = scaled_object(cluster, "checkout")["spec"]
        assert raised["maxReplicaCount"] == 6  # it was below the floor
        assert {k: v for k, v in raised.items() if not k.endswith("ReplicaCount")} == {
            k: v for k, v in spec_before.items() if not k.endswith("ReplicaCount")
        }
        entry = wait_until(lambda: target_entry(cluster, "sale"), timeout=5, message="target status")
        assert entry["via"] == "ScaledObject/checkout"
        # KEDA (the stand-in) carries the floor to its HPA; the HPA controller to the Deployment.
        wait_until(lambda: keda.hpa_bounds() == (6, 6), timeout=5, message="KEDA's HPA rewritten to 6/6")
        wait_until(lambda: cluster.replicas("checkout") == 6, timeout=10, message="Deployment scaled to 6")

        # The floor holds while KEDA rewrites its HPA every second: sampled until the middle of the window.
        lows = []
        while utc_now() < start + timedelta(seconds=4):
            so_min = scaled_object(cluster, "checkout")["spec"].get("minReplicaCount")
            hpa_min = keda.hpa_bounds()[0]
            if so_min != 6 or hpa_min != 6:
                lows.append((so_min, hpa_min))
            time.sleep(0.25)
        assert lows == []

        # A KEDA-like rewrite of the ScaledObject below the floor is raised again from the watch.
        cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, PLURAL, "checkout", {"spec": {"minReplicaCount": 1}}
        )
        lowered = time.monotonic()
        wait_until(
            lambda: scaled_object(cluster, "checkout")["spec"].get("minReplicaCount") == 6,
            timeout=5,
            message="ScaledObject raised again after a rewrite below the floor",
        )
        print(f"ScaledObject raised again {time.monotonic() - lowered:.2f}s after the rewrite")

        wait_until(lambda: cluster.phase("sale") == "Completed", timeout=30, message="Completed")
        assert scaled_object(cluster, "checkout")["spec"] == spec_before  # minReplicaCount absent again
        wait_until(
            lambda: keda_hpa(cluster, "keda-hpa-checkout")["spec"] == hpa_before,
            timeout=5,
            message="KEDA's HPA back to what it derives from the restored ScaledObject",
        )
        assert keda.errors == []
    assert cluster.campaign_annotations("checkout") == {}
    assert FIELD_MANAGER not in managers(keda_hpa(cluster, "keda-hpa-checkout"))  # never touched
    assert FIELD_MANAGER in managers(scaled_object(cluster, "checkout"))
    restored = [e.message for e in cluster.k8s_events("Restored", kind="Deployment")]
    assert any("ScaledObject" in message and "minReplicaCount 6 -> 0" in message for message in restored)


def operator_api(cluster: Cluster) -> client.ApiClient:
    return cluster.custom.api_client


def test_a_paused_scaled_object_is_left_alone_with_a_warning(cluster: Cluster, operator: OperatorProcess):
    cluster.create_deployment("checkout", replicas=3)
    create_scaled_object(
        cluster, scaled_object_body("checkout", "checkout", min_count=2, max_count=8, paused=True)
    )
    before = scaled_object(cluster, "checkout")
    cluster.create_event("sale", active_soon([{"name": "checkout", "replicas": 6}]))
    entry = wait_until(
        lambda: (e := target_entry(cluster, "sale")) and cluster.phase("sale") == "Active" and e,
        timeout=15,
        message="the event Active with its target's status",
    )
    assert entry["via"] == "ScaledObject/checkout (paused)"
    warning = wait_until(
        lambda: cluster.k8s_events("ScaledObjectPaused", kind="CampaignEvent"), timeout=5, message="Warning"
    )
    assert warning[0].type == "Warning"
    assert f"ScaledObject {cluster.namespace}/checkout" in warning[0].message
    operator.wait_for_passes(cluster.namespace, "sale", 2)
    after = scaled_object(cluster, "checkout")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # nothing written
    assert cluster.campaign_annotations("checkout") == {}
    assert cluster.replicas("checkout") == 3
    assert len(cluster.k8s_events("ScaledObjectPaused")) == 1  # once, not on every pass


def test_without_keda_s_crd_nothing_changes_and_nothing_errors(
    cluster: Cluster, kubeconfig: str, tmp_path: Path, api_client: client.ApiClient
):
    extensions = client.ApiextensionsV1Api(api_client)
    names = {crd.metadata.name for crd in extensions.list_custom_resource_definition().items}
    assert "scaledobjects.keda.sh" not in names
    cluster.create_deployment("checkout", replicas=2)
    with operator_watching(kubeconfig, cluster.namespace, tmp_path / "operator.log", RESYNC) as operator:
        cluster.create_event("sale", active_soon([{"name": "checkout", "replicas": 5}]))
        wait_until(lambda: cluster.replicas("checkout") == 5, timeout=15, message="Deployment scaled to 5")
        entry = wait_until(lambda: target_entry(cluster, "sale"), timeout=5, message="target status")
        assert entry["via"] == "Deployment"
        operator.wait_for_passes(cluster.namespace, "sale", 2)
    log = operator.log()
    assert "Traceback" not in log and "ScaledObject" not in log, log[-3000:]


def test_sigkill_between_the_two_writes_then_the_collector_restores_the_scaled_object(
    cluster: Cluster,
    control_plane: ControlPlane,
    tmp_path: Path,
    campaignevent_crd: object,
    keda_crd: None,
):
    cluster.create_deployment("checkout", replicas=2)
    create_scaled_object(cluster, scaled_object_body("checkout", "checkout", min_count=2, max_count=None))
    spec_before = copy.deepcopy(scaled_object(cluster, "checkout")["spec"])
    certificate = ServingCertificate(tmp_path / "certificate")
    with FaultProxy(
        control_plane.url, seed=13, upstream_ca=control_plane.ca_path, certificate=certificate
    ) as proxy:
        kubeconfig = proxied_kubeconfig(control_plane.kubeconfig_path, proxy, tmp_path / "proxied.kubeconfig")
        first = start_operator(kubeconfig, cluster.namespace, tmp_path / "operator-1.log")

        def kill(_kind: RequestKind) -> None:
            assert first.process is not None
            os.kill(first.process.pid, signal.SIGKILL)

        def raises_the_scaled_object(kind: RequestKind) -> bool:
            return kind.verb == "patch" and kind.resource == PLURAL and kind.namespace == cluster.namespace

        # Killed as the ScaledObject is about to be raised: the baseline is recorded, the raise never lands.
        trap = proxy.arm_trap(raises_the_scaled_object, kill, forward=False)
        cluster.create_event("sale", active_soon([{"name": "checkout", "replicas": 6}]))
        assert trap.sprung.wait(timeout=20), "no write of the ScaledObject"
        first.kill()
        annotations = cluster.campaign_annotations("checkout")
        assert annotations[BASELINE_ANNOTATION] == (
            '{"scaledObject": "checkout", "minReplicaCount": 2, "maxReplicaCount": null, "replicas": 2}'
        )
        assert scaled_object(cluster, "checkout")["spec"] == spec_before

        # A new operator carries the claim out from what the first one recorded.
        second = start_operator(kubeconfig, cluster.namespace, tmp_path / "operator-2.log")
        wait_until(
            lambda: scaled_object(cluster, "checkout")["spec"].get("minReplicaCount") == 6,
            timeout=15,
            message="ScaledObject raised after the restart",
        )
        assert (
            cluster.campaign_annotations("checkout")[BASELINE_ANNOTATION] == annotations[BASELINE_ANNOTATION]
        )
        assert second.stop() == 0

        # The event goes while no operator runs (its finalizer removed by hand): the collector restores.
        cluster.delete_event("sale")
        cluster.custom.patch_namespaced_custom_object(
            "autoscaling.campaigns.dev",
            "v1alpha1",
            cluster.namespace,
            "campaignevents",
            "sale",
            {"metadata": {"finalizers": None}},
        )
        wait_until(lambda: cluster.event("sale") is None, timeout=10, message="event gone")
        third = start_operator(kubeconfig, cluster.namespace, tmp_path / "operator-3.log")
        try:
            wait_until(
                lambda: scaled_object(cluster, "checkout")["spec"] == spec_before,
                timeout=15,
                message="the collector restored the ScaledObject exactly",
            )
            wait_until(
                lambda: cluster.campaign_annotations("checkout") == {}, timeout=5, message="annotations gone"
            )
            released = cluster.k8s_events("OrphanClaimReleased")
            assert released and "ScaledObject" in released[0].message
        finally:
            assert third.stop() == 0


class RecordingAdapter(KubeAdapter):
    """The real adapter, noting (method, path, HTTP status) of each request."""

    def __init__(self, api_client: client.ApiClient) -> None:
        super().__init__(api_client)
        self.requests: list[tuple[str, str, int]] = []

    def _request(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        try:
            answer = super()._request(method, path, **options)
        except ApiException as err:
            self.requests.append((method, path, err.status))
            raise
        self.requests.append((method, path, 200))
        return answer


def test_the_adapter_read_afresh_finds_the_scaled_object_not_keda_s_hpa(
    cluster: Cluster, api_client: client.ApiClient, keda_crd: None
):
    """The path of a retry after a refused write, the collector and a release: the target's autoscaler is
    read afresh (no watch), and a stale ScaledObject is refused and decided again."""
    cluster.create_deployment("checkout", replicas=2)
    create_scaled_object(cluster, scaled_object_body("checkout", "checkout", min_count=None, max_count=None))
    with KedaStandIn(
        api_client, cluster.namespace, "checkout"
    ):  # KEDA's HPA exists, owned by the ScaledObject
        adapter = RecordingAdapter(api_client)
        empty = NamespaceSnapshot.of([], [], cluster.namespace)
        outcome = adapter.set_claim(empty, "checkout", "shop/sale", 7, owner_uid="uid", fresh=True)
        assert outcome is not None and outcome.via == "ScaledObject/checkout"
        assert scaled_object(cluster, "checkout")["spec"].get("minReplicaCount") == 7
        assert "maxReplicaCount" not in scaled_object(cluster, "checkout")["spec"]  # 100 is above the floor
        # A snapshot older than a rewrite of the ScaledObject: the guarded patch is refused, decided again.
        serialize = api_client.sanitize_for_serialization
        stale = NamespaceSnapshot.of(
            [deployment_view(serialize(cluster.deployment("checkout")))],
            [scaled_object_view(scaled_object(cluster, "checkout"))],
            cluster.namespace,
        )
        cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, PLURAL, "checkout", {"spec": {"minReplicaCount": 3}}
        )
        outcome = adapter.set_claim(stale, "checkout", "shop/sale", 9, owner_uid="uid")
        assert outcome is not None and outcome.written
        assert [status for method, path, status in adapter.requests if method == "PATCH" and PLURAL in path][
            -2:
        ] == [422, 200]
        assert scaled_object(cluster, "checkout")["spec"].get("minReplicaCount") == 9
        released = adapter.set_claim(empty, "checkout", "shop/sale", None, fresh=True)
        assert released is not None and released.released
    assert "minReplicaCount" not in scaled_object(cluster, "checkout")["spec"]
    assert cluster.campaign_annotations("checkout") == {}
    assert FIELD_MANAGER not in managers(keda_hpa(cluster, "keda-hpa-checkout"))
