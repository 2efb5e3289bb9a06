"""The scaling policies a traffic curve is replayed against.

A policy is a frozen dataclass; whatever it remembers between two decisions travels in an immutable state
value that `decide` takes and returns. The replay calls `decide` every TICK (15 s) with what a controller
would observe at that instant, and scales the pod pool to the replicas it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from campaign_autoscaler.planning import (
    Baseline,
    CampaignSpec,
    TargetSpec,
    Window,
    compute_floor,
    effective_replicas,
    hpa_bounds,
    lifecycle_end,
    lifecycle_start,
)
from campaign_autoscaler.planning.curve import History
from campaign_autoscaler.planning.decision import MetricMemory, MetricReading, TargetInputs, decide_target
from campaign_autoscaler.planning.headroom import HeadroomTarget, headroom_start, plan_headroom

TICK = timedelta(seconds=15)
SIMULATED_EVENT = "simulated/campaign"  # the claim key of the one event a replay plays
# What one pod requests, as the replay counts room: one pod slot.
ONE_POD = {"pods": Decimal(1)}
# Above this much relative float noise a ratio is not "exactly" an integer (4 x 2.5 / 2.5 must be 4, not 5).
_RATIO_NOISE = 1e-9


def ceil_ratio(value: float) -> int:
    """ceil(value), where a value within float noise of an integer counts as that integer."""
    nearest = round(value)
    if abs(value - nearest) <= _RATIO_NOISE * max(1.0, abs(value)):
        return int(nearest)
    return math.ceil(value)


def pods_needed(demand_rps: float, capacity_per_pod: float) -> int:
    """Pods that must be Ready to serve `demand_rps`: what an oracle would run."""
    return max(0, ceil_ratio(demand_rps / capacity_per_pod))


@dataclass(frozen=True)
class Observation:
    """What a controller sees at one instant."""

    at: datetime
    demand_rps: float
    replicas: int  # pods asked for: Ready or still starting
    ready: int


class Policy(Protocol):
    name: str

    def initial_state(self) -> Any: ...

    def decide(self, state: Any, seen: Observation) -> tuple[Any, int]:
        """The new state and the replicas wanted from now on."""
        ...

    def placeholders(self, seen: Observation, replicas: int) -> int:
        """Node headroom's placeholder pods wanted beside `replicas` (they hold room on nodes only)."""
        ...


class NoPlaceholders:
    """A policy that keeps no node headroom."""

    def placeholders(self, seen: Observation, replicas: int) -> int:
        return 0


# --- 1. static baseline -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StaticBaseline(NoPlaceholders):
    """No autoscaling at all: the baseline replicas, whatever the traffic."""

    replicas: int
    name: str = "static baseline"

    def initial_state(self) -> None:
        return None

    def decide(self, state: None, seen: Observation) -> tuple[None, int]:
        return None, self.replicas


# --- 2. reactive HPA ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HpaState:
    recommendations: tuple[tuple[datetime, int], ...] = ()  # (when, raw recommendation), oldest first


@dataclass(frozen=True)
class ReactiveHpa(NoPlaceholders):
    """A HorizontalPodAutoscaler (autoscaling/v2) with the defaults documented by Kubernetes.

    From https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/ :
    - the controller syncs every 15 s (`--horizontal-pod-autoscaler-sync-period`, default 15s): one
      decision per replay TICK;
    - `desiredReplicas = ceil(currentReplicas x currentMetricValue / desiredMetricValue)`, skipped while the
      ratio is within the 10 % tolerance (`--horizontal-pod-autoscaler-tolerance`, default 0.1);
    - pods not Ready yet count as 0 % of the target when scaling up (the conservative rule for missing and
      not-yet-ready pods), so a scale-up in flight is not repeated;
    - default `behavior.scaleUp`: no stabilization, policies `Percent 100 / 15s` and `Pods 4 / 15s` with
      `selectPolicy: Max`: at most max(double, +4 pods) per 15 s;
    - default `behavior.scaleDown`: 300 s stabilization window (the highest recommendation of the last
      5 minutes wins), then `Percent 100 / 15s`;
    - replicas outside `[minReplicas, maxReplicas]` (the bounds were just changed) are set to the bound
      they cross at once, with no rate limit and no recommendation recorded (the controller's
      "Current number of replicas below Spec.MinReplicas" / "above Spec.MaxReplicas").

    The metric is the request rate per pod with a target of `capacity_per_pod` (a 100 % target, the same
    per-pod capacity the oracle uses), read at the sync instant without the metrics pipeline's delay:
    slightly optimistic for the HPA.
    """

    capacity_per_pod: float
    min_replicas: int
    max_replicas: int
    tolerance: float = 0.1
    scale_up_percent: int = 100
    scale_up_pods: int = 4
    scale_down_stabilization: timedelta = timedelta(seconds=300)
    name: str = "reactive HPA"

    def initial_state(self) -> HpaState:
        return HpaState()

    def decide(self, state: HpaState, seen: Observation) -> tuple[HpaState, int]:
        if seen.replicas > self.max_replicas:
            return state, self.max_replicas
        if seen.replicas < self.min_replicas:
            return state, self.min_replicas
        recommendation = self.recommendation(seen)
        cutoff = seen.at - self.scale_down_stabilization
        history = tuple((at, value) for at, value in state.recommendations if at > cutoff)
        history += ((seen.at, recommendation),)
        # Kubernetes' stabilizeRecommendationWithBehaviors with a 0 s scale-up window.
        highest_recent = max(value for _, value in history)
        stabilized = min(max(seen.replicas, recommendation), highest_recent)
        return HpaState(history), self._rate_limited(stabilized, seen.replicas)

    def recommendation(self, seen: Observation) -> int:
        """The replica calculator's raw recommendation for a resource-style (per-pod average) metric."""
        if seen.ready == 0:
            return seen.replicas  # no pod reports a metric yet
        usage_ratio = seen.demand_rps / (seen.ready * self.capacity_per_pod)
        starting = seen.replicas - seen.ready
        if not (starting > 0 and usage_ratio > 1.0):
            if abs(1.0 - usage_ratio) <= self.tolerance:
                return seen.replicas
            return ceil_ratio(usage_ratio * seen.ready)
        usage_with_starting = seen.demand_rps / (seen.replicas * self.capacity_per_pod)
        if abs(1.0 - usage_with_starting) <= self.tolerance or usage_with_starting < 1.0:
            return seen.replicas
        return max(seen.replicas, ceil_ratio(usage_with_starting * seen.replicas))

    def _rate_limited(self, desired: int, current: int) -> int:
        if desired > current:
            limit = max(
                math.ceil(current * (100 + self.scale_up_percent) / 100), current + self.scale_up_pods
            )
            desired = min(desired, limit)
        return max(self.min_replicas, min(desired, self.max_replicas))


# --- 3. cron at start ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CronState:
    replicas: int
    next_poll: datetime | None = None


@dataclass(frozen=True)
class CronAtStart(NoPlaceholders):
    """The KEDA cron-scaler pattern: the floor from `start` to `end` of each window, no lead time.

    KEDA polls its triggers every 30 s (`pollingInterval`, default 30). Optimistic for this policy: the rate
    limits of the HPA that KEDA creates are not applied, the floor is set in one step.
    """

    windows: tuple[Window, ...]
    baseline: int
    floor: int
    polling_interval: timedelta = timedelta(seconds=30)
    name: str = "cron at start"

    def initial_state(self) -> CronState:
        return CronState(replicas=self.baseline)

    def decide(self, state: CronState, seen: Observation) -> tuple[CronState, int]:
        if state.next_poll is not None and seen.at < state.next_poll:
            return state, state.replicas
        in_window = any(window.start <= seen.at < window.end for window in self.windows)
        replicas = max(self.baseline, self.floor) if in_window else self.baseline
        return CronState(replicas=replicas, next_poll=seen.at + self.polling_interval), replicas


# --- 4. campaign-autoscaler ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CampaignAutoscaler:
    """This operator: every TICK, the decision the operator's own pass makes (`decide_target`).

    The metric, when the target has one, is read every TICK (the operator's default `--metrics-interval`
    15s) and its value is the demand in requests/s. Outside the lifecycle there is no claim: the baseline.
    With `history` (the last campaign's curve, in this replay's time) a target whose forecast's mode is
    curve follows it, as the operator does once it has read the curve from Prometheus.
    """

    spec: CampaignSpec
    windows: tuple[Window, ...]
    baseline: int
    target: TargetSpec
    max_scale_factor: float = 10.0
    stabilization: timedelta = timedelta(minutes=5)
    name: str = "campaign-autoscaler"
    history: History | None = None

    def initial_state(self) -> MetricMemory:
        return MetricMemory()

    def decide(self, state: MetricMemory, seen: Observation) -> tuple[MetricMemory, int]:
        memory, wanted = self.claim(state, seen)
        claims = {} if wanted is None else {SIMULATED_EVENT: wanted}
        return memory, effective_replicas(self.baseline, claims)

    def claim(self, state: MetricMemory, seen: Observation) -> tuple[MetricMemory, int | None]:
        """The metric's memory afterwards and the event's claim at `seen.at` (None: no claim)."""
        window = self._window_at(seen.at)
        if window is None:
            return MetricMemory(), None
        decision = decide_target(
            TargetInputs(
                spec=self.spec,
                target=self.target,
                window=window,
                now=seen.at,
                baseline=self.baseline,
                max_scale_factor=self.max_scale_factor,
                stabilization=self.stabilization,
                reading=MetricReading(seen.at, seen.demand_rps) if self.target.metric is not None else None,
                memory=state,
                history=self.history,
                raise_every=TICK,
            )
        )
        return decision.memory, decision.wanted

    def placeholders(self, seen: Observation, replicas: int) -> int:
        """What the operator's pass keeps (`plan_headroom`) once it has asked for `replicas`."""
        window = next(
            (w for w in self.windows if (begin := headroom_start(self.spec, w)) and begin <= seen.at < w.end),
            None,
        )
        if window is None:
            return 0
        floor = compute_floor(self.target, self.baseline, self.spec.traffic_multiplier, self.max_scale_factor)
        target = HeadroomTarget("target", floor.replicas, max(replicas, seen.replicas), seen.ready, ONE_POD)
        return sum(held.count for held in plan_headroom(self.spec, window, seen.at, [target]).sets)

    def _window_at(self, at: datetime) -> Window | None:
        for window in self.windows:
            if lifecycle_start(self.spec, window) <= at < lifecycle_end(self.spec, window):
                return window
        return None


# --- 5. campaign-autoscaler on a target an HPA scales -------------------------------------------------------
HPA_NAME = "simulated"  # how the baseline the operator records names the target's HPA


@dataclass(frozen=True)
class HpaBackedState:
    memory: MetricMemory = field(default_factory=MetricMemory)  # the operator's
    hpa: HpaState = field(default_factory=HpaState)
    bounds: tuple[int | None, int | None] | None = None  # what the operator last wrote; None: the HPA's own
    baseline: Baseline | None = None  # what the operator recorded at its first claim, gone with the release


@dataclass(frozen=True)
class CampaignAutoscalerOnHpa:
    """This operator on a target an HPA scales, as in a cluster: the HPA keeps scaling the target, the
    operator's claim only moves the HPA's bounds (it never replaces the HPA).

    Every TICK the HPA (`hpa`, the reactive HPA's model) syncs within the bounds last written, then the
    operator's pass (`operator`, whose `claim` is `decide_target`) decides its claim and writes the bounds
    `hpa_bounds` gives for it, as a claim on an HPA-backed target does (planning/claims.py): minReplicas
    raised to the claim, maxReplicas too when below it, the HPA's own bounds back once no claim is left. So
    outside the lifecycle the target is the HPA's alone; inside it gets max(claim, what the HPA computes
    from the demand). The HPA applies a write at its next sync: one TICK later (its 15 s sync period, the
    longest it waits). The decision's baseline is the one the operator records on the target: the replicas
    it had when first claimed (the HPA's, then), as the pass reads it back.
    """

    operator: CampaignAutoscaler
    hpa: ReactiveHpa
    name: str

    def initial_state(self) -> HpaBackedState:
        return HpaBackedState(memory=self.operator.initial_state(), hpa=self.hpa.initial_state())

    def decide(self, state: HpaBackedState, seen: Observation) -> tuple[HpaBackedState, int]:
        hpa_state, replicas = self.bounded_hpa(state.bounds).decide(state.hpa, seen)
        recorded = state.baseline or Baseline(
            seen.replicas, HPA_NAME, self.hpa.min_replicas, self.hpa.max_replicas
        )
        memory, wanted = replace(self.operator, baseline=recorded.replicas).claim(state.memory, seen)
        if wanted is None:
            return HpaBackedState(memory, hpa_state), replicas
        bounds = hpa_bounds(recorded, {SIMULATED_EVENT: wanted})
        return HpaBackedState(memory, hpa_state, bounds, recorded), replicas

    def bounded_hpa(self, bounds: tuple[int | None, int | None] | None) -> ReactiveHpa:
        """The HPA with `bounds` written on it (None: its own)."""
        if bounds is None:
            return self.hpa
        low, high = bounds
        return replace(
            self.hpa,
            min_replicas=self.hpa.min_replicas if low is None else low,
            max_replicas=self.hpa.max_replicas if high is None else high,
        )

    def placeholders(self, seen: Observation, replicas: int) -> int:
        return self.operator.placeholders(seen, replicas)
