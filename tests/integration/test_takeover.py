"""Fast, safe takeover with the default flags: two operators with Kopf peering, the active one stopped just
before a transition is due; the standby makes the transition within 15 s of a SIGKILL and within 2 s of a
SIGTERM, and the two never both write.

Each round: a fresh pair (the active one with the higher priority), a Deployment and an event whose
pre-scale is due one second after the active one is stopped. The time from the stop to the replica change
(as a watch of the test's own sees it) is the takeover time of that round.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client

from campaign_autoscaler.devenv.controlplane import ControlPlane
from tests.integration.faultproxy import DeploymentRecorder
from tests.integration.harness import (
    Cluster,
    OperatorProcess,
    campaign_spec,
    seconds_from_now,
    wait_until,
)
from tests.integration.test_install import installed  # noqa: F401  (the peering CRDs, as installed)

ROUNDS = 5
AFTER_KILL_SECONDS = 15.0
AFTER_TERM_SECONDS = 2.0
DUE_AFTER_STOP = 1.0
SCALED = re.compile(r"^\[(?P<at>[\d\- :,]+)\].*Scaled Deployment (?P<target>\S+) ", re.MULTILINE)


def scale_writes(log: str) -> list[float]:
    """When each "Scaled Deployment" line was logged (the operator logs in UTC, to the millisecond)."""
    return [
        datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
        for match in SCALED.finditer(log)
    ]


@pytest.fixture
def recorder(api_client: client.ApiClient, namespace: str) -> Iterator[DeploymentRecorder]:
    with DeploymentRecorder(api_client, namespace=namespace) as watching:
        yield watching
        Cluster(api_client, namespace).create_deployment("recorder-nudge", 0)


def takeover_round(
    cluster: Cluster, kubeconfig: str, log_dir: Path, recorder: DeploymentRecorder, index: int, kill: bool
) -> tuple[float, str, str]:
    """One round; returns (seconds from the stop to the standby's replica change, both logs)."""
    base = ["--namespace", cluster.namespace, "--peering", "campaign-autoscaler"]  # default lifetime
    active = OperatorProcess(
        kubeconfig, log_dir / f"active-{index}.log", [*base, "--priority", "200"]
    ).start()
    standby = OperatorProcess(
        kubeconfig, log_dir / f"standby-{index}.log", [*base, "--priority", "100"]
    ).start()
    name = f"app-{index}"
    try:
        cluster.create_deployment(name, replicas=2)
        standby.wait_ready(timeout=20)
        active.wait_ready(timeout=20)
        time.sleep(2)  # both have seen each other in the peering object
        stop_at = seconds_from_now(6)
        start = stop_at + timedelta(seconds=DUE_AFTER_STOP + 1)  # pre-scale (lead 1 s) 1 s after the stop
        cluster.create_event(
            f"sale-{index}",
            campaign_spec(
                start=start,
                end=start + timedelta(minutes=10),
                lead_time="1s",
                ramp_up_steps=1,
                targets=[{"name": name, "replicas": 6}],
            ),
        )
        wait_until(lambda: cluster.phase(f"sale-{index}") == "Pending", timeout=10, message="Pending")
        time.sleep(max(0.0, stop_at.timestamp() - time.time()))
        stopped_at = time.time()
        if kill:
            active.kill()
        else:
            assert active.stop() == 0

        def seen_scaled() -> float | None:
            """When the test's own watch first saw the change (a GET can see it before the watch does)."""
            return next((v.seen_at for v in recorder.versions() if v.name == name and v.replicas == 6), None)

        changed = wait_until(
            seen_scaled, timeout=AFTER_KILL_SECONDS + 10, message="the standby made the transition"
        )
    finally:
        active.stop()
        assert standby.stop() == 0
    return changed - stopped_at, active.log(), standby.log()


@pytest.mark.parametrize("kill", [True, False], ids=["SIGKILL", "SIGTERM"])
def test_the_standby_takes_over_in_time_and_never_beside_the_active_one(
    installed: None,  # noqa: F811
    control_plane: ControlPlane,
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    recorder: DeploymentRecorder,
    kill: bool,
):
    cluster = Cluster(api_client, namespace)
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "campaign-autoscaler"}},
    )  # fmt: skip
    kubeconfig = str(control_plane.kubeconfig_path)
    takeovers = []
    for index in range(ROUNDS):
        seconds, active_log, standby_log = takeover_round(
            cluster, kubeconfig, tmp_path, recorder, index, kill
        )
        takeovers.append(seconds)
        assert f"/app-{index} 2 -> 6" in standby_log, standby_log[-3000:]
        # Never two writers: every scale write of the active one precedes every one of the standby.
        active_writes, standby_writes = scale_writes(active_log), scale_writes(standby_log)
        assert standby_writes and (not active_writes or max(active_writes) < min(standby_writes)), (
            active_writes,
            standby_writes,
        )
    signal = "SIGKILL" if kill else "SIGTERM"
    print(f"\n{signal} -> first transition by the standby: {[round(s, 2) for s in takeovers]} s")
    limit = AFTER_KILL_SECONDS if kill else AFTER_TERM_SECONDS
    # The transition was due DUE_AFTER_STOP after the stop: the takeover itself is what remains.
    assert max(takeovers) <= limit, takeovers
