"""Kopf handlers: read the CampaignEvent, ask planning what it wants, let the adapters do it, report status.

One daemon per CampaignEvent sleeps until its next transition (or the next metric query, or the resync
interval, whichever is first) and is the only writer of the event's status. A raw-event handler wakes it when
the spec changes or the event is being deleted; the finalizer handler releases every claim the event holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import aiohttp
import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler import API_GROUP, API_VERSION, PLURAL
from campaign_autoscaler.adapters.informer import WorkloadCache
from campaign_autoscaler.adapters.kube import (
    ClaimOutcome,
    CorruptAnnotationError,
    DeploymentView,
    KubeAdapter,
    NamespaceSnapshot,
    TargetConflictError,
    deployment_object_ref,
    event_object_ref,
)
from campaign_autoscaler.adapters.prometheus import BadQueryError, MetricsSource, MetricsUnavailableError
from campaign_autoscaler.adapters.telemetry import Telemetry
from campaign_autoscaler.planning import (
    CampaignSpec,
    Floor,
    Phase,
    SpecError,
    Stabilizer,
    TargetSpec,
    Window,
    claim_fraction,
    claim_key,
    clamp,
    compute_floor,
    forecast_replicas,
    lifecycle_start,
    next_transition,
    parse_spec,
    phase_at,
    ramp_replicas,
    replicas_for_metric,
    resolve_window,
)

log = logging.getLogger(__name__)

FINALIZER = f"{API_GROUP}/finalizer"
READINESS_POLL_SECONDS = 1.0
RETRY_SECONDS = 1.0
# Kopf's requests in flight at once (patches of CampaignEvents, peering), not counting its watch streams.
KOPF_CONCURRENT_REQUESTS = 8
# A transition is acted on a hair after it is due, so that `now` is never a microsecond short of it.
TRANSITION_GRACE_SECONDS = 0.02


@dataclass(frozen=True)
class OperatorConfig:
    resync_interval: float = 15.0
    max_scale_factor: float = 10.0
    dry_run: bool = False
    metrics_interval: float = 15.0
    scale_down_stabilization: float = 300.0
    peering_lifetime: float = 60.0
    namespaces: tuple[str, ...] = ()  # watched namespaces (glob patterns allowed); empty: every namespace


@dataclass(frozen=True)
class Runtime:
    """What every handler needs; it travels in Kopf's memo."""

    config: OperatorConfig
    kube: KubeAdapter
    api_client: client.ApiClient
    metrics: MetricsSource | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class MetricMemory:
    """The live metric of one target: the stabilization history and the state of the current outage."""

    stabilizer: Stabilizer = field(default_factory=Stabilizer)
    held: int | None = None  # the metric-driven replicas last used; held, never lowered, while blind
    value: float | None = None
    queried_at: datetime | None = None
    failure: MetricsUnavailableError | None = None


@dataclass(frozen=True)
class ForecastResult:
    replicas: int | None
    peak: float | None
    problem: str | None  # why there is no forecast; None when there is one


@dataclass
class EventMemory:
    """Per-event, in-process state: what was already said, when capacity became Ready, metric histories.
    Lost on restart on purpose: what must survive a restart lives in the targets' annotations or the
    event's status, and is read back from there."""

    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reconciled_generation: int | None = None
    validated_generation: int | None = None
    announced: set[tuple[str, ...]] = field(default_factory=set)
    ready_seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    metrics: dict[str, MetricMemory] = field(default_factory=dict)
    forecasts: dict[tuple[str, str], ForecastResult] = field(default_factory=dict)
    last_phase: str | None = None


@dataclass(frozen=True)
class EventContext:
    """One reconcile of one event: who it is and the single `now` every decision in it uses."""

    runtime: Runtime
    memory: EventMemory
    name: str
    namespace: str
    uid: str
    generation: int
    now: datetime

    @property
    def key(self) -> str:
        return claim_key(self.namespace, self.name)

    def post(self, involved: Mapping[str, str], event_type: str, reason: str, message: str) -> None:
        self.runtime.kube.post_event(
            namespace=self.namespace,
            involved=involved,
            event_type=event_type,
            reason=reason,
            message=message,
            now=self.now,
        )

    def warn_once(self, marker: tuple[str, ...], reason: str, message: str) -> None:
        if marker in self.memory.announced:
            return
        self.memory.announced.add(marker)
        log.warning(message)
        self.post(event_object_ref(self.name, self.uid), "Warning", reason, message)


@dataclass(frozen=True)
class TargetReport:
    outcome: ClaimOutcome
    wanted: int | None
    floor: Floor
    metric: MetricMemory | None
    forecast: ForecastResult | None


@dataclass(frozen=True)
class Reconciled:
    status: dict[str, Any]
    next_at: datetime | None
    waiting_for_capacity: bool


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _event_memory(memo: kopf.Memo) -> EventMemory:
    if "event" not in memo:
        memo["event"] = EventMemory()
    return memo["event"]


def _condition(
    ctx: EventContext, previous: list[Mapping[str, Any]], kind: str, status: str, reason: str, message: str
) -> dict[str, Any]:
    before = next((item for item in previous if item.get("type") == kind), None)
    changed = before is None or before.get("status") != status
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _iso(ctx.now) if changed else before["lastTransitionTime"],
        "observedGeneration": ctx.generation,
    }


# --- one reconcile ---------------------------------------------------------------------------------------
def reconcile_event(
    runtime: Runtime,
    memory: EventMemory,
    *,
    name: str,
    namespace: str,
    uid: str,
    generation: int,
    raw_spec: Mapping[str, Any],
    old_status: Mapping[str, Any],
    snapshot: NamespaceSnapshot,
) -> Reconciled:
    """Bring the event's targets to what the plan wants now; return the status to write.

    `snapshot` is the namespace as the watches see it: reading targets costs no API call."""
    ctx = EventContext(runtime, memory, name, namespace, uid, generation, runtime.clock())
    previous_conditions = list(old_status.get("conditions") or [])
    try:
        spec = parse_spec(raw_spec)
        _validate_queries(ctx, spec)
    except SpecError as err:
        return _invalid(ctx, err, previous_conditions)

    window = resolve_window(spec, ctx.now)
    phase = phase_at(spec, window, ctx.now)
    fraction = claim_fraction(spec, window, ctx.now)
    dry_run = runtime.config.dry_run or spec.dry_run
    targets = _resolve_targets(snapshot, spec)
    if memory.reconciled_generation != generation:
        _release_dropped_targets(ctx, snapshot, {deployment for _, deployment in targets})

    reports = []
    for target, deployment_name in targets:
        report = _reconcile_target(
            ctx, snapshot, spec, window, target, deployment_name, fraction, dry_run, old_status
        )
        if report is not None:
            reports.append(report)
    # Every target is scaled before any Event is posted: Events must not delay the next target's write.
    _announce_changes(ctx, (report.outcome for report in reports), dry_run)

    target_status = [_target_status(ctx, spec, window, report, old_status) for report in reports]
    capacity = _capacity_condition(ctx, phase, reports, previous_conditions)
    _warn_about_capacity(ctx, spec, window, phase, reports, target_status)
    _record_phase(ctx, phase, window)
    found = {report.outcome.deployment.name for report in reports}
    missing = [t.name for t in spec.targets if t.name and t.name not in found]
    conditions = [
        _condition(
            ctx,
            previous_conditions,
            "Valid",
            "True",
            "TargetsMissing" if missing else "SpecValid",
            f"Deployment(s) not found: {', '.join(missing)}" if missing else "Spec is valid",
        ),
        capacity,
    ]
    conditions += _metric_conditions(ctx, spec, fraction, reports, previous_conditions)
    upcoming = next_transition(spec, window, ctx.now)
    memory.reconciled_generation = generation
    status = {
        "phase": str(phase),
        "window": {"start": _iso(window.start), "end": _iso(window.end)},
        "nextTransition": _iso(upcoming),
        "observedGeneration": generation,
        "targets": target_status,
        "conditions": conditions,
    }
    runtime.telemetry.observe_event(namespace, name, str(phase), target_status)
    return Reconciled(status=status, next_at=upcoming, waiting_for_capacity=capacity["status"] == "False")


def _invalid(ctx: EventContext, err: SpecError, previous_conditions: list[Mapping[str, Any]]) -> Reconciled:
    """An invalid spec touches nothing: claims made under an earlier valid spec are held, not guessed at."""
    if ("invalid", str(ctx.generation)) not in ctx.memory.announced:
        ctx.memory.announced.add(("invalid", str(ctx.generation)))
        log.warning("Rejected CampaignEvent %s/%s: %s", ctx.namespace, ctx.name, err)
        ctx.post(
            event_object_ref(ctx.name, ctx.uid),
            "Warning",
            "InvalidSpec",
            f"Rejected CampaignEvent {ctx.name}: {err}",
        )
    ctx.memory.reconciled_generation = ctx.generation
    status = {
        "phase": str(Phase.INVALID),
        "observedGeneration": ctx.generation,
        "nextTransition": None,
        "conditions": [_condition(ctx, previous_conditions, "Valid", "False", "InvalidSpec", str(err))],
    }
    ctx.runtime.telemetry.observe_event(ctx.namespace, ctx.name, str(Phase.INVALID), [])
    return Reconciled(status=status, next_at=None, waiting_for_capacity=False)


def _validate_queries(ctx: EventContext, spec: CampaignSpec) -> None:
    """A query Prometheus rejects is an invalid event, found before the window opens, not at the peak.

    Only a verdict counts: while Prometheus cannot be asked, the check is tried again at the next reconcile.
    """
    metrics = ctx.runtime.metrics
    if metrics is None or ctx.memory.validated_generation == ctx.generation:
        return
    for target in spec.targets:
        if target.metric is None:
            continue
        try:
            metrics.value(target.metric.query)
        except BadQueryError as err:
            raise SpecError(target.field("metric.query"), f"rejected by Prometheus: {err.detail}") from err
        except MetricsUnavailableError as err:
            if err.reason in ("ConnectionFailed", "Timeout", "HTTPError"):
                return
    ctx.memory.validated_generation = ctx.generation


# --- targets ---------------------------------------------------------------------------------------------
def _resolve_targets(snapshot: NamespaceSnapshot, spec: CampaignSpec) -> list[tuple[TargetSpec, str]]:
    """Each Deployment the event targets, once (the first target entry that names or selects it wins)."""
    seen: set[str] = set()
    resolved: list[tuple[TargetSpec, str]] = []
    for target in spec.targets:
        if target.name is not None:
            names = [target.name]
        else:
            names = [view.name for view in snapshot.matching(target.matches)]
        for name in names:
            if name not in seen:
                seen.add(name)
                resolved.append((target, name))
    return resolved


def _baseline_of(view: DeploymentView) -> int:
    return view.baseline.replicas if view.baseline is not None else view.replicas


def _reconcile_target(
    ctx: EventContext,
    snapshot: NamespaceSnapshot,
    spec: CampaignSpec,
    window: Window,
    target: TargetSpec,
    deployment_name: str,
    fraction: Fraction | None,
    dry_run: bool,
    old_status: Mapping[str, Any],
) -> TargetReport | None:
    view = snapshot.deployment(deployment_name)
    if view is None:
        return None
    baseline = _baseline_of(view)
    forecast = None
    if target.metric is not None and target.metric.forecast is not None and fraction is not None:
        forecast = _forecast(ctx, spec, window, target, deployment_name, old_status)
    floor = compute_floor(
        target,
        baseline,
        spec.traffic_multiplier,
        ctx.runtime.config.max_scale_factor,
        forecast_replicas=forecast.replicas if forecast else None,
    )
    wanted = ramp_replicas(baseline, floor.replicas, fraction) if fraction is not None else None
    metric = None
    if target.metric is not None and wanted is not None:
        metric = _metric_replicas(ctx, target, deployment_name, seed=view.claims.get(ctx.key))
        if metric.held is not None:
            wanted = clamp(max(wanted, metric.held), floor.min_replicas, floor.max_replicas)
    outcome = ctx.runtime.kube.set_claim(snapshot, deployment_name, ctx.key, wanted, dry_run=dry_run)
    if outcome is None:
        return None
    return TargetReport(outcome=outcome, wanted=wanted, floor=floor, metric=metric, forecast=forecast)


def _metric_replicas(
    ctx: EventContext, target: TargetSpec, deployment_name: str, seed: int | None
) -> MetricMemory:
    """Query the target's metric when due and fold it into the stabilized, never-blind replica count."""
    assert target.metric is not None
    config = ctx.runtime.config
    window = timedelta(seconds=config.scale_down_stabilization)
    state = ctx.memory.metrics.setdefault(deployment_name, MetricMemory())
    if state.held is None and seed is not None:
        # After a restart the history is gone: what this event holds now is the least it may keep.
        state.stabilizer = state.stabilizer.record(ctx.now, seed, window)
        state.held = seed
    due = state.queried_at is None or (ctx.now - state.queried_at).total_seconds() >= config.metrics_interval
    if not due:
        return state
    # The moment of the query itself, not of the reconcile's start: a query that waited behind other work
    # must not make the next one, from a reconcile that starts on time, come early.
    state.queried_at = ctx.runtime.clock()
    if ctx.runtime.metrics is None:
        _metric_failed(
            ctx,
            deployment_name,
            state,
            MetricsUnavailableError("NoPrometheus", "the operator runs without --prometheus-url"),
        )
        return state
    try:
        value = ctx.runtime.metrics.value(target.metric.query)
    except MetricsUnavailableError as err:
        _metric_failed(ctx, deployment_name, state, err)
        return state
    if state.failure is not None:
        ctx.post(
            event_object_ref(ctx.name, ctx.uid),
            "Normal",
            "MetricsRecovered",
            f"Metric of Deployment {ctx.namespace}/{deployment_name} answered again: {_number(value)}",
        )
    state.failure = None
    state.value = value
    wanted = replicas_for_metric(value, target.metric.target_per_replica)
    state.stabilizer = state.stabilizer.record(ctx.now, wanted, window)
    state.held = state.stabilizer.stabilized(ctx.now, window)
    return state


def _metric_failed(
    ctx: EventContext, deployment_name: str, state: MetricMemory, err: MetricsUnavailableError
) -> None:
    """Blind: hold the last metric-driven value (never lower it) and say so once per outage."""
    if state.failure is None:
        held = f"holding {state.held} replicas" if state.held is not None else "holding the planned floor"
        message = (
            f"Metric of Deployment {ctx.namespace}/{deployment_name} for CampaignEvent {ctx.name} is "
            f"unavailable ({err.reason}: {err.detail}); {held}"
        )
        log.warning(message)
        ctx.post(event_object_ref(ctx.name, ctx.uid), "Warning", "MetricsUnavailable", message)
    state.failure = err


def _forecast(
    ctx: EventContext,
    spec: CampaignSpec,
    window: Window,
    target: TargetSpec,
    deployment_name: str,
    old_status: Mapping[str, Any],
) -> ForecastResult:
    """The previous campaign's peak, `offset` ago, as a floor; computed once per window, kept in status."""
    assert target.metric is not None and target.metric.forecast is not None
    marker = (_iso(window.start) or "", deployment_name)
    known = ctx.memory.forecasts.get(marker) or _forecast_from_status(marker, old_status)
    if known is not None and (known.replicas is not None or known.problem == "NoData"):
        ctx.memory.forecasts[marker] = known
        return known
    forecast = target.metric.forecast
    if ctx.runtime.metrics is None:
        result = ForecastResult(None, None, "NoPrometheus")
    else:
        try:
            peak = ctx.runtime.metrics.peak(
                target.metric.query, window.start - forecast.offset, window.end - forecast.offset
            )
        except MetricsUnavailableError as err:
            result = ForecastResult(None, None, err.reason)
        else:
            if peak is None:
                result = ForecastResult(None, None, "NoData")
            else:
                replicas = forecast_replicas(peak, forecast.growth, target.metric.target_per_replica)
                result = ForecastResult(replicas, peak, None)
    ctx.memory.forecasts[marker] = result
    return result


def _forecast_from_status(marker: tuple[str, str], old_status: Mapping[str, Any]) -> ForecastResult | None:
    if (old_status.get("window") or {}).get("start") != marker[0]:
        return None
    for entry in old_status.get("targets") or []:
        if entry.get("name") == marker[1] and "forecastReplicas" in entry:
            peak = entry.get("forecastPeak")
            return ForecastResult(int(entry["forecastReplicas"]), float(peak) if peak else None, None)
    return None


def _release(ctx: EventContext, snapshot: NamespaceSnapshot, names: Iterable[str]) -> list[ClaimOutcome]:
    """Drop this event's claim on each named Deployment: back to its baseline or the claims that remain."""
    outcomes = [ctx.runtime.kube.set_claim(snapshot, name, ctx.key, None) for name in names]
    released = [outcome for outcome in outcomes if outcome is not None]
    _announce_changes(ctx, released, dry_run=False)
    return released


def _release_dropped_targets(ctx: EventContext, snapshot: NamespaceSnapshot, targeted: set[str]) -> None:
    """Targets this event still claims but no longer names (the spec was edited) are given back."""
    _release(ctx, snapshot, [name for name in snapshot.claimed_by(ctx.key) if name not in targeted])


def release_event(
    runtime: Runtime, *, name: str, namespace: str, uid: str, snapshot: NamespaceSnapshot
) -> list[ClaimOutcome]:
    """Drop every claim of this event, restoring targets to their baseline or to the claims that remain."""
    ctx = EventContext(runtime, EventMemory(), name, namespace, uid, 0, runtime.clock())
    released = _release(ctx, snapshot, snapshot.claimed_by(ctx.key))
    runtime.telemetry.forget_event(namespace, name)
    return released


def _describe_change(outcome: ClaimOutcome, event_name: str, dry_run: bool) -> tuple[str, str] | None:
    before, after = outcome.replicas_before, outcome.replicas_after
    if before == after:
        return None
    if outcome.hpa is not None:
        what = f"HorizontalPodAutoscaler {outcome.deployment.namespace}/{outcome.hpa.name} minReplicas"
    else:
        what = f"Deployment {outcome.deployment.ref}"
    if dry_run:
        return "DryRun", f"Would scale {what} {before} -> {after} for CampaignEvent {event_name} (dry run)"
    if outcome.released:
        return "Restored", f"Restored {what} {before} -> {after} after CampaignEvent {event_name} released it"
    return "Scaled", f"Scaled {what} {before} -> {after} for CampaignEvent {event_name}"


def _announce_changes(ctx: EventContext, outcomes: Iterable[ClaimOutcome], dry_run: bool) -> None:
    """An Event on each Deployment that changed, and one per reason on the CampaignEvent naming them all:
    a transition of many targets costs the API server one Event per target, not two."""
    by_reason: dict[str, list[str]] = {}
    for outcome in outcomes:
        change = _describe_change(outcome, ctx.name, dry_run)
        if change is None:
            continue
        reason, message = change
        if dry_run:
            # A dry run changes nothing, so the same plan would be announced again on every resync.
            marker = ("dry-run", outcome.deployment.name, str(outcome.replicas_after))
            if marker in ctx.memory.announced:
                continue
            ctx.memory.announced.add(marker)
        else:
            ctx.runtime.telemetry.count_scale(ctx.namespace, outcome.deployment.name, reason)
        log.info(message)
        ctx.post(deployment_object_ref(outcome.deployment), "Normal", reason, message)
        by_reason.setdefault(reason, []).append(message)
    if ctx.uid:
        for reason, messages in by_reason.items():
            ctx.post(event_object_ref(ctx.name, ctx.uid), "Normal", reason, "; ".join(messages))


# --- status ----------------------------------------------------------------------------------------------
def _target_status(
    ctx: EventContext, spec: CampaignSpec, window: Window, report: TargetReport, old_status: Mapping[str, Any]
) -> dict[str, Any]:
    outcome = report.outcome
    entry: dict[str, Any] = {
        "name": outcome.deployment.name,
        "via": outcome.via,
        "baselineReplicas": outcome.baseline.replicas,
        "desiredReplicas": report.wanted if report.wanted is not None else outcome.baseline.replicas,
        "readyReplicas": outcome.deployment.ready_replicas,
        "reason": _reason(report),
    }
    if report.forecast is not None and report.forecast.replicas is not None:
        entry["forecastReplicas"] = report.forecast.replicas
        if report.forecast.peak is not None:
            entry["forecastPeak"] = _number(report.forecast.peak)
    if report.metric is not None and report.metric.value is not None:
        entry["metricValue"] = _number(report.metric.value)
    seconds = _observed_ready_seconds(ctx, spec, window, report, old_status)
    if seconds is not None:
        entry["observedReadySeconds"] = seconds
    return entry


def _reason(report: TargetReport) -> str:
    reason = report.floor.reason
    metric = report.metric
    if metric is None or report.wanted is None:
        return reason
    if metric.failure is not None:
        return f"{reason}; metric unavailable ({metric.failure.reason}), holding {report.wanted}"
    if metric.held is not None and metric.held > report.floor.replicas and metric.value is not None:
        return f"{reason}; metric {_number(metric.value)} wants {metric.held}"
    return reason


def _observed_ready_seconds(
    ctx: EventContext, spec: CampaignSpec, window: Window, report: TargetReport, old_status: Mapping[str, Any]
) -> float | None:
    """Seconds from the start of pre-scaling until the full floor was first seen Ready, in this window."""
    name = report.outcome.deployment.name
    marker = (_iso(window.start) or "", name)
    memory = ctx.memory
    if marker not in memory.ready_seconds and (old_status.get("window") or {}).get("start") == marker[0]:
        for entry in old_status.get("targets") or []:
            if entry.get("name") == name and "observedReadySeconds" in entry:
                memory.ready_seconds[marker] = float(entry["observedReadySeconds"])
    if marker in memory.ready_seconds:
        return memory.ready_seconds[marker]
    started = lifecycle_start(spec, window)
    if report.wanted is None or ctx.now < started or report.wanted < report.floor.replicas:
        return None
    if report.outcome.deployment.ready_replicas >= report.wanted:
        memory.ready_seconds[marker] = round((ctx.now - started).total_seconds(), 1)
        return memory.ready_seconds[marker]
    return None


def _capacity_condition(
    ctx: EventContext, phase: Phase, reports: list[TargetReport], previous: list[Mapping[str, Any]]
) -> dict[str, Any]:
    claiming = [r for r in reports if r.wanted is not None]
    if not claiming:
        return _condition(
            ctx, previous, "CapacityReady", "Unknown", "NotScaling", f"No capacity is held in phase {phase}"
        )
    short = [r for r in claiming if r.outcome.deployment.ready_replicas < r.wanted]
    if not short:
        return _condition(
            ctx, previous, "CapacityReady", "True", "Ready", "Every target has its desired replicas Ready"
        )
    detail = ", ".join(
        f"{r.outcome.deployment.name} {r.outcome.deployment.ready_replicas}/{r.wanted}" for r in short
    )
    return _condition(
        ctx, previous, "CapacityReady", "False", "Scaling", f"Waiting for Ready replicas: {detail}"
    )


def _metric_conditions(
    ctx: EventContext,
    spec: CampaignSpec,
    fraction: Fraction | None,
    reports: list[TargetReport],
    previous: list[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    if not any(target.metric is not None for target in spec.targets):
        return []
    conditions = []
    measured = [r for r in reports if r.metric is not None]
    failing = [r for r in measured if r.metric.failure is not None]
    if fraction is None or not measured:
        conditions.append(
            _condition(
                ctx,
                previous,
                "MetricsAvailable",
                "Unknown",
                "NotQuerying",
                "Metrics are queried from pre-scale to the end of the ramp-down",
            )
        )
    elif failing:
        detail = "; ".join(f"{r.outcome.deployment.name}: {r.metric.failure}" for r in failing)
        conditions.append(
            _condition(
                ctx,
                previous,
                "MetricsAvailable",
                "False",
                failing[0].metric.failure.reason,
                f"Holding the last wanted replicas: {detail}",
            )
        )
    else:
        conditions.append(
            _condition(
                ctx,
                previous,
                "MetricsAvailable",
                "True",
                "QueriesAnswered",
                "Every metric query returned one number",
            )
        )
    forecasting = [r for r in reports if r.forecast is not None]
    if forecasting:
        missing = [r for r in forecasting if r.forecast.replicas is None]
        if missing:
            detail = "; ".join(f"{r.outcome.deployment.name}: {r.forecast.problem}" for r in missing)
            conditions.append(
                _condition(
                    ctx,
                    previous,
                    "ForecastAvailable",
                    "False",
                    missing[0].forecast.problem,
                    f"No forecast, the plain floor applies: {detail}",
                )
            )
        else:
            detail = "; ".join(
                f"{r.outcome.deployment.name}: {r.forecast.replicas} from peak {r.forecast.peak:g}"
                for r in forecasting
            )
            conditions.append(_condition(ctx, previous, "ForecastAvailable", "True", "PeakFound", detail))
    return conditions


def _warn_about_capacity(
    ctx: EventContext,
    spec: CampaignSpec,
    window: Window,
    phase: Phase,
    reports: list[TargetReport],
    target_status: list[dict[str, Any]],
) -> None:
    window_id = _iso(window.start) or ""
    # Judged once, on the reconcile that opens the window (after a restart mid-window nobody saw it open).
    opening = phase == Phase.ACTIVE and ctx.memory.last_phase in (str(Phase.PENDING), str(Phase.PRE_SCALING))
    for report, entry in zip(reports, target_status, strict=True):
        deployment = report.outcome.deployment
        if opening and report.wanted is not None and deployment.ready_replicas < report.wanted:
            ctx.warn_once(
                ("shortfall", window_id, deployment.name),
                "CapacityShortfall",
                f"Deployment {deployment.ref} had {deployment.ready_replicas} of {report.wanted} replicas "
                f"Ready when the window of CampaignEvent {ctx.name} opened "
                f"(short by {report.wanted - deployment.ready_replicas})",
            )
        seconds = entry.get("observedReadySeconds")
        if seconds is not None and seconds > spec.lead_time.total_seconds():
            ctx.warn_once(
                ("lead-time", window_id, deployment.name),
                "LeadTimeTooShort",
                f"Deployment {deployment.ref} took {seconds:.0f}s to become Ready, more than the leadTime "
                f"of {spec.lead_time.total_seconds():.0f}s of CampaignEvent {ctx.name}",
            )


def _record_phase(ctx: EventContext, phase: Phase, window: Window) -> None:
    if ctx.memory.last_phase != str(phase):
        if ctx.memory.last_phase is not None:
            ctx.runtime.telemetry.count_transition(ctx.namespace, ctx.name, str(phase))
            log.info("CampaignEvent %s/%s entered phase %s", ctx.namespace, ctx.name, phase)
        ctx.memory.last_phase = str(phase)


# --- Kopf wiring -----------------------------------------------------------------------------------------
def _sleep_seconds(runtime: Runtime, memory: EventMemory, result: Reconciled) -> float:
    now = runtime.clock()
    delays = [runtime.config.resync_interval]
    if result.next_at is not None:
        delays.append(max(0.0, (result.next_at - now).total_seconds()) + TRANSITION_GRACE_SECONDS)
    if result.waiting_for_capacity:
        delays.append(READINESS_POLL_SECONDS)
    for state in memory.metrics.values():
        if state.queried_at is not None and result.status.get("phase") not in ("Pending", "Completed"):
            due = runtime.config.metrics_interval - (now - state.queried_at).total_seconds()
            delays.append(max(0.0, due) + TRANSITION_GRACE_SECONDS)
    return min(delays)


async def _nap(memory: EventMemory, stopped: kopf.DaemonStopped, seconds: float) -> None:
    async def until_stopped() -> None:
        await stopped.wait()

    waiters = [asyncio.ensure_future(memory.wakeup.wait()), asyncio.ensure_future(until_stopped())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    memory.wakeup.clear()


async def campaign_daemon(
    name: str,
    namespace: str,
    uid: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """The event's own loop: act on every transition when it is due, re-assert floors every resync."""
    runtime: Runtime = memo["runtime"]
    memory = _event_memory(memo)
    due: datetime | None = None
    while not stopped and not meta.get("deletionTimestamp"):
        async with memory.lock:
            if meta.get("deletionTimestamp"):
                break
            try:
                result = await asyncio.to_thread(
                    reconcile_event,
                    runtime,
                    memory,
                    name=name,
                    namespace=namespace,
                    uid=uid,
                    generation=int(meta.get("generation") or 0),
                    raw_spec=dict(spec),
                    old_status=dict(status),
                    snapshot=_workloads(memo).snapshot(namespace),
                )
                if result.status != dict(status):
                    await asyncio.to_thread(runtime.kube.patch_event_status, namespace, name, result.status)
            except ApiException as err:
                # Nothing is half-applied: every write tests what it was decided on and is made again,
                # from fresh data, on the next attempt.
                runtime.telemetry.api_errors.labels(status=str(err.status)).inc()
                log.warning(
                    "Failed to reconcile CampaignEvent %s/%s: API error %s %s; retrying",
                    namespace,
                    name,
                    err.status,
                    err.reason,
                )
                await _nap(memory, stopped, RETRY_SECONDS)
                continue
            except (TargetConflictError, CorruptAnnotationError, OSError) as err:
                log.warning("Failed to reconcile CampaignEvent %s/%s: %s; retrying", namespace, name, err)
                await _nap(memory, stopped, RETRY_SECONDS)
                continue
        if due is not None and due <= runtime.clock():
            runtime.telemetry.transition_lag.observe(max(0.0, (runtime.clock() - due).total_seconds()))
        due = result.next_at
        await _nap(memory, stopped, _sleep_seconds(runtime, memory, result))


async def on_event_changed(meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    """Wake the event's daemon at once when its spec changed or it is being deleted."""
    memory = _event_memory(memo)
    if meta.get("deletionTimestamp") or memory.reconciled_generation != meta.get("generation"):
        memory.wakeup.set()


async def on_event_deleted(
    name: str,
    namespace: str,
    uid: str,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Finalizer: release every claim of the event at once."""
    runtime: Runtime = memo["runtime"]
    memory = _event_memory(memo)
    async with memory.lock:
        snapshot = _workloads(memo).snapshot(namespace)
        outcomes = await asyncio.to_thread(
            release_event, runtime, name=name, namespace=namespace, uid=uid, snapshot=snapshot
        )
    log.info("Released CampaignEvent %s/%s from %d target(s)", namespace, name, len(outcomes))


def _workloads(memo: kopf.Memo) -> WorkloadCache:
    # Read in the event loop that keeps it current, before the reconcile moves to a thread.
    workloads: WorkloadCache = memo["workloads"]
    return workloads


async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep Kopf's bookkeeping out of status (the daemon is its only writer) and under our own names; and
    start watching the Deployments and HPAs the events may target, before any event is reconciled."""
    runtime: Runtime = memo["runtime"]
    # How long a silent peer counts as alive: a standby takes over this long after the active one died.
    settings.peering.lifetime = max(1, round(runtime.config.peering_lifetime))
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.enabled = False  # our own Events carry the object names; Kopf's would duplicate them
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10]
    info = connection_info(runtime.api_client.configuration)
    session = bounded_session(info, KOPF_CONCURRENT_REQUESTS)
    configuration = runtime.api_client.configuration
    workloads = WorkloadCache(
        session,
        info.server,
        runtime.config.namespaces or None,
        headers=lambda: connection_info(configuration).as_http_headers(),
    )
    memo["workloads"] = workloads
    memo["workloads_session"] = session
    memo["workloads_task"] = asyncio.create_task(workloads.run(), name="workloads")
    await workloads.wait_synced()


async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("workloads_task")
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    session: aiohttp.ClientSession | None = memo.get("workloads_session")
    if session is not None:
        await session.close()


def connection_info(configuration: client.Configuration) -> kopf.ConnectionInfo:
    """The same cluster, as the same identity, as the kubernetes client of the adapters."""
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    scheme, token = header.split(" ", 1) if header and " " in header else (None, header)
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        username=configuration.username or None,
        password=configuration.password or None,
    )


def _is_watch(request: aiohttp.ClientRequest) -> bool:
    return request.url.query.get("watch") in ("true", "1")


def bounded_session(info: kopf.ConnectionInfo, max_requests: int) -> aiohttp.ClientSession:
    """An HTTP session (Kopf's, the workload cache's): at most `max_requests` requests at once, watches aside.

    Kopf's own session opens a new TLS connection for every concurrent request, without a limit: 500 events
    seen at once at start-up meant hundreds of connections, each with a 256 KiB read buffer, and most of the
    operator's peak memory. A connection-count limit cannot be used instead: every watch stream holds its
    connection for minutes, and how many there are depends on the namespaces, so a limit could starve them.
    """
    gate = asyncio.Semaphore(max_requests)

    async def bounded(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if _is_watch(request):
            return await handler(request)
        async with gate:
            response = await handler(request)
            # Read the body while holding the gate: the connection goes back to the pool before the next one.
            await response.read()
            return response

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        middlewares=(bounded,),
    )


async def on_login(memo: kopf.Memo, **_: Any) -> kopf.AiohttpSession:
    """Kopf talks to the same cluster as the adapters, through a session that bounds its requests in flight.

    Kopf closes the session itself when it forgets the credentials (at exit or on a new login).
    """
    info = connection_info(memo["runtime"].api_client.configuration)
    return kopf.AiohttpSession(
        server=info.server, aiohttp_session=bounded_session(info, KOPF_CONCURRENT_REQUESTS)
    )


def build_registry() -> kopf.OperatorRegistry:
    """A fresh registry with the handlers above (no module-level registry: tests run several operators)."""
    registry = kopf.OperatorRegistry()
    resource = (API_GROUP, API_VERSION, PLURAL)
    kopf.on.startup(registry=registry)(on_startup)
    kopf.on.login(registry=registry)(on_login)
    kopf.on.cleanup(registry=registry)(on_cleanup)
    # A failure is retried after RETRY_SECONDS, not Kopf's default minute: a release is due "at once".
    kopf.daemon(*resource, registry=registry, cancellation_timeout=10.0, backoff=RETRY_SECONDS)(
        campaign_daemon
    )
    kopf.on.event(*resource, registry=registry)(on_event_changed)
    kopf.on.delete(*resource, registry=registry, backoff=RETRY_SECONDS)(on_event_deleted)
    return registry
