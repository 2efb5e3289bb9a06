"""The event's status, written whole by every pass: phase, window, targets and conditions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from campaign_autoscaler.planning import (
    CampaignSpec,
    Phase,
    SpecError,
    Window,
    lifecycle_start,
    split_key,
    target_key,
)
from campaign_autoscaler.planning.capacity import NotReadyReason
from campaign_autoscaler.planning.numbers import format_sample

from .context import EventContext, TargetReport, iso


def condition(
    ctx: EventContext, previous: list[Mapping[str, Any]], kind: str, status: str, reason: str, message: str
) -> dict[str, Any]:
    before = next((item for item in previous if item.get("type") == kind), None)
    changed = before is None or before.get("status") != status
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": iso(ctx.now) if changed else before["lastTransitionTime"],
        "observedGeneration": ctx.generation,
    }


def invalid_status(ctx: EventContext, err: SpecError, previous: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The whole status of an invalid event: no window, no targets, nothing left of the valid spec before."""
    return {
        "phase": str(Phase.INVALID),
        "observedGeneration": ctx.generation,
        "conditions": [condition(ctx, previous, "Valid", "False", "InvalidSpec", str(err))],
    }


def valid_status(
    ctx: EventContext,
    spec: CampaignSpec,
    window: Window,
    phase: Phase,
    upcoming: datetime | None,
    reports: list[TargetReport],
    old_status: Mapping[str, Any],
) -> dict[str, Any]:
    previous = list(old_status.get("conditions") or [])
    found = {report.outcome.deployment.key for report in reports}
    missing = [t.display for t in spec.targets if t.name and target_key(t, t.name) not in found]
    conditions = [
        condition(
            ctx,
            previous,
            "Valid",
            "True",
            "TargetsMissing" if missing else "SpecValid",
            f"Target(s) not found: {', '.join(missing)}" if missing else "Spec is valid",
        ),
        capacity_condition(ctx, phase, reports, previous),
        *metric_conditions(ctx, spec, reports, previous),
    ]
    status: dict[str, Any] = {
        "phase": str(phase),
        "window": {"start": iso(window.start), "end": iso(window.end)},
        "observedGeneration": ctx.generation,
        "targets": [target_status(ctx, spec, window, report, old_status) for report in reports],
        "conditions": conditions,
    }
    if upcoming is not None:
        status["nextTransition"] = iso(upcoming)
    return status


def target_status(
    ctx: EventContext, spec: CampaignSpec, window: Window, report: TargetReport, old_status: Mapping[str, Any]
) -> dict[str, Any]:
    outcome = report.outcome
    entry: dict[str, Any] = {
        "name": outcome.deployment.name,
        "kind": outcome.deployment.kind,
        "via": outcome.via,
        "baselineReplicas": outcome.baseline.replicas,
        "desiredReplicas": report.wanted if report.wanted is not None else outcome.baseline.replicas,
        "readyReplicas": outcome.deployment.ready_replicas,
        "pendingReplicas": report.capacity.pending,
        "reason": report.decision.reason,
    }
    if report.capacity.reason is not None:  # absent when nothing is pending: the API server refuses ""
        entry["notReadyReason"] = str(report.capacity.reason)
    if report.forecast is not None and report.forecast.replicas is not None:
        entry["forecastReplicas"] = report.forecast.replicas
        if report.forecast.peak is not None:
            entry["forecastPeak"] = format_sample(report.forecast.peak)
    if report.next_change is not None:
        at, replicas = report.next_change
        entry["nextPlannedChange"] = {"at": iso(at), "replicas": replicas}
    if report.metric is not None and report.metric.value is not None:
        entry["metricValue"] = format_sample(report.metric.value)
    seconds = observed_ready_seconds(ctx, spec, window, report, old_status)
    if seconds is not None:
        entry["observedReadySeconds"] = seconds
    return entry


def previous_entry(old_status: Mapping[str, Any], window_key: str, key: str) -> Mapping[str, Any]:
    """The entry of the target of that key (planning.workload_key) in the status written for the same window
    (after a restart, what the pass before it found); empty when there is none."""
    if (old_status.get("window") or {}).get("start") != window_key:
        return {}
    kind, _, name = split_key(key)
    return next(
        (
            entry
            for entry in old_status.get("targets") or []
            if entry.get("name") == name and entry.get("kind", "Deployment") == kind
        ),
        {},
    )


def observed_ready_seconds(
    ctx: EventContext, spec: CampaignSpec, window: Window, report: TargetReport, old_status: Mapping[str, Any]
) -> float | None:
    """Seconds from the start of pre-scaling until the full floor was first seen Ready, in this window."""
    name = report.outcome.deployment.key
    seen = ctx.memory.window.ready_seconds
    if name not in seen:
        previous = previous_entry(old_status, ctx.memory.window.key, name)
        if "observedReadySeconds" in previous:
            seen[name] = float(previous["observedReadySeconds"])
    if name in seen:
        return seen[name]
    started = lifecycle_start(spec, window)
    wanted = report.wanted
    if wanted is None or ctx.now < started or wanted < report.decision.floor.replicas:
        return None
    if report.outcome.deployment.ready_replicas >= wanted:
        seen[name] = round((ctx.now - started).total_seconds(), 1)
        return seen[name]
    return None


def capacity_condition(
    ctx: EventContext, phase: Phase, reports: list[TargetReport], previous: list[Mapping[str, Any]]
) -> dict[str, Any]:
    claiming = [r for r in reports if r.wanted is not None]
    if not claiming:
        return condition(
            ctx, previous, "CapacityReady", "Unknown", "NotScaling", f"No capacity is held in phase {phase}"
        )
    short = [r for r in claiming if r.capacity.short]
    if not short:
        return condition(
            ctx, previous, "CapacityReady", "True", "Ready", "Every target has its desired replicas Ready"
        )
    # The reason of the target held back hardest (NotReadyReason is ordered most blocking first); the
    # message says why each short target is short.
    order = list(NotReadyReason)
    worst = min((r.capacity.reason for r in short if r.capacity.reason), key=order.index)
    detail = "; ".join(f"{r.outcome.deployment.name}: {r.capacity.message}" for r in short)
    return condition(ctx, previous, "CapacityReady", "False", str(worst), detail)


def metric_conditions(
    ctx: EventContext, spec: CampaignSpec, reports: list[TargetReport], previous: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    if not any(target.metric is not None for target in spec.targets):
        return []
    measured = [(r, r.metric) for r in reports if r.metric is not None and r.wanted is not None]
    failing = [(r, m.failure) for r, m in measured if m.failure is not None]
    # No answer yet, and no failure either: the sampler has not heard back from Prometheus since it began.
    unanswered = [r for r, m in measured if m.failure is None and m.value is None]
    if not measured:
        metrics = condition(
            ctx,
            previous,
            "MetricsAvailable",
            "Unknown",
            "NotQuerying",
            "Metrics are queried from pre-scale to the end of the ramp-down",
        )
    elif failing:
        detail = "; ".join(f"{r.outcome.deployment.name}: {f.describe_failure()}" for r, f in failing)
        metrics = condition(
            ctx,
            previous,
            "MetricsAvailable",
            "False",
            str(failing[0][1].failure_reason),
            f"Holding the last wanted replicas: {detail}",
        )
    elif unanswered:
        names = ", ".join(r.outcome.deployment.name for r in unanswered)
        metrics = condition(
            ctx,
            previous,
            "MetricsAvailable",
            "Unknown",
            "AwaitingFirstAnswer",
            f"Waiting for Prometheus' first answer: {names}",
        )
    else:
        metrics = condition(
            ctx,
            previous,
            "MetricsAvailable",
            "True",
            "QueriesAnswered",
            "Every metric query returned one number",
        )
    return [metrics, *forecast_conditions(ctx, reports, previous)]


def forecast_conditions(
    ctx: EventContext, reports: list[TargetReport], previous: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """ForecastAvailable: False (with the first reason) when any target's forecast or curve is missing or
    has gaps, Unknown while a curve is awaited, True when every one was found."""
    found: list[str] = []
    missing: list[tuple[str, str, str]] = []  # (reason, Deployment, detail)
    awaited: list[str] = []
    for report in reports:
        name = report.outcome.deployment.name
        forecast, curve = report.forecast, report.curve
        if forecast is not None and forecast.replicas is None:
            missing.append((str(forecast.problem), name, str(forecast.problem)))
        elif forecast is not None:
            found.append(
                f"{name}: {forecast.replicas} from peak {forecast.peak:g}"
                if forecast.peak is not None
                else f"{name}: {forecast.replicas}"
            )
        if curve is not None and curve.problem == "AwaitingHistory":
            awaited.append(name)
        elif curve is not None and curve.history is None:
            detail = f"{curve.problem}: {curve.detail}" if curve.detail else str(curve.problem)
            missing.append((str(curve.problem), name, detail))
        elif curve is not None and curve.history is not None and curve.history.gaps:
            missing.append(("HistoryIncomplete", name, curve.history.describe_gaps()))
        elif curve is not None and curve.history is not None:
            found.append(f"{name}: curve of {len(curve.history.values)} minutes")
    if missing:
        detail = "; ".join(f"{name}: {what}" for _, name, what in missing)
        message = f"No forecast, the plain floor applies (where the history is missing): {detail}"
        return [condition(ctx, previous, "ForecastAvailable", "False", missing[0][0], message)]
    if awaited:
        message = f"Waiting for the previous campaign's curve: {', '.join(awaited)}"
        return [condition(ctx, previous, "ForecastAvailable", "Unknown", "AwaitingHistory", message)]
    if not found:
        return []
    reason = "PeakFound" if all(r.curve is None for r in reports) else "HistoryRead"
    return [condition(ctx, previous, "ForecastAvailable", "True", reason, "; ".join(found))]
