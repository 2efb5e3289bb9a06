"""Node headroom in a pass: the placeholder pods the decision wants, created and deleted; and their release.

The pass reads the placeholders from the watch (never a LIST), asks `planning.headroom` which pods to create
and delete, and makes those writes; each is one short request. A placeholder the namespace's ResourceQuota
(or admission: a missing PriorityClass) refuses is a Warning, not a failed pass: the placeholders count
against the namespace's quota like any pod.
"""

from __future__ import annotations

from collections.abc import Sequence

from campaign_autoscaler.adapters.placeholders import (
    PlaceholderRefusedError,
    PodTemplateFacts,
    QuotaExceededError,
)
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.planning import CampaignSpec, Window
from campaign_autoscaler.planning.headroom import (
    HeadroomPlan,
    HeadroomTarget,
    PlaceholderChanges,
    placeholder_changes,
    plan_headroom,
)

from .context import EventContext, TargetReport, log


def headroom_targets(reports: Sequence[TargetReport]) -> list[HeadroomTarget]:
    """Each target with its floor, the replicas this pass left it asking for, and its pods' requests."""
    return [
        HeadroomTarget(
            deployment=report.outcome.deployment.name,
            floor=report.decision.floor.replicas,
            replicas=max(report.outcome.deployment.replicas, report.outcome.replicas_after),
            ready_replicas=report.outcome.deployment.ready_replicas,
            requests=report.outcome.deployment.template.requests,
        )
        for report in reports
    ]


def keep_headroom(
    ctx: EventContext,
    spec: CampaignSpec,
    window: Window,
    reports: Sequence[TargetReport],
    snapshot: NamespaceSnapshot,
    dry_run: bool,
) -> HeadroomPlan | None:
    """Bring the event's placeholders to what the plan wants now; the plan (None: headroom is off)."""
    api = ctx.runtime.headroom
    if api is None:
        return None
    plan = plan_headroom(spec, window, ctx.now, headroom_targets(reports))
    for deployment in plan.without_requests:
        ctx.warn_once(
            ("headroom-without-requests", deployment),
            "HeadroomWithoutRequests",
            f"Deployment {ctx.namespace}/{deployment} requests no resources in its pod template: "
            f"CampaignEvent {ctx.name} keeps no node headroom for it",
        )
    existing = [pod.existing() for pod in snapshot.placeholders_of(ctx.uid)]
    changes = placeholder_changes(ctx.name, ctx.uid, plan, existing)
    if changes.empty or dry_run:
        return plan
    templates = {report.outcome.deployment.name: report.outcome.deployment.template for report in reports}
    _carry_out(ctx, changes, templates)
    return plan


def _carry_out(
    ctx: EventContext, changes: PlaceholderChanges, templates: dict[str, PodTemplateFacts]
) -> None:
    api = ctx.runtime.headroom
    assert api is not None
    for pod in changes.delete:
        api.delete(ctx.namespace, pod.name)
    created: dict[str, int] = {}
    for placeholder in changes.create:
        template = templates.get(placeholder.deployment, PodTemplateFacts())
        try:
            if api.create(ctx.namespace, ctx.name, ctx.uid, placeholder, template):
                created[placeholder.deployment] = created.get(placeholder.deployment, 0) + 1
        except PlaceholderRefusedError as err:
            reason = "HeadroomQuotaExceeded" if isinstance(err, QuotaExceededError) else "HeadroomRefused"
            by = (
                f"the ResourceQuota of namespace {ctx.namespace}"
                if reason == "HeadroomQuotaExceeded"
                else "admission"
            )
            ctx.warn_once(
                (reason, placeholder.deployment),
                reason,
                f"A placeholder pod for Deployment {ctx.namespace}/{placeholder.deployment} of CampaignEvent "
                f"{ctx.name} was refused by {by}: {err}",
            )
            break  # the next ones would be refused as well; the next pass tries again
    removed: dict[str, int] = {}
    for pod in changes.delete:
        removed[pod.deployment] = removed.get(pod.deployment, 0) + 1
    for deployment, count in sorted(created.items()):
        _announce(ctx, f"Created {count} placeholder pod(s) for Deployment {ctx.namespace}/{deployment}")
    for deployment, count in sorted(removed.items()):
        _announce(ctx, f"Deleted {count} placeholder pod(s) of Deployment {ctx.namespace}/{deployment}")


def _announce(ctx: EventContext, what: str) -> None:
    message = f"{what} (node headroom of CampaignEvent {ctx.name})"
    log.info(message)
    ctx.post(ctx.ref, "Normal", "NodeHeadroom", message)


def release_headroom(ctx: EventContext) -> int:
    """Delete every placeholder of the event, read afresh (a create the watch does not show yet included);
    how many were deleted."""
    api = ctx.runtime.headroom
    if api is None:
        return 0
    pods = api.list_of_event(ctx.namespace, ctx.uid)
    for pod in pods:
        api.delete(ctx.namespace, pod.name)
    if pods:
        log.info(
            "Deleted %d placeholder pod(s) of CampaignEvent %s/%s on its release",
            len(pods),
            ctx.namespace,
            ctx.name,
        )
    return len(pods)
