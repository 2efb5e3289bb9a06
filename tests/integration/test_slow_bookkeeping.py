"""Bookkeeping never delays a transition: with every status write and every Event held 8 s by the API
server, the ramp steps of three events still land on time, each within 1 s of its due time as a watch sees
it, and the held status writes land afterwards (a newer status replacing one still waiting)."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

from kubernetes import client

from campaign_autoscaler.devenv.controlplane import ControlPlane
from campaign_autoscaler.planning import parse_spec
from campaign_autoscaler.planning.timeline import ramp_replicas, transitions
from campaign_autoscaler.planning.windows import resolve_window
from tests.integration.faultproxy import (
    Delay,
    DeploymentRecorder,
    FaultPlan,
    FaultProxy,
    ServingCertificate,
    lag_after,
    proxied_kubeconfig,
    replica_changes,
)
from tests.integration.harness import Cluster, campaign_spec, running_operator, seconds_from_now, wait_until

HELD_SECONDS = 8.0  # every status write and every Event POST or PATCH
ON_TIME_SECONDS = 1.0
BASELINE, MULTIPLIER = 1, 4.0
TARGETS = ("web-a", "web-b", "web-c")
SLOW_BOOKKEEPING = FaultPlan(
    delays=(
        Delay(frozenset({"patch", "update"}), "campaignevents", HELD_SECONDS, subresource="status"),
        Delay(frozenset({"create", "patch"}), "events", HELD_SECONDS),
    )
)


def test_ramp_steps_land_on_time_while_every_status_write_and_event_is_held(
    control_plane: ControlPlane, api_client: client.ApiClient, cluster: Cluster, tmp_path: Path
) -> None:
    for name in TARGETS:
        cluster.create_deployment(name, BASELINE)
    start = seconds_from_now(16)
    spec = campaign_spec(
        start=start,
        end=start + timedelta(seconds=6),
        lead_time="9s",
        ramp_up_steps=3,
        ramp_down={"duration": "6s", "steps": 3},
        multiplier=MULTIPLIER,
        targets=[],
    )
    specs = {f"sale-{name}": {**spec, "targets": [{"name": name}]} for name in TARGETS}
    proxy = FaultProxy(
        control_plane.url,
        seed=0,
        upstream_ca=control_plane.ca_path,
        certificate=ServingCertificate(tmp_path / "proxy"),
        plan=SLOW_BOOKKEEPING,
    ).start()
    kubeconfig = proxied_kubeconfig(control_plane.kubeconfig_path, proxy, tmp_path / "proxied.kubeconfig")
    args = ["--namespace", cluster.namespace, "--resync-interval", "30s"]
    try:
        with (
            DeploymentRecorder(api_client, namespace=cluster.namespace) as watching,
            running_operator(str(kubeconfig), tmp_path / "operator.log", args),
        ):
            for event, event_spec in specs.items():
                cluster.create_event(event, event_spec)
            parsed = parse_spec(specs[f"sale-{TARGETS[0]}"])
            window = resolve_window(parsed, start)
            steps = transitions(parsed, window)
            wait_until(
                lambda: all(cluster.phase(event) == "Completed" for event in specs),
                timeout=(steps[-1].at - start).total_seconds() + 16 + 4 * HELD_SECONDS,
                message="every event Completed, its held status writes landed",
            )
        traffic = proxy.snapshot()
    finally:
        proxy.stop()

    floor = math.ceil(BASELINE * MULTIPLIER)
    history = replica_changes(watching.versions())
    late: list[str] = []
    for name in TARGETS:
        changes = history[(cluster.namespace, name)]
        assert max(replicas for _, replicas in changes) == floor
        level = BASELINE
        for step, following in zip(steps, [*steps[1:], None], strict=True):
            wanted = ramp_replicas(BASELINE, floor, step.fraction)
            if wanted == level:
                continue
            until = following.at.timestamp() if following is not None else math.inf
            lag = lag_after(changes, step.at.timestamp(), wanted, until)
            if lag is None or lag > ON_TIME_SECONDS:
                late.append(f"{name} {step.label} -> {wanted}: {lag}")
            level = wanted
        assert changes[-1][1] == BASELINE
    assert late == [], f"steps late or never seen while bookkeeping was held {HELD_SECONDS} s: {late}"
    assert traffic.count("patch campaignevents/status") >= len(specs), "status writes went through the proxy"
    assert traffic.count("create events") >= 1, "Events went through the proxy"
