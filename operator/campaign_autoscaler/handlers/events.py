"""What a pass tells people: log lines and Kubernetes Events about scaling, capacity and metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from campaign_autoscaler.adapters.kube import ClaimOutcome, deployment_object_ref
from campaign_autoscaler.planning import CampaignSpec, Phase
from campaign_autoscaler.planning.capacity import NotReadyReason
from campaign_autoscaler.planning.numbers import format_sample
from campaign_autoscaler.planning.scaledobject import SCALED_OBJECT_KIND

from .context import EventContext, TargetReport, log


def describe_change(outcome: ClaimOutcome, event_name: str, dry_run: bool) -> tuple[str, str] | None:
    before, after = outcome.replicas_before, outcome.replicas_after
    if before == after:
        return None
    if outcome.hpa is not None:
        bound = "minReplicaCount" if outcome.hpa.kind == SCALED_OBJECT_KIND else "minReplicas"
        what = f"{outcome.hpa.kind} {outcome.deployment.namespace}/{outcome.hpa.name} {bound}"
    else:
        what = outcome.deployment.described
    if dry_run:
        return "DryRun", f"Would scale {what} {before} -> {after} for CampaignEvent {event_name} (dry run)"
    if outcome.released:
        return "Restored", f"Restored {what} {before} -> {after} after CampaignEvent {event_name} released it"
    return "Scaled", f"Scaled {what} {before} -> {after} for CampaignEvent {event_name}"


def announce_changes(ctx: EventContext, outcomes: Iterable[ClaimOutcome], dry_run: bool) -> None:
    """An Event on each Deployment that changed, and one per reason on the CampaignEvent naming them all:
    a transition of many targets costs the API server one Event per target, not two."""
    by_reason: dict[str, list[str]] = {}
    for outcome in outcomes:
        change = describe_change(outcome, ctx.name, dry_run)
        if change is None:
            continue
        reason, message = change
        if dry_run:
            # A dry run changes nothing, so the same plan would be announced again on every resync.
            marker = ("dry-run", outcome.deployment.key, str(outcome.replicas_after))
            if marker in ctx.memory.window.announced:
                continue
            ctx.memory.window.announced.add(marker)
        else:
            ctx.runtime.telemetry.count_scale(ctx.namespace, outcome.deployment.name, reason)
        log.info(message)
        ctx.post(deployment_object_ref(outcome.deployment), "Normal", reason, message)
        by_reason.setdefault(reason, []).append(message)
    if ctx.uid:
        for reason, messages in by_reason.items():
            ctx.post(ctx.ref, "Normal", reason, "; ".join(messages))


def announce_metrics(ctx: EventContext, reports: Iterable[TargetReport]) -> None:
    """A Warning when a target's metric goes blind (once per outage), a Normal Event when it answers again."""
    for report in reports:
        before, after = report.metric_before, report.metric
        if before is None or after is None or report.wanted is None:
            continue
        name = report.outcome.deployment.described
        if after.failure is not None and before.failure is None:
            held = f"holding {after.held} replicas" if after.held is not None else "holding the planned floor"
            message = (
                f"Metric of {name} for CampaignEvent {ctx.name} is unavailable "
                f"({after.failure.describe_failure()}); {held}"
            )
            log.warning(message)
            ctx.post(ctx.ref, "Warning", "MetricsUnavailable", message)
        elif after.failure is None and before.failure is not None and after.value is not None:
            message = f"Metric of {name} answered again: {format_sample(after.value)}"
            ctx.post(ctx.ref, "Normal", "MetricsRecovered", message)


def warn_about_paused(ctx: EventContext, reports: Iterable[TargetReport]) -> None:
    """A Warning (once per window) for each target whose ScaledObject a person paused: it is left alone."""
    for report in reports:
        outcome = report.outcome
        if not outcome.paused or outcome.hpa is None or report.wanted is None:
            continue
        ctx.warn_once(
            ("paused", outcome.deployment.name),
            "ScaledObjectPaused",
            f"Left ScaledObject {outcome.deployment.namespace}/{outcome.hpa.name} alone: it is paused "
            "(autoscaling.keda.sh/paused-replicas or paused); "
            f"Deployment {outcome.deployment.ref} is not scaled for CampaignEvent {ctx.name}",
        )


def warn_about_capacity(
    ctx: EventContext, spec: CampaignSpec, phase: Phase, reports: list[TargetReport], statuses: list[dict]
) -> None:
    # Judged once, on the pass that opens the window (after a restart mid-window nobody saw it open).
    opening = phase == Phase.ACTIVE and ctx.memory.last_phase in (str(Phase.PENDING), str(Phase.PRE_SCALING))
    for report, entry in zip(reports, statuses, strict=True):
        deployment = report.outcome.deployment
        if opening and report.wanted is not None and deployment.ready_replicas < report.wanted:
            ctx.warn_once(
                ("shortfall", deployment.key),
                "CapacityShortfall",
                f"{deployment.described} had {deployment.ready_replicas} of {report.wanted} replicas "
                f"Ready when the window of CampaignEvent {ctx.name} opened "
                f"(short by {report.wanted - deployment.ready_replicas})",
            )
        seconds = entry.get("observedReadySeconds")
        if seconds is not None and seconds > spec.lead_time.total_seconds():
            ctx.warn_once(
                ("lead-time", deployment.key),
                "LeadTimeTooShort",
                f"{deployment.described} took {seconds:.0f}s to become Ready, more than the leadTime "
                f"of {spec.lead_time.total_seconds():.0f}s of CampaignEvent {ctx.name}",
            )


def warn_about_unready(
    ctx: EventContext, reports: Iterable[TargetReport], old_status: Mapping[str, Any]
) -> None:
    """One Warning on the event per cause (QuotaExceeded, Unschedulable, ...) and target held back by it, in
    a window; none for one the status already showed before this process saw it (a restart), and none for
    replicas that are merely starting. Repeats of a cause that comes back are counted by the Event lane."""
    shown = {entry.get("name"): entry.get("notReadyReason") for entry in old_status.get("targets") or ()}
    for report in reports:
        reason = report.capacity.reason
        if report.wanted is None or reason is None or reason == NotReadyReason.STARTING:
            continue
        name = report.outcome.deployment.name
        marker = ("unready", name, str(reason))
        if shown.get(name) == str(reason):
            ctx.memory.window.announced.add(marker)
            continue
        message = f"Deployment {report.outcome.deployment.ref} of CampaignEvent {ctx.name}: "
        ctx.warn_once(marker, str(reason), message + report.capacity.message)


def record_phase(ctx: EventContext, phase: Phase) -> None:
    if ctx.memory.last_phase != str(phase):
        if ctx.memory.last_phase is not None:
            ctx.runtime.telemetry.count_transition(ctx.namespace, ctx.name, str(phase))
            log.info("CampaignEvent %s/%s entered phase %s", ctx.namespace, ctx.name, phase)
        ctx.memory.last_phase = str(phase)
