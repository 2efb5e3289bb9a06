"""An HPA created through autoscaling/v2beta2 (behavior, several metrics) keeps every field the operator does
not own, byte for byte, through the window and after it: the operator writes only minReplicas and maxReplicas,
with a JSON Patch against the object read in the same version (autoscaling/v1), so no conversion drops a
field. Read back through v1, v2beta1 and v2beta2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import (
    Cluster,
    OperatorProcess,
    campaign_spec,
    operator_watching,
    seconds_from_now,
    wait_until,
)

RESYNC = "2"
# autoscaling/v1 shows the HPA's status (which its controller keeps writing) in these two annotations.
V1_STATUS_ANNOTATIONS = (
    "autoscaling.alpha.kubernetes.io/conditions",
    "autoscaling.alpha.kubernetes.io/current-metrics",
)
VERSIONS = ("v1", "v2beta1", "v2beta2")

HPA_V2BETA2: dict[str, Any] = {
    "apiVersion": "autoscaling/v2beta2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "checkout", "labels": {"team": "shop"}, "annotations": {"owner": "checkout-team"}},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
        "minReplicas": 2,
        "maxReplicas": 4,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "300Mi"}},
            },
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "http_requests", "selector": {"matchLabels": {"verb": "GET"}}},
                    "target": {"type": "AverageValue", "averageValue": "80"},
                },
            },
            {
                "type": "Object",
                "object": {
                    "metric": {"name": "requests-per-second"},
                    "describedObject": {
                        "apiVersion": "networking.k8s.io/v1",
                        "kind": "Ingress",
                        "name": "main",
                    },
                    "target": {"type": "Value", "value": "2k"},
                },
            },
            {
                "type": "External",
                "external": {
                    "metric": {
                        "name": "queue_messages_ready",
                        "selector": {"matchLabels": {"queue": "orders"}},
                    },
                    "target": {"type": "AverageValue", "averageValue": "30"},
                },
            },
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
            },
        ],
        "behavior": {
            "scaleUp": {
                "stabilizationWindowSeconds": 0,
                "selectPolicy": "Max",
                "policies": [
                    {"type": "Percent", "value": 100, "periodSeconds": 15},
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                ],
            },
            "scaleDown": {
                "stabilizationWindowSeconds": 600,
                "selectPolicy": "Min",
                "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
            },
        },
    },
}


@pytest.fixture
def operator(
    kubeconfig: str, namespace: str, tmp_path: Path, campaignevent_crd: object
) -> Iterator[OperatorProcess]:
    with operator_watching(kubeconfig, namespace, tmp_path / "operator.log", RESYNC) as process:
        yield process


def read(cluster: Cluster, version: str) -> dict[str, Any]:
    """The HPA as autoscaling/<version> serves it, keys in the order the API server wrote them."""
    return cluster.custom.get_namespaced_custom_object(
        "autoscaling", version, cluster.namespace, "horizontalpodautoscalers", "checkout"
    )


def owned_by_the_user(hpa: dict[str, Any]) -> str:
    """Everything of the HPA the operator does not own, serialized as served: the spec without its two bounds,
    the labels and the annotations (in autoscaling/v1 they carry the metrics and behavior; not the status)."""
    spec = {key: value for key, value in hpa["spec"].items() if key not in ("minReplicas", "maxReplicas")}
    meta = hpa["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in V1_STATUS_ANNOTATIONS}
    return json.dumps([spec, meta.get("labels"), annotations])


def test_an_hpa_created_through_v2beta2_keeps_every_field_it_does_not_own_byte_for_byte(
    cluster: Cluster, operator: OperatorProcess
):
    cluster.create_deployment("checkout", replicas=2)
    cluster.custom.create_namespaced_custom_object(
        "autoscaling", "v2beta2", cluster.namespace, "horizontalpodautoscalers", HPA_V2BETA2
    )
    before = {version: read(cluster, version) for version in VERSIONS}
    spec_before = {version: json.dumps(before[version]["spec"]) for version in VERSIONS}
    assert before["v2beta2"]["spec"]["behavior"] == HPA_V2BETA2["spec"]["behavior"]
    assert len(before["v2beta2"]["spec"]["metrics"]) == 5
    start = seconds_from_now(4)
    cluster.create_event(
        "sale",
        campaign_spec(
            start=start,
            end=start + timedelta(seconds=4),
            lead_time="2s",
            ramp_up_steps=1,
            ramp_down={"duration": "2s", "steps": 1},
            targets=[{"name": "checkout", "replicas": 6}],
        ),
    )
    wait_until(lambda: cluster.hpa_bounds("checkout") == (6, 6), timeout=12, message="HPA raised to 6/6")
    during = {version: read(cluster, version) for version in VERSIONS}
    for version in VERSIONS:
        assert (during[version]["spec"]["minReplicas"], during[version]["spec"]["maxReplicas"]) == (6, 6)
        assert owned_by_the_user(during[version]) == owned_by_the_user(before[version]), version
    wait_until(lambda: cluster.phase("sale") == "Completed", timeout=25, message="Completed")
    after = {version: read(cluster, version) for version in VERSIONS}
    for version in VERSIONS:
        assert json.dumps(after[version]["spec"]) == spec_before[version], version
        assert owned_by_the_user(after[version]) == owned_by_the_user(before[version]), version
    assert cluster.campaign_annotations("checkout") == {}
