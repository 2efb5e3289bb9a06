"""The pass's summary step: each target's tally of the window so far, and `status.summary` once it is over.

The tally of a target lives in the pass's memory and in `status.targets[].windowSoFar`, from where it is
read back after a restart. When a window is over (a one-off event Completed, or a recurring one moved on to
its next window) its tallies become `status.summary`, announced once by a Normal Event; the summary of the
most recent window stays until the next one replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from campaign_autoscaler.planning import CampaignSpec, Phase, Window, replicas_for_metric
from campaign_autoscaler.planning.instants import parse_kube_time
from campaign_autoscaler.planning.numbers import format_sample
from campaign_autoscaler.planning.summary import (
    Observation,
    Tally,
    TargetPlan,
    TargetSummary,
    headline,
    observe,
    summarize,
)

from .context import EventContext, TargetReport, iso, log
from .runtime import WindowMemory
from .status import previous_entry

SO_FAR = "windowSoFar"


def observation(ctx: EventContext, report: TargetReport) -> Observation:
    """What this pass saw of the target."""
    value = report.metric.value if report.metric is not None else None
    metric = report.target.metric if report.target is not None else None
    demand = None
    if value is not None and metric is not None:
        demand = replicas_for_metric(value, metric.target_per_replica)
    return Observation(
        at=ctx.now,
        desired=report.wanted,
        ready=report.outcome.deployment.ready_replicas,
        metric=value,
        demand=demand,
        floor=report.decision.floor.replicas,
    )


def fold_tally(
    ctx: EventContext, window: Window, report: TargetReport, old_status: Mapping[str, Any]
) -> Tally:
    """The target's tally with this pass folded in, remembered for the next pass."""
    name = report.outcome.deployment.key
    tallies = ctx.memory.window.tallies
    known = tallies.get(name)
    if known is None:
        known = tally_from_status(previous_entry(old_status, ctx.memory.window.key, name).get(SO_FAR) or {})
    tallies[name] = observe(known, observation(ctx, report), window)
    return tallies[name]


def record_window(
    ctx: EventContext,
    spec: CampaignSpec,
    window: Window,
    phase: Phase,
    reports: list[TargetReport],
    status: dict[str, Any],
    old_status: Mapping[str, Any],
) -> None:
    """The summary step of a pass: each target's tally into `status.targets[]`, and `status.summary`."""
    for report, entry in zip(reports, status["targets"], strict=True):
        so_far = tally_status(fold_tally(ctx, window, report, old_status))
        if so_far is not None:
            entry[SO_FAR] = so_far
    summary = window_summary(ctx, spec, window, phase, reports, old_status)
    if summary is not None:
        status["summary"] = summary


def tally_status(tally: Tally) -> dict[str, Any] | None:
    """`status.targets[].windowSoFar`; None before anything was observed."""
    if not tally.observed:
        return None
    entry: dict[str, Any] = {
        "peakDesiredReplicas": tally.peak_desired,
        "peakReadyReplicas": tally.peak_ready,
        "shortSeconds": round(tally.short_seconds, 1),
    }
    if tally.peak_metric is not None:
        entry["peakMetricValue"] = format_sample(tally.peak_metric)
    if tally.floor is not None:
        entry["floorReplicas"] = tally.floor
    if tally.short_since is not None:
        entry["shortSince"] = iso(tally.short_since)
    if tally.ready_at_start is not None:
        entry["readyAtStart"] = tally.ready_at_start
    return entry


def tally_from_status(entry: Mapping[str, Any]) -> Tally:
    if "peakDesiredReplicas" not in entry:
        return Tally()
    since = entry.get("shortSince")
    peak_metric = entry.get("peakMetricValue")
    return Tally(
        peak_desired=int(entry["peakDesiredReplicas"]),
        peak_ready=int(entry.get("peakReadyReplicas") or 0),
        peak_metric=float(peak_metric) if peak_metric is not None else None,
        floor=int(entry["floorReplicas"]) if "floorReplicas" in entry else None,
        short_seconds=float(entry.get("shortSeconds") or 0),
        short_since=datetime.fromisoformat(since) if since else None,
        ready_at_start=entry.get("readyAtStart"),
    )


def window_summary(
    ctx: EventContext,
    spec: CampaignSpec,
    window: Window,
    phase: Phase,
    reports: list[TargetReport],
    old_status: Mapping[str, Any],
) -> dict[str, Any] | None:
    """`status.summary`: of the window that just ended, else the one kept from before (None: none yet)."""
    kept = old_status.get("summary")
    ended = _ended_window(ctx, spec, window, phase, old_status)
    if ended is None:
        return dict(kept) if kept else None
    over, memory, entries = ended
    if kept and (kept.get("window") or {}).get("start") == iso(over.start):
        return dict(kept)
    plans = {report.outcome.deployment.name: _plan(spec, report) for report in reports}
    names = [*entries, *(name for name in (memory.tallies if memory else {}) if name not in entries)]
    summaries = []
    for name in names:
        entry = entries.get(name, {})
        tally = memory.tallies.get(name) if memory is not None else None
        if tally is None:
            tally = tally_from_status(entry.get(SO_FAR) or {})
        ready_seconds = memory.ready_seconds.get(name) if memory is not None else None
        if ready_seconds is None and "observedReadySeconds" in entry:
            ready_seconds = float(entry["observedReadySeconds"])
        plan = plans.get(name) or TargetPlan(lead_time=spec.lead_time)
        summaries.append(summarize(name, tally, over, plan, ready_seconds))
    if not any(summary.peak_desired is not None for summary in summaries):
        return dict(kept) if kept else None  # the window ran without this operator seeing it: nothing to tell
    line = headline(ctx.name, summaries)
    if memory is None:  # after a restart: the window's memory starts here, to announce it once
        memory = ctx.memory.finished = WindowMemory(iso(over.start) or "")
    if ("summary",) not in memory.announced:
        memory.announced.add(("summary",))
        log.info(line)
        ctx.post(ctx.ref, "Normal", "CampaignSummary", line)
    return {
        "window": {"start": iso(over.start), "end": iso(over.end)},
        "headline": line,
        "targets": [summary_status(summary) for summary in summaries],
    }


def summary_status(summary: TargetSummary) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": summary.name,
        "peakDesiredReplicas": summary.peak_desired,
        "peakReadyReplicas": summary.peak_ready,
        "shortSeconds": summary.short_seconds,
        "recommendation": summary.recommendation,
    }
    if summary.peak_metric is not None:
        entry["peakMetricValue"] = format_sample(summary.peak_metric)
    if summary.ready_at_start is not None:
        entry["readyAtStart"] = summary.ready_at_start
    if summary.observed_ready_seconds is not None:
        entry["observedReadySeconds"] = summary.observed_ready_seconds
    return {key: value for key, value in entry.items() if value is not None}


def _ended_window(
    ctx: EventContext, spec: CampaignSpec, window: Window, phase: Phase, old_status: Mapping[str, Any]
) -> tuple[Window, WindowMemory | None, dict[str, Mapping[str, Any]]] | None:
    """The window that is over, the memory of it this process holds, and its last status entries by name."""
    entries = {entry["name"]: entry for entry in old_status.get("targets") or [] if entry.get("name")}
    if phase == Phase.COMPLETED:
        same_window = (old_status.get("window") or {}).get("start") == iso(window.start)
        return window, ctx.memory.window, entries if same_window else {}
    # A recurring event has moved on to its next window: the previous one is over.
    before = old_status.get("window") or {}
    if not before.get("start") or before["start"] == iso(window.start) or not before.get("end"):
        return None
    over = Window(parse_kube_time(before["start"]), parse_kube_time(before["end"]))
    if over.end > ctx.now:
        return None  # the window was edited, not finished
    finished = ctx.memory.finished
    memory = finished if finished is not None and finished.key == before["start"] else None
    return over, memory, entries


def _plan(spec: CampaignSpec, report: TargetReport) -> TargetPlan:
    metric = report.target.metric if report.target is not None else None
    return TargetPlan(
        lead_time=spec.lead_time,
        target_per_replica=metric.target_per_replica if metric is not None else None,
        growth=metric.forecast.growth if metric is not None and metric.forecast is not None else None,
    )
