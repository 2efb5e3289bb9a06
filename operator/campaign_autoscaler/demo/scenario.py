"""The demo's scenario (pure): the 9.9 sale compressed in time, its Deployments, its CampaignEvent, the
plan the operator should follow (computed with the operator's own planning code), the traffic it replays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from campaign_autoscaler import API_GROUP, API_VERSION, KIND
from campaign_autoscaler.devenv.prometheus import selector
from campaign_autoscaler.planning import (
    Floor,
    PlannedStep,
    Window,
    compute_floor,
    format_duration,
    lifecycle_end,
    lifecycle_start,
    parse_spec,
    planned_steps,
    resolve_targets,
)
from campaign_autoscaler.planning.instants import kube_time
from campaign_autoscaler.simulation import TrafficCurve, synthetic_9_9

NAMESPACE = "shop"  # on the embedded control plane; in an existing cluster a throw-away namespace instead
EVENT_NAME = "sale-9-9"
TRAFFIC_SERIES = "shop_http_requests_per_second"
TRAFFIC_LABELS = MappingProxyType({"app": "checkout"})
TRAFFIC_SELECTOR = selector(TRAFFIC_SERIES, TRAFFIC_LABELS)
TRAFFIC_QUERY = f"sum({TRAFFIC_SELECTOR})"
METRIC_TARGET = "checkout"  # the Deployment serving the traffic series
# req/s one checkout Pod serves: its 3 baseline Pods carry a normal day's peak (1,000 req/s); the 2.5x surge
# (2,500 req/s) wants 8, which its floor of 2.5 x 3 = 8 covers from the opening on.
TARGET_PER_REPLICA = 320
TRAFFIC_MULTIPLIER = 2.5
CHECKOUT_MIN_REPLICAS = 4
CHECKOUT_MAX_REPLICAS = 60
MAX_SCALE_FACTOR = 10.0  # the operator's default --max-scale-factor
STABILIZATION_IN_THE_SALE = timedelta(minutes=5)  # the operator's default --scale-down-stabilization
SALE_TIMEZONE = ZoneInfo("Asia/Jakarta")
SALE_OPENING = datetime(2026, 9, 9, tzinfo=SALE_TIMEZONE)
MINUTE = timedelta(minutes=1)
OVERRUN = timedelta(seconds=30)  # the demo gives up this long after the planned completion
# A real cluster runs the Pods: the smallest image that starts and stays Ready (no probe). The embedded
# control plane has no kubelet and never pulls it: its simulator reports the Pods Ready.
POD_IMAGE = "registry.k8s.io/pause:3.9"


# --- the compressed timeline ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoTimeline:
    """How the 9.9 sale is compressed. `speedup` seconds of the sale pass in one second of the demo."""

    title: str
    lead_in: timedelta  # from applying the event to the first ramp-up step (phase Pending)
    lead_time: timedelta
    ramp_up_steps: int
    window: timedelta
    ramp_down: timedelta
    ramp_down_steps: int
    pod_ready_after: float  # seconds from a Pod's creation to Ready (the embedded control plane)
    speedup: float

    @property
    def total(self) -> timedelta:
        return self.lead_in + self.lead_time + self.window + self.ramp_down

    @property
    def scale_down_stabilization(self) -> timedelta:
        return STABILIZATION_IN_THE_SALE / self.speedup

    def pace(self) -> str:
        minutes = self.speedup / 60
        return f"1 s = {minutes:g} min of the sale"


FULL_TIMELINE = DemoTimeline(
    title="about two minutes",
    lead_in=timedelta(seconds=10),
    lead_time=timedelta(seconds=30),
    ramp_up_steps=3,
    window=timedelta(seconds=45),
    ramp_down=timedelta(seconds=30),
    ramp_down_steps=3,
    pod_ready_after=3.0,
    speedup=60.0,
)
SHORT_TIMELINE = DemoTimeline(
    title="under a minute",
    lead_in=timedelta(seconds=6),
    lead_time=timedelta(seconds=12),
    ramp_up_steps=2,
    window=timedelta(seconds=15),
    ramp_down=timedelta(seconds=10),
    ramp_down_steps=2,
    pod_ready_after=2.0,
    speedup=150.0,
)


@dataclass(frozen=True)
class DemoDeployment:
    name: str
    replicas: int
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def pod_selector(self) -> dict[str, str]:
        return {"app": self.name}

    @property
    def all_labels(self) -> dict[str, str]:
        return {**self.pod_selector, **self.labels}


DEPLOYMENTS = (
    DemoDeployment("order-tracking", 4),
    DemoDeployment(METRIC_TARGET, 3, MappingProxyType({"campaign.tier": "checkout"})),
)


def deployment_manifest(deployment: DemoDeployment) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment.name, "labels": deployment.all_labels},
        "spec": {
            "replicas": deployment.replicas,
            "selector": {"matchLabels": deployment.pod_selector},
            "template": {
                "metadata": {"labels": deployment.pod_selector},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": POD_IMAGE,
                            "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}},
                        }
                    ],
                    "terminationGracePeriodSeconds": 0,
                },
            },
        },
    }


def opening_time(now: datetime, timeline: DemoTimeline) -> datetime:
    """When the demo's window opens if the event is applied at `now`: after the lead-in and lead time."""
    opening = now + timeline.lead_in + timeline.lead_time
    return opening.replace(microsecond=0) + timedelta(seconds=1)


def event_manifest(
    timeline: DemoTimeline, opening: datetime, live_metric: bool, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """The CampaignEvent: examples/sale-9-9.yaml with its times compressed. Checkout's floor covers the
    2.5x surge; with `live_metric` it also follows the traffic series, should the surge be higher."""
    checkout: dict[str, Any] = {
        "selector": {"matchLabels": {"campaign.tier": "checkout"}},
        "minReplicas": CHECKOUT_MIN_REPLICAS,
        "maxReplicas": CHECKOUT_MAX_REPLICAS,
    }
    if live_metric:
        checkout["metric"] = {"query": TRAFFIC_QUERY, "targetPerReplica": TARGET_PER_REPLICA}
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": EVENT_NAME, "namespace": namespace},
        "spec": {
            "timezone": "UTC",
            "start": kube_time(opening),
            "end": kube_time(opening + timeline.window),
            "leadTime": format_duration(timeline.lead_time),
            "rampUp": {"steps": timeline.ramp_up_steps},
            "rampDown": {"duration": format_duration(timeline.ramp_down), "steps": timeline.ramp_down_steps},
            "trafficMultiplier": TRAFFIC_MULTIPLIER,
            "targets": [{"name": "order-tracking"}, checkout],
        },
    }


# --- the plan ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoPlan:
    """What the operator should do, computed with the same planning code it uses."""

    window: Window
    scaling_starts_at: datetime
    completes_at: datetime
    baselines: Mapping[str, int]
    floors: Mapping[str, Floor]
    metric_targets: frozenset[str]
    steps: tuple[PlannedStep, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.baselines)

    def step_due_at(self, moment: datetime) -> PlannedStep | None:
        return next((step for step in self.steps if step.transition.at == moment), None)


def build_plan(manifest: Mapping[str, Any], deployments: Sequence[DemoDeployment] = DEPLOYMENTS) -> DemoPlan:
    spec = parse_spec(manifest["spec"])
    if spec.start is None or spec.end is None:
        raise ValueError("The demo event is a one-off event with a start and an end")
    window = Window(spec.start, spec.end)
    resolved = resolve_targets(
        spec.targets, lambda target: [d.name for d in deployments if target.matches(d.all_labels)]
    )
    targets = {name: target for target, name in resolved}
    missing = [d.name for d in deployments if d.name not in targets]
    if missing:
        raise ValueError(f"No target of the demo event selects Deployment {', '.join(missing)}")
    baselines = {deployment.name: deployment.replicas for deployment in deployments}
    floors = {
        name: compute_floor(targets[name], baselines[name], spec.traffic_multiplier, MAX_SCALE_FACTOR)
        for name in baselines
    }
    return DemoPlan(
        window=window,
        scaling_starts_at=lifecycle_start(spec, window),
        completes_at=lifecycle_end(spec, window),
        baselines=baselines,
        floors=floors,
        metric_targets=frozenset(name for name, target in targets.items() if target.metric is not None),
        steps=planned_steps(spec, window, baselines, floors),
    )


# --- the synthetic traffic, compressed in time ------------------------------------------------------------
@dataclass(frozen=True)
class CompressedTraffic:
    """The synthetic 9.9 curve replayed `speedup` times faster, its opening aligned on the demo's window."""

    curve: TrafficCurve
    sale_opening: datetime
    opening: datetime
    speedup: float

    def rps_at(self, moment: datetime) -> float:
        sale_moment = self.sale_opening + (moment - self.opening) * self.speedup
        index = (sale_moment - self.curve.start) // MINUTE
        return self.curve.rps[min(max(index, 0), len(self.curve.rps) - 1)]


def compress_traffic(timeline: DemoTimeline, opening: datetime) -> CompressedTraffic:
    sale_end = SALE_OPENING + timeline.window * timeline.speedup
    curve = synthetic_9_9(
        SALE_OPENING,
        sale_end,
        SALE_TIMEZONE,
        covers_from=SALE_OPENING - (timeline.lead_in + timeline.lead_time) * timeline.speedup,
        covers_until=sale_end + (timeline.ramp_down + OVERRUN) * timeline.speedup,
    )
    return CompressedTraffic(curve, SALE_OPENING, opening, timeline.speedup)
