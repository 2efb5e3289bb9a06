"""Scale: 500 events over 2,000 Deployments (10 namespaces), one operator behind a counting proxy.

Each event holds 4 Deployments of its namespace (every 4th event selects them by label, the others name them):
baseline 1, floor 3, ramp-up in 2 steps over a 10 s lead time, a 20 s window, ramp-down in 2 steps over
10 s, so each target changes 4 times: 1 -> 2 -> 3 -> 2 -> 1. The events' pre-scales are spread evenly over
60 s (about 8 a second). A watch stamps every replica change; the proxy counts every request by verb,
resource and object, which gives the API writes per target per transition and every LIST of Deployments.

Pods are refused by a ResourceQuota (pods: 0): 2,000 Deployments' worth of Pods do not fit a 2-core machine
next to the control plane. So no target ever has its replicas Ready, and every event in its lifecycle waits
for capacity the whole time (its daemon wakes every second to look again): the busiest the operator gets for
this many events. The operator starts right before the events are created, as after a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient
from tests.integration.faultproxy import (
    DeploymentRecorder,
    FaultProxy,
    ServingCertificate,
    TrafficSnapshot,
    lag_after,
    proxied_kubeconfig,
    replica_changes,
)
from tests.integration.harness import (
    OperatorProcess,
    campaign_spec,
    deployment_body,
    ensure_crd,
    seconds_from_now,
)

from benchmarks.common import (
    BenchmarkResult,
    Measurement,
    ProcessUsage,
    admin_client,
    create_deployments,
    create_events_in,
    create_namespace,
    event_phases,
    local_control_plane,
    percentile,
    process_usage,
    seconds,
    sleep_until,
    wait_for,
    work_dir,
)

TARGETS_PER_EVENT = 4
SELECTOR_EVERY = 4
BASELINE = 1
STEPS = (("ramp-up 1/2", 2), ("ramp-up 2/2", 3), ("ramp-down 1/2", 2), ("restore", 1))  # floor 3
LEAD_SECONDS = 10
WINDOW_SECONDS = 20
RAMP_DOWN_SECONDS = 10
GROUP_LABEL = "campaign.group"
BENCH_LABEL = "bench"
GOAL_LAG_SECONDS = 5.0
GOAL_WRITES_PER_TRANSITION = 1.0
GOAL_PEAK_RSS_MB = 150  # the goal, in MB (10^6 bytes): 143 MiB
MIB_PER_MB = 1e6 / 2**20


@dataclass(frozen=True)
class ScaleConfig:
    namespaces: int = 10
    deployments_per_namespace: int = 200
    stagger_seconds: int = 60  # the pre-scales are spread over this long
    settle_seconds: int = 90  # from creating the events to the first pre-scale

    @property
    def events_per_namespace(self) -> int:
        return self.deployments_per_namespace // TARGETS_PER_EVENT

    @property
    def events(self) -> int:
        return self.namespaces * self.events_per_namespace

    @property
    def deployments(self) -> int:
        return self.namespaces * self.deployments_per_namespace


@dataclass(frozen=True)
class PlannedStep:
    """One replica change a target should make: to `replicas` at `due` (epoch seconds)."""

    namespace: str
    deployment: str
    kind: str
    due: float
    replicas: int
    until: float  # the next step's due time: a change seen after it is not this step's


@dataclass(frozen=True)
class Observed:
    changes: dict[tuple[str, str], list[tuple[float, int]]]
    traffic: TrafficSnapshot
    startup_traffic: TrafficSnapshot
    settled: float | None
    completed: float | None
    at_settle: ProcessUsage
    at_end: ProcessUsage
    created_seconds: float


def _namespace(index: int) -> str:
    return f"bench-scale-{index}"


def _deployment(index: int) -> str:
    return f"svc-{index:03d}"


def _event_targets(event: int) -> list[dict[str, Any]]:
    if event % SELECTOR_EVERY == SELECTOR_EVERY - 1:
        return [{"selector": {"matchLabels": {GROUP_LABEL: f"g{event}"}}}]
    return [{"name": _deployment(event * TARGETS_PER_EVENT + k)} for k in range(TARGETS_PER_EVENT)]


def _plan(
    config: ScaleConfig, first_pre_scale: datetime
) -> tuple[list[tuple[str, str, dict[str, Any]]], list[PlannedStep]]:
    """The events to create, as (namespace, name, spec); and every replica change they should make."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    steps: list[PlannedStep] = []
    for global_index in range(config.events):
        namespace_index, event = divmod(global_index, config.events_per_namespace)
        namespace = _namespace(namespace_index)
        pre_scale = first_pre_scale + timedelta(
            seconds=global_index * config.stagger_seconds // config.events
        )
        start = pre_scale + timedelta(seconds=LEAD_SECONDS)
        end = start + timedelta(seconds=WINDOW_SECONDS)
        spec = campaign_spec(
            start=start,
            end=end,
            lead_time=f"{LEAD_SECONDS}s",
            ramp_up_steps=2,
            ramp_down={"duration": f"{RAMP_DOWN_SECONDS}s", "steps": 2},
            multiplier=STEPS[1][1] / BASELINE,
            targets=_event_targets(event),
        )
        events.append((namespace, f"sale-{event:02d}", spec))
        offsets = (0, LEAD_SECONDS / 2, LEAD_SECONDS + WINDOW_SECONDS + RAMP_DOWN_SECONDS / 2)
        dues = [pre_scale.timestamp() + offset for offset in offsets]
        dues.append(end.timestamp() + RAMP_DOWN_SECONDS)
        untils = [*dues[1:], float("inf")]
        for k in range(TARGETS_PER_EVENT):
            deployment = _deployment(event * TARGETS_PER_EVENT + k)
            steps += [
                PlannedStep(namespace, deployment, kind, due, replicas, until)
                for (kind, replicas), due, until in zip(STEPS, dues, untils, strict=True)
            ]
    return events, steps


def _create_workloads(api: ApiClient, config: ScaleConfig) -> None:
    for namespace_index in range(config.namespaces):
        namespace = _namespace(namespace_index)
        create_namespace(api, namespace, pod_quota=0)
        labels = {BENCH_LABEL: "scale"}
        bodies = [
            deployment_body(_deployment(d), BASELINE, {GROUP_LABEL: f"g{d // TARGETS_PER_EVENT}", **labels})
            for d in range(config.deployments_per_namespace)
        ]
        create_deployments(api, namespace, bodies)


def run(config: ScaleConfig | None = None) -> BenchmarkResult:
    config = config or ScaleConfig()
    directory = work_dir("scale")
    with local_control_plane(simulate_pods=False) as plane:
        api = admin_client(plane)
        ensure_crd(api)
        began = time.monotonic()
        _create_workloads(api, config)
        created_seconds = time.monotonic() - began
        certificate = ServingCertificate(directory / "proxy-cert")
        with (
            FaultProxy(plane.url, seed=0, upstream_ca=plane.ca_path, certificate=certificate) as proxy,
            DeploymentRecorder(api, label_selector=f"{BENCH_LABEL}=scale") as recorder,
        ):
            kubeconfig = proxied_kubeconfig(plane.kubeconfig_path, proxy, directory / "proxied.kubeconfig")
            namespaces = [arg for i in range(config.namespaces) for arg in ("--namespace", _namespace(i))]
            operator = OperatorProcess(str(kubeconfig), directory / "operator.log", namespaces).start()
            assert operator.process is not None
            first_pre_scale = seconds_from_now(config.settle_seconds)
            events, steps = _plan(config, first_pre_scale)
            create_events_in(api, events)
            settled = wait_for(
                lambda: set(event_phases(api).values()) == {"Pending"},
                timeout=config.settle_seconds - 2,
                interval=2,
            )
            at_settle = process_usage(operator.process.pid)
            startup_traffic = proxy.snapshot()
            last_due = max(step.due for step in steps)
            sleep_until(datetime.fromtimestamp(last_due + 10, tz=first_pre_scale.tzinfo))
            completed = wait_for(
                lambda: set(event_phases(api).values()) == {"Completed"}, timeout=30, interval=2
            )
            at_end = process_usage(operator.process.pid)
            traffic = proxy.snapshot()
            versions = recorder.versions()
            operator.stop()
    observed = Observed(
        replica_changes(versions),
        traffic,
        startup_traffic,
        settled,
        completed,
        at_settle,
        at_end,
        created_seconds,
    )
    return _result(config, steps, observed, directory)


def _lag_rows(steps: list[PlannedStep], changes: dict[tuple[str, str], list[tuple[float, int]]]):
    lags = [
        (
            step.kind,
            lag_after(
                changes.get((step.namespace, step.deployment), []), step.due, step.replicas, step.until
            ),
        )
        for step in steps
    ]
    on_time = sum(1 for _, lag in lags if lag is not None and lag <= GOAL_LAG_SECONDS)
    skipped = sum(1 for _, lag in lags if lag is None)
    rows = [
        Measurement(
            "planned replica changes applied within 5 s of due",
            f"{on_time} of {len(lags)} ({100 * on_time / len(lags):.1f} %)",
            "all",
            on_time == len(lags),
        ),
        Measurement("... not seen before the next step fell due (skipped)", str(skipped), "0", skipped == 0),
    ]
    for kind, _ in STEPS:
        seen = [lag for step_kind, lag in lags if step_kind == kind and lag is not None]
        if seen:
            spread = (percentile(seen, 0.5), percentile(seen, 0.99), max(seen))
            rows.append(Measurement(f"lag p50 / p99 / max, {kind}", " / ".join(seconds(v) for v in spread)))
    return rows


def _unfiltered_lists(traffic: TrafficSnapshot) -> int:
    return traffic.count("list deployments") - traffic.selector_lists.get("list deployments", 0)


def _result(
    config: ScaleConfig, steps: list[PlannedStep], observed: Observed, directory: Path
) -> BenchmarkResult:
    traffic = observed.traffic
    writes = traffic.writes_by_object
    target_writes = sum(
        writes.get(("deployments", namespace, name), 0) for namespace, name in observed.changes
    )
    transitions = sum(len(history) - 1 for history in observed.changes.values())
    per_transition = target_writes / transitions if transitions else float("inf")
    at_settle, at_end = observed.at_settle, observed.at_end
    lifecycle_cpu = (at_end - at_settle).cpu_seconds
    rows = [
        *_lag_rows(steps, observed.changes),
        Measurement(
            "API writes per target per transition (PATCH deployments / replica changes seen)",
            f"{target_writes} / {transitions} = {per_transition:.3f}",
            f"<= {GOAL_WRITES_PER_TRANSITION:.0f}",
            per_transition <= GOAL_WRITES_PER_TRANSITION,
        ),
        Measurement(
            "LIST deployments without a selector: whole run / during start-up",
            f"{_unfiltered_lists(traffic)} / {_unfiltered_lists(observed.startup_traffic)}",
        ),
        Measurement(
            "LIST deployments with a label selector", str(traffic.selector_lists.get("list deployments", 0))
        ),
        Measurement("GET deployments", str(traffic.count("get deployments"))),
        Measurement(
            "other writes: status patches / Events posted",
            f"{traffic.count('patch campaignevents/status')} / {traffic.count('create events')}",
        ),
        Measurement("all requests through the proxy", str(sum(traffic.requests.values()))),
        Measurement(
            "operator peak RSS (VmHWM): after start-up / at the end",
            f"{at_settle.peak_rss_mib:.0f} MiB / {at_end.peak_rss_mib:.0f} MiB"
            f" ({at_end.peak_rss_mib / MIB_PER_MB:.0f} MB)",
            f"<= {GOAL_PEAK_RSS_MB} MB ({GOAL_PEAK_RSS_MB * MIB_PER_MB:.0f} MiB)",
            at_end.peak_rss_mib <= GOAL_PEAK_RSS_MB * MIB_PER_MB,
        ),
        Measurement(
            "operator CPU per event: whole run / lifecycles only",
            f"{at_end.cpu_seconds / config.events:.3f} s / {lifecycle_cpu / config.events:.3f} s",
        ),
        Measurement("operator CPU, whole run", f"{at_end.cpu_seconds:.1f} s"),
        Measurement(f"{config.events} events reported Pending after creation", seconds(observed.settled)),
        Measurement("every event Completed, after the last due time + 10 s", seconds(observed.completed)),
        Measurement(f"{config.deployments} Deployments created in", seconds(observed.created_seconds)),
    ]
    setup = (
        f"{config.events} CampaignEvents over {config.deployments} Deployments in {config.namespaces} "
        f"namespaces ({TARGETS_PER_EVENT} each, every {SELECTOR_EVERY}th event by label selector); 4 replica "
        f"changes per target (1 -> 2 -> 3 -> 2 -> 1); pre-scales spread over {config.stagger_seconds} s; one "
        "operator (default flags) through a counting proxy; Pods refused by a ResourceQuota, so readiness is "
        "never reached."
    )
    top = ", ".join(f"{key} {count}" for key, count in traffic.requests.most_common(8))
    notes = (f"Busiest requests: {top}.", f"Operator log: {directory}/operator.log")
    return BenchmarkResult("Scale", setup, tuple(rows), notes)
