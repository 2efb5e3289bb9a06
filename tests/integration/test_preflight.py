"""`plan --kubeconfig` preflight against a real API server: Nodes made by hand (no kubelet: their status is
set at creation, and no node-lifecycle controller marks them NotReady), a pod bound to one of them, and a
ResourceQuota counted by the real quota controller.

A control plane of its own: the nodes are cluster-wide, and the verdict depends on every node there is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from campaign_autoscaler import cli
from campaign_autoscaler.devenv.controlplane import ControlPlane
from tests.integration.conftest import new_control_plane
from tests.integration.harness import deployment_body, wait_until

NAMESPACE = "shop"
EVENT = {
    "apiVersion": "autoscaling.campaigns.dev/v1alpha1",
    "kind": "CampaignEvent",
    "metadata": {"name": "sale-9-9", "namespace": NAMESPACE},
    "spec": {
        "timezone": "Asia/Jakarta",
        "start": "2026-09-09T00:00:00",
        "end": "2026-09-09T10:00:00",
        "leadTime": "30m",
        "targets": [{"name": "checkout", "replicas": 16}],
    },
}


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    with new_control_plane() as fresh:
        yield fresh


@pytest.fixture(scope="module")
def world(plane: ControlPlane) -> client.ApiClient:
    """Two Ready nodes of 4 CPU and 16Gi, a cordoned one of 64 CPU, a 2-CPU pod on the first; checkout at 2
    replicas of 1 CPU and 1Gi each (not bound to any node: there is no scheduler); a quota of 12 requested
    CPU, 4 of them used by those three pods."""
    api = config.new_client_from_config(config_file=str(plane.kubeconfig_path))
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    # The quota first, counted by its controller before any pod comes: a quota without a status refuses pods.
    core.create_namespaced_resource_quota(
        NAMESPACE, {"metadata": {"name": "compute"}, "spec": {"hard": {"requests.cpu": "12", "pods": "40"}}}
    )
    wait_until(
        lambda: core.read_namespaced_resource_quota("compute", NAMESPACE).status.hard,
        timeout=30,
        message="the quota controller's first count",
    )
    for name, cpu, cordoned in (("node-a", "4", False), ("node-b", "4", False), ("node-c", "64", True)):
        capacity = {"cpu": cpu, "memory": "16Gi", "pods": "110"}
        core.create_node(
            {
                "metadata": {"name": name},
                "spec": {"unschedulable": cordoned},
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                },
            }
        )
    core.create_namespaced_pod(
        NAMESPACE,
        {
            "metadata": {"name": "batch"},
            "spec": {
                "nodeName": "node-a",
                "containers": [
                    {
                        "name": "batch",
                        "image": "registry.invalid/batch:1",
                        "resources": {"requests": {"cpu": "2"}},
                    }
                ],
            },
        },
    )
    body = deployment_body("checkout", 2)
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "1", "memory": "1Gi"}
    }
    client.AppsV1Api(api).create_namespaced_deployment(NAMESPACE, body)

    def counted() -> bool:
        used = core.read_namespaced_resource_quota("compute", NAMESPACE).status.used or {}
        return used.get("requests.cpu") == "4"

    wait_until(counted, timeout=30, message="the quota controller counting the three pods")
    return api


def plan(plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    manifest = tmp_path / "sale.yaml"
    manifest.write_text(yaml.safe_dump(EVENT))
    argv = [
        "plan",
        "-f",
        str(manifest),
        "--kubeconfig",
        str(plane.kubeconfig_path),
        "--now",
        "2026-09-01T00:00:00Z",
    ]
    assert cli.main([*argv, *extra]) == 0
    return capsys.readouterr().out


def test_preflight_reads_nodes_pods_and_quotas_and_says_what_is_missing(
    plane: ControlPlane, world: client.ApiClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    checked: dict[str, Any] = json.loads(plan(plane, tmp_path, capsys, "-o", "json"))["events"][0][
        "preflight"
    ]
    nodes = {row["resource"]: row for row in checked["nodes"]}
    # 16 - 2 replicas = 14 pods of 1 CPU and 1Gi; two usable nodes of 4 CPU (the cordoned one counts for
    # nothing), 2 CPU of them requested by the batch pod.
    assert {key: nodes["cpu"][key] for key in ("floorsAdd", "allocatable", "requested", "free", "short")} == {
        "floorsAdd": "14",
        "allocatable": "8",
        "requested": "2",
        "free": "6",
        "short": "8",
    }
    assert nodes["memory"]["short"] == "0" and nodes["pods"]["floorsAdd"] == "14"
    quotas = {row["resource"]: row for row in checked["quotas"]}
    assert (quotas["requests.cpu"]["free"], quotas["requests.cpu"]["short"]) == ("8", "6")
    assert quotas["pods"]["short"] == "0"
    assert checked["ok"] is False
    assert checked["verdicts"] == [
        "ResourceQuota compute refuses the floors: they need 14 more requests.cpu, it has 8 left of 12; "
        "raise it by 6 (node headroom's placeholders count against it too)",
        "Needs 8 CPU more than the nodes have: the cluster autoscaler must add about 2 node(s) of 4 CPU "
        "before 2026-09-08 23:30:00 WIB; set nodeHeadroom.leadTime to at least your node provisioning time",
    ]


def test_preflight_as_tables_with_a_plain_verdict(
    plane: ControlPlane, world: client.ApiClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = plan(plane, tmp_path, capsys)
    assert "Preflight: nodes (Ready, schedulable)" in out
    assert "Preflight: ResourceQuotas of the namespace" in out
    assert "Verdict: Needs 8 CPU more than the nodes have" in out
    assert "Verdict: ResourceQuota compute refuses the floors" in out
