"""The real operator process against the real local kube-apiserver + etcd + controller-manager.

Windows are a few seconds long; every timing assertion has the tolerance the contract promises (a transition
lands within 1 s of its due time) plus the poll interval of the test itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client, watch

from campaign_autoscaler.adapters.eventlane import REPEAT_DELAY
from tests.integration.harness import (
    Cluster,
    OperatorProcess,
    active_soon,
    campaign_spec,
    seconds_from_now,
    utc_now,
    wait_until,
)

RESYNC = "2s"


@pytest.fixture
def operator(
    kubeconfig: str, namespace: str, tmp_path: Path, campaignevent_crd: object
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        str(kubeconfig), tmp_path / "operator.log", ["--namespace", namespace, "--resync-interval", RESYNC]
    ).start()
    process.wait_ready()
    yield process
    code = process.stop()
    print(process.log()[-4000:])
    assert code == 0, f"Operator exited with {code} on SIGTERM"


def _replicas_changes(cluster: Cluster, name: str, until: float) -> list[tuple[float, int]]:
    """Watch one Deployment and record (wall time, spec.replicas) at every change, until `until`."""
    changes: list[tuple[float, int]] = []
    stream = watch.Watch()
    last = None
    for item in stream.stream(
        cluster.apps.list_namespaced_deployment,
        cluster.namespace,
        field_selector=f"metadata.name={name}",
        timeout_seconds=max(1, int(until - time.time()) + 1),
    ):
        replicas = item["object"].spec.replicas
        if replicas != last:
            changes.append((time.time(), replicas))
            last = replicas
        if time.time() >= until:
            stream.stop()
    return changes


def test_prescale_lands_on_time_and_baseline_is_restored_exactly(cluster: Cluster, operator: OperatorProcess):
    cluster.create_deployment("order-tracking", replicas=2)
    start = seconds_from_now(12)
    end = start + timedelta(seconds=6)
    spec = campaign_spec(
        start=start,
        end=end,
        targets=[{"name": "order-tracking"}],
        lead_time="6s",
        ramp_up_steps=2,
        ramp_down={"duration": "4s", "steps": 2},
    )
    cluster.create_event("sale", spec)
    wait_until(lambda: cluster.phase("sale") == "Pending", timeout=10, message="phase Pending")
    assert cluster.campaign_annotations("order-tracking") == {}

    # floor = ceil(2 x 2.5) = 5; ramp-up: 2 + ceil(3 x 1/2) = 4 at start-6s, 5 at start-3s.
    changes = _replicas_changes(cluster, "order-tracking", until=end.timestamp() + 5.5)
    due = [
        (start.timestamp() - 6, 4),
        (start.timestamp() - 3, 5),
        (end.timestamp() + 2, 4),  # ramp-down 1/2: 2 + ceil(3 x 1/2)
        (end.timestamp() + 4, 2),  # the exact baseline
    ]
    observed = [(at, replicas) for at, replicas in changes if replicas != 2 or at > start.timestamp()]
    assert [replicas for _, replicas in observed] == [replicas for _, replicas in due], changes
    lags = [at - due_at for (at, _), (due_at, _) in zip(observed, due, strict=True)]
    print(f"transition lags (s): {[round(lag, 3) for lag in lags]}")
    assert all(-0.05 <= lag <= 1.0 for lag in lags), lags

    wait_until(lambda: cluster.phase("sale") == "Completed", timeout=5, message="phase Completed")
    assert cluster.replicas("order-tracking") == 2
    assert cluster.campaign_annotations("order-tracking") == {}
    status = cluster.status("sale")
    target = status["targets"][0]
    assert target["name"] == "order-tracking" and target["via"] == "Deployment"
    assert target["baselineReplicas"] == 2
    assert target["reason"] == "floor 5 = ceil(2.5 x baseline 2)"
    assert 0 < target["observedReadySeconds"] <= 6, target
    # The three steps that were not a release (2 -> 4 -> 5 -> 4) are one Event counted three times, showing
    # the latest, as Kubernetes' event recorder aggregates; repeats are written at most REPEAT_DELAY late.
    wait_until(
        lambda: [e.count for e in cluster.k8s_events(reason="Scaled", kind="Deployment")] == [3],
        timeout=REPEAT_DELAY + 5,
        message="one Scaled Event with count 3",
    )
    [scaled] = cluster.k8s_events(reason="Scaled", kind="Deployment")
    assert "Scaled Deployment" in scaled.message and "5 -> 4 for CampaignEvent sale" in scaled.message
    assert cluster.k8s_events(reason="Restored", kind="Deployment")


def test_capacity_is_ready_when_the_window_opens(cluster: Cluster, operator: OperatorProcess):
    cluster.create_deployment("checkout", replicas=1, labels={"campaign.tier": "checkout"})
    start = seconds_from_now(10)
    spec = campaign_spec(
        start=start,
        end=start + timedelta(seconds=30),
        lead_time="8s",
        ramp_up_steps=1,
        targets=[{"selector": {"matchLabels": {"campaign.tier": "checkout"}}, "replicas": 4}],
    )
    cluster.create_event("sale", spec)
    wait_until(lambda: time.time() >= start.timestamp(), timeout=20, message="window start")
    assert cluster.ready("checkout") >= 4
    wait_until(
        lambda: (cluster.condition("sale", "CapacityReady") or {}).get("status") == "True",
        timeout=3,
        message="CapacityReady=True",
    )
    wait_until(lambda: cluster.phase("sale") == "Active", timeout=2, message="Active")
    entry = cluster.status("sale")["targets"][0]
    assert entry["desiredReplicas"] == 4
    assert not cluster.k8s_events(reason="CapacityShortfall")


def test_hpa_backed_deployment_raises_the_hpa_and_restores_it(cluster: Cluster, operator: OperatorProcess):
    cluster.create_deployment("checkout", replicas=2)
    cluster.create_hpa("checkout", target="checkout", min_replicas=2, max_replicas=4)
    wait_until(lambda: cluster.replicas("checkout") == 2, timeout=10, message="HPA settled")
    start = seconds_from_now(6)
    end = start + timedelta(seconds=8)
    cluster.create_event(
        "sale",
        campaign_spec(
            start=start,
            end=end,
            lead_time="4s",
            ramp_up_steps=1,
            targets=[{"name": "checkout", "replicas": 6}],
        ),
    )
    # The HPA's minReplicas goes to the floor, maxReplicas (4) below the floor is raised too.
    wait_until(lambda: cluster.hpa_bounds("checkout") == (6, 6), timeout=12, message="HPA raised to 6/6")
    # The real HPA controller, not the operator, scales the Deployment.
    wait_until(lambda: cluster.replicas("checkout") == 6, timeout=10, message="HPA controller scaled to 6")
    entry = wait_until(
        lambda: (cluster.status("sale").get("targets") or [None])[0], timeout=5, message="target status"
    )
    assert entry["via"] == "HorizontalPodAutoscaler/checkout"
    wait_until(lambda: cluster.phase("sale") == "Completed", timeout=25, message="Completed")
    assert cluster.hpa_bounds("checkout") == (2, 4)
    assert cluster.campaign_annotations("checkout") == {}
    wait_until(
        lambda: cluster.replicas("checkout") == 4,
        timeout=10,
        message="HPA controller brought replicas back within its restored max",
    )


def test_overlapping_events_take_the_max_and_restore_once(cluster: Cluster, operator: OperatorProcess):
    cluster.create_deployment("checkout", replicas=3)
    start = seconds_from_now(4)
    cluster.create_event(
        "small",
        campaign_spec(
            start=start,
            end=start + timedelta(seconds=6),
            lead_time="2s",
            ramp_up_steps=1,
            ramp_down={"duration": "0s", "steps": 1},
            targets=[{"name": "checkout", "replicas": 5}],
        ),
    )
    cluster.create_event(
        "big",
        campaign_spec(
            start=start,
            end=start + timedelta(seconds=14),
            lead_time="2s",
            ramp_up_steps=1,
            ramp_down={"duration": "0s", "steps": 1},
            targets=[{"name": "checkout", "replicas": 8}],
        ),
    )
    wait_until(
        lambda: (
            cluster.claims("checkout") == {f"{cluster.namespace}/small": 5, f"{cluster.namespace}/big": 8}
        ),
        timeout=10,
        message="both claims",
    )
    assert cluster.replicas("checkout") == 8
    wait_until(lambda: cluster.phase("small") == "Completed", timeout=12, message="small Completed")
    assert cluster.replicas("checkout") == 8, "the remaining claim keeps the target at its max"
    assert cluster.claims("checkout") == {f"{cluster.namespace}/big": 8}
    wait_until(lambda: cluster.phase("big") == "Completed", timeout=12, message="big Completed")
    assert cluster.replicas("checkout") == 3
    assert cluster.campaign_annotations("checkout") == {}
    restored = cluster.k8s_events(reason="Restored", kind="Deployment")
    assert len(restored) == 1, [e.message for e in restored]


def test_deleting_an_event_mid_window_releases_at_once(cluster: Cluster, operator: OperatorProcess):
    cluster.create_deployment("checkout", replicas=2)
    start = seconds_from_now(3)
    long_window = {
        "start": start,
        "end": start + timedelta(minutes=10),
        "lead_time": "1s",
        "ramp_up_steps": 1,
    }
    cluster.create_event("one", campaign_spec(**long_window, targets=[{"name": "checkout", "replicas": 6}]))
    cluster.create_event("two", campaign_spec(**long_window, targets=[{"name": "checkout", "replicas": 4}]))
    wait_until(
        lambda: cluster.phase("one") == "Active" and cluster.replicas("checkout") == 6,
        timeout=10,
        message="Active at 6",
    )
    cluster.delete_event("one")
    deleted_at = time.time()
    wait_until(lambda: cluster.replicas("checkout") == 4, timeout=5, message="back to the remaining claim")
    assert time.time() - deleted_at < 3
    wait_until(lambda: cluster.event("one") is None, timeout=5, message="finalizer released")
    cluster.delete_event("two")
    wait_until(lambda: cluster.replicas("checkout") == 2, timeout=5, message="back to baseline")
    assert cluster.campaign_annotations("checkout") == {}


def test_operator_killed_mid_window_loses_nothing(
    cluster: Cluster, kubeconfig: str, namespace: str, tmp_path: Path, campaignevent_crd: object
):
    cluster.create_deployment("order-tracking", replicas=3)
    args = ["--namespace", namespace, "--resync-interval", RESYNC]
    first = OperatorProcess(str(kubeconfig), tmp_path / "first.log", args).start()
    start = seconds_from_now(5)
    end = start + timedelta(seconds=6)
    cluster.create_event(
        "sale",
        campaign_spec(
            start=start,
            end=end,
            lead_time="3s",
            ramp_up_steps=1,
            ramp_down={"duration": "4s", "steps": 2},
            targets=[{"name": "order-tracking", "multiplier": 3}],
        ),
    )
    wait_until(lambda: cluster.replicas("order-tracking") == 9, timeout=10, message="pre-scaled to 9")
    first.kill()
    # Someone scales the target by hand while no operator runs: the baseline must not follow.
    cluster.scale("order-tracking", 7)
    second = OperatorProcess(str(kubeconfig), tmp_path / "second.log", args).start()
    try:
        wait_until(lambda: cluster.replicas("order-tracking") == 9, timeout=10, message="floor re-asserted")
        wait_until(lambda: cluster.phase("sale") == "Completed", timeout=20, message="Completed")
        assert cluster.replicas("order-tracking") == 3
        assert cluster.campaign_annotations("order-tracking") == {}
    finally:
        assert second.stop() == 0


def test_drift_below_the_floor_is_corrected_within_one_resync(cluster: Cluster, operator: OperatorProcess):
    cluster.create_deployment("checkout", replicas=2)
    cluster.create_event("sale", active_soon([{"name": "checkout", "replicas": 6}]))
    wait_until(lambda: cluster.replicas("checkout") == 6, timeout=10, message="floor 6")
    cluster.scale("checkout", 3)
    scaled_at = time.time()
    wait_until(lambda: cluster.replicas("checkout") == 6, timeout=5, message="floor restored")
    assert time.time() - scaled_at <= 2.0 + 1.0  # one resync interval plus the test's own poll
    # Above the floor is left alone: a floor, not a ceiling.
    cluster.scale("checkout", 9)
    operator.wait_for_passes(cluster.namespace, "sale", 2)
    assert cluster.replicas("checkout") == 9


def test_invalid_event_touches_nothing(cluster: Cluster, operator: OperatorProcess):
    cluster.create_deployment("checkout", replicas=2)
    now = utc_now()
    spec = campaign_spec(
        start=now + timedelta(seconds=5),
        end=now - timedelta(seconds=5),
        targets=[{"name": "checkout", "replicas": 6}],
    )
    cluster.create_event("broken", spec)
    wait_until(lambda: cluster.phase("broken") == "Invalid", timeout=10, message="phase Invalid")
    valid = cluster.condition("broken", "Valid")
    assert valid["status"] == "False"
    assert valid["message"].startswith("spec.end:"), valid
    operator.wait_for_passes(cluster.namespace, "broken", 2)
    assert cluster.replicas("checkout") == 2
    assert cluster.campaign_annotations("checkout") == {}
    assert cluster.k8s_events(reason="InvalidSpec")


def test_an_event_never_touches_another_namespace(
    cluster: Cluster, api_client: client.ApiClient, kubeconfig: str, tmp_path: Path, campaignevent_crd: object
):
    other = f"{cluster.namespace}-other"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": other}})
    try:
        cluster.create_deployment("checkout", replicas=2, namespace=other)
        cluster.create_deployment("checkout", replicas=2, labels={"tier": "x"})
        # An operator that watches both namespaces: isolation must come from the event, not the scope.
        args = ["--namespace", cluster.namespace, "--namespace", other, "--resync-interval", RESYNC]
        with_operator = OperatorProcess(str(kubeconfig), tmp_path / "op.log", args).start()
        try:
            by_labels = {"selector": {"matchLabels": {"app": "checkout"}}}
            cluster.create_event("sale", active_soon([{"name": "checkout", "replicas": 5}, by_labels]))
            wait_until(lambda: cluster.replicas("checkout") == 5, timeout=10, message="own namespace scaled")
            with_operator.wait_for_passes(cluster.namespace, "sale", 2)
            assert cluster.replicas("checkout", namespace=other) == 2
            other_annotations = cluster.deployment("checkout", namespace=other).metadata.annotations or {}
            assert not any(key.startswith("autoscaling.campaigns.dev/") for key in other_annotations)
        finally:
            assert with_operator.stop() == 0
    finally:
        core.delete_namespace(other)


def test_dry_run_plans_and_patches_nothing(cluster: Cluster, operator: OperatorProcess):
    cluster.create_deployment("checkout", replicas=2)
    cluster.create_event("sale", active_soon([{"name": "checkout", "replicas": 6}], dryRun=True))
    wait_until(lambda: cluster.phase("sale") == "Active", timeout=10, message="Active")
    entry = wait_until(
        lambda: (cluster.status("sale").get("targets") or [None])[0], timeout=5, message="target status"
    )
    assert entry["desiredReplicas"] == 6
    operator.wait_for_passes(cluster.namespace, "sale", 2)
    assert cluster.replicas("checkout") == 2
    assert cluster.campaign_annotations("checkout") == {}
    dry = [e.message for e in cluster.k8s_events(reason="DryRun")]
    assert any("Would scale Deployment" in m and "2 -> 6" in m for m in dry), dry


def test_spec_edit_replans_from_the_new_spec(cluster: Cluster, operator: OperatorProcess):
    cluster.create_deployment("checkout", replicas=2)
    cluster.create_deployment("search", replicas=1)
    targets = [{"name": "checkout", "replicas": 6}, {"name": "search", "replicas": 3}]
    cluster.create_event("sale", active_soon(targets))
    wait_until(
        lambda: cluster.replicas("checkout") == 6 and cluster.replicas("search") == 3,
        timeout=10,
        message="both scaled",
    )
    cluster.patch_event_spec("sale", {"targets": [{"name": "checkout", "replicas": 8}]})
    edited_at = time.time()
    wait_until(
        lambda: cluster.replicas("checkout") == 8 and cluster.replicas("search") == 1,
        timeout=5,
        message="re-planned: checkout 8, search released",
    )
    assert time.time() - edited_at < 2.5, "a spec edit is acted on at once, not at the next resync"
    assert cluster.campaign_annotations("search") == {}


def test_a_lead_time_too_short_for_readiness_is_reported(cluster: Cluster, operator: OperatorProcess):
    # Pods here become Ready 2 s after they are created: a 1 s lead time cannot be enough.
    cluster.create_deployment("checkout", replicas=1)
    cluster.create_event("sale", active_soon([{"name": "checkout", "replicas": 4}], opens_in=3))
    shortfall = wait_until(
        lambda: cluster.k8s_events(reason="CapacityShortfall"),
        timeout=10,
        message="a CapacityShortfall Warning at the window start",
    )
    assert shortfall[0].type == "Warning"
    assert "had 1 of 4 replicas Ready when the window of CampaignEvent sale opened" in shortfall[0].message
    too_short = wait_until(
        lambda: cluster.k8s_events(reason="LeadTimeTooShort"),
        timeout=10,
        message="a LeadTimeTooShort Warning once Ready",
    )
    assert "more than the leadTime of 1s" in too_short[0].message
    # The Warning is posted by the pass that writes the status right after it.
    entry = wait_until(
        lambda: next(
            (t for t in cluster.status("sale").get("targets") or [] if "observedReadySeconds" in t), None
        ),
        timeout=5,
        message="observedReadySeconds in the status",
    )
    assert entry["observedReadySeconds"] > 1.0
    assert cluster.condition("sale", "CapacityReady")["status"] == "True"


def test_a_recurring_event_returns_to_pending_and_scales_again_for_its_next_window(
    cluster: Cluster, operator: OperatorProcess
):
    cluster.create_deployment("checkout", replicas=2)
    spec = {
        "timezone": "UTC",
        "schedule": {"cron": "* * * * *", "duration": "10s"},  # a window every minute
        "leadTime": "4s",
        "rampDown": {"duration": "2s", "steps": 1},
        "targets": [{"name": "checkout", "replicas": 5}],
    }
    cluster.create_event("every-minute", spec)
    scaled_windows: set[str] = set()
    restored_between = False
    deadline = time.time() + 150
    while len(scaled_windows) < 2 and time.time() < deadline:
        status = cluster.status("every-minute")
        replicas = cluster.replicas("checkout")
        window = (status.get("window") or {}).get("start")
        if replicas == 5 and status.get("phase") in ("PreScaling", "Active", "RampingDown") and window:
            if scaled_windows and window not in scaled_windows:
                assert restored_between, "the baseline came back between two windows"
            scaled_windows.add(window)
        if scaled_windows and replicas == 2 and status.get("phase") == "Pending":
            restored_between = True
            assert cluster.campaign_annotations("checkout") == {}
            assert status["nextTransition"] < status["window"]["start"], status
        time.sleep(0.3)
    assert len(scaled_windows) == 2, scaled_windows
    first, second = sorted(scaled_windows)
    gap = datetime.fromisoformat(second) - datetime.fromisoformat(first)
    assert gap == timedelta(minutes=1)
