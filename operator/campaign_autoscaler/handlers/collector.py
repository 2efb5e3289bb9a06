"""The orphan collector: a claim whose CampaignEvent is gone (or going) is released, and a placeholder pod of
node headroom whose CampaignEvent is gone (or going) is deleted.

Such a claim can be left by a crash between two writes, a race with a deletion, or an event deleted while
the operator was down and its finalizer removed by hand. The collector is a pass like any other: it looks
at the claims the watches show, asks the API server (not a cache) about each event it does not know alive,
and releases the claims of events that do not exist, are being deleted, or are another event of the same
name (another uid). Each release is made only if the claim still reads as judged. Placeholders are judged
the same way, by the event and uid they record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaign_autoscaler.adapters.kube import ClaimOutcome, deployment_object_ref
from campaign_autoscaler.adapters.placeholders import PlaceholderView
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.views import DeploymentView
from campaign_autoscaler.planning import split_key
from campaign_autoscaler.planning.instants import parse_kube_time

from .context import log
from .runtime import PASS_ERRORS, Runtime, event_poster

# The key of a suspect that is no claim: campaign annotations on a Deployment that no claim holds any more.
LEFTOVER = ""
# An event the API server confirmed alive is not asked about again for this many rounds.
REMEMBER_ROUNDS = 20


class EventDirectory:
    """The CampaignEvents known alive, by claim key: seen by this operator's watch (uid, and whether deletion
    began), or confirmed by the API server a short while ago.

    Only a hint for the collector (which events need no question to the API server); never a verdict. The
    confirmations spare the API server the same questions round after round where the watch says nothing:
    right after start-up, and in a standby replica, whose watches Kopf pauses.
    """

    def __init__(self) -> None:
        self._events: dict[str, tuple[str, bool]] = {}
        self._confirmed: dict[str, tuple[str, datetime]] = {}  # key: (uid, until)

    def seen(self, key: str, uid: str, deleting: bool) -> None:
        self._events[key] = (uid, deleting)

    def gone(self, key: str, uid: str) -> None:
        if self._events.get(key, ("", False))[0] == uid:
            del self._events[key]
        self._confirmed.pop(key, None)

    def confirm(self, key: str, uid: str, until: datetime) -> None:
        self._confirmed[key] = (uid, until)

    def alive(self, key: str, uid: str | None, now: datetime) -> bool:
        known = self._events.get(key)
        if known is not None:
            return not known[1] and (uid is None or known[0] == uid)
        confirmed = self._confirmed.get(key)
        if confirmed is None or confirmed[1] <= now:
            self._confirmed.pop(key, None)
            return False
        return uid is None or confirmed[0] == uid


@dataclass(frozen=True)
class Suspect:
    deployment: str  # the workload's key (planning.workload_key): its name for a Deployment
    key: str  # the claim's event, "<namespace>/<name>"
    owner: str | None  # the uid the claim records; None for a claim written before uids were recorded


def suspects(snapshot: NamespaceSnapshot, directory: EventDirectory, now: datetime) -> list[Suspect]:
    """Claims whose event the directory does not know alive under the uid they record, and Deployments that
    carry campaign annotations without any claim (key LEFTOVER: a release cut short)."""
    found = []
    for view in snapshot.deployments.values():
        if not view.claims and (view.baseline is not None or view.owners):
            found.append(Suspect(view.key, LEFTOVER, None))
        for key in view.claims:
            owner = view.owners.get(key)
            if not directory.alive(key, owner, now):
                found.append(Suspect(view.key, key, owner))
    return sorted(found, key=lambda s: (s.deployment, s.key))


def placeholder_suspects(
    snapshot: NamespaceSnapshot, directory: EventDirectory, now: datetime
) -> list[PlaceholderView]:
    """Placeholder pods whose event the directory does not know alive under the uid they record (pods that
    do not say whose they are are none of ours, and left alone)."""
    return sorted(
        (
            pod
            for pod in snapshot.placeholders
            if pod.event_key and pod.event_uid and not pod.terminating
            if not directory.alive(pod.event_key, pod.event_uid, now)
        ),
        key=lambda pod: pod.name,
    )


def orphaned(event: Mapping[str, Any] | None, owner: str | None) -> str | None:
    """Why a claim recording `owner` is an orphan, given its event as the API server has it (None: not)."""
    if event is None:
        return "it no longer exists"
    meta = event.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "it is being deleted"
    if owner is not None and meta.get("uid") != owner:
        return f"it was re-created (uid {meta.get('uid')}, the claim was made by {owner})"
    return None


def finalizers_turn(
    event: Mapping[str, Any] | None, owner: str | None, now: datetime, grace: timedelta
) -> bool:
    """Whether a claim recording `owner` is its event's own and the event began its deletion less than `grace`
    ago: the finalizer releases such claims (and says so in a Normal Event), the collector only what the
    finalizer could not."""
    meta = (event or {}).get("metadata") or {}
    began = meta.get("deletionTimestamp")
    if not began or (owner is not None and meta.get("uid") != owner):
        return False
    try:
        return now - parse_kube_time(str(began)) < grace
    except (TypeError, ValueError):  # not a timestamp: the API server never sends one, so nothing to wait for
        return False


def collect(
    runtime: Runtime, directory: EventDirectory, snapshot: NamespaceSnapshot, remember: timedelta
) -> list[ClaimOutcome]:
    """Release every orphan claim on the namespace's workloads (of every kind watched) and delete every
    orphan placeholder pod; the releases made. An event the API server shows alive is remembered so for
    `remember` (one question per event, however many claims). A deletion younger than half a resync is left
    to the event's finalizer."""
    with runtime.gate.writing() as admitted:
        if not admitted:
            return []  # the operator is stopping
        return _collect(runtime, directory, snapshot, remember)


def _collect(
    runtime: Runtime, directory: EventDirectory, snapshot: NamespaceSnapshot, remember: timedelta
) -> list[ClaimOutcome]:
    grace = timedelta(seconds=runtime.config.resync_interval / 2)
    released = []
    events: dict[str, Mapping[str, Any] | None] = {}

    def event_of(key: str) -> Mapping[str, Any] | None:
        """The event as the API server has it, asked once per round."""
        if key not in events:
            namespace, _, name = key.partition("/")
            events[key] = event = runtime.kube.get_event(namespace, name)
            if orphaned(event, None) is None and event is not None:
                uid = str((event.get("metadata") or {}).get("uid", ""))
                directory.confirm(key, uid, runtime.clock() + remember)
        return events[key]

    def why_orphaned(key: str, owner: str | None) -> str | None:
        event = event_of(key)
        why = orphaned(event, owner)
        return None if why is None or finalizers_turn(event, owner, runtime.clock(), grace) else why

    for suspect in suspects(snapshot, directory, runtime.clock()):
        if suspect.key == LEFTOVER:
            released += _finish(runtime, snapshot, suspect, "no claim holds it any more")
            continue
        why = why_orphaned(suspect.key, suspect.owner)
        if why is not None:
            released += _finish(runtime, snapshot, suspect, why)
    if runtime.headroom is not None:
        for pod in placeholder_suspects(snapshot, directory, runtime.clock()):
            why = why_orphaned(pod.event_key, pod.event_uid)
            if why is not None:
                _delete_placeholder(runtime, pod, why)
    return released


def _delete_placeholder(runtime: Runtime, pod: PlaceholderView, why: str) -> None:
    if runtime.config.dry_run:
        log.info("Would delete the orphan placeholder pod %s/%s (%s; dry run)", pod.namespace, pod.name, why)
        return
    assert runtime.headroom is not None
    runtime.headroom.delete(pod.namespace, pod.name)
    log.warning(
        "Deleted the orphan placeholder pod %s/%s of CampaignEvent %s (%s)",
        pod.namespace,
        pod.name,
        pod.event_key,
        why,
    )


def _finish(runtime: Runtime, snapshot: NamespaceSnapshot, suspect: Suspect, why: str) -> list[ClaimOutcome]:
    """Release the suspect's claim (a LEFTOVER: restore the baseline), if it still reads as judged."""
    what = "campaign annotations" if suspect.key == LEFTOVER else f"claim of CampaignEvent {suspect.key}"
    kind, _, name = split_key(suspect.deployment)
    where = f"{kind} {snapshot.namespace}/{name}"
    if runtime.config.dry_run:  # the operator's --dry-run patches nothing
        log.info("Would release the orphan %s on %s (%s; dry run)", what, where, why)
        return []
    outcome = runtime.kube.set_claim(
        snapshot, suspect.deployment, suspect.key, None, fresh=True, only_if=_still(suspect)
    )
    if outcome is None or not outcome.written:
        return []
    change = f"{outcome.replicas_before} -> {outcome.replicas_after}"
    if outcome.hpa is not None:  # the minimum of the HPA or ScaledObject it is scaled through
        change = f"{outcome.via} {change}"
    message = f"Released the orphan {what} on {where} ({why}): {change}"
    log.warning(message)
    event_poster(runtime).post_event(
        namespace=snapshot.namespace,
        involved=deployment_object_ref(outcome.deployment),
        event_type="Warning",
        reason="OrphanClaimReleased",
        message=message,
        now=runtime.clock(),
    )
    return [outcome]


def _still(suspect: Suspect) -> Callable[[DeploymentView], bool]:
    def judged_so(view: DeploymentView) -> bool:
        if suspect.key == LEFTOVER:
            return not view.claims
        return suspect.key in view.claims and view.owners.get(suspect.key) == suspect.owner

    return judged_so


async def run_collector(
    runtime: Runtime,
    directory: EventDirectory,
    snapshots: Callable[[], Iterable[NamespaceSnapshot]],
    interval: float,
) -> None:
    """Collect every `interval` seconds, for ever, the first time one interval after start-up (the watch of
    the events has filled the directory by then); a failed round is logged and the next one comes."""
    remember = timedelta(seconds=interval * REMEMBER_ROUNDS)
    while True:
        await asyncio.sleep(interval)
        for snapshot in snapshots():
            if not snapshot.placeholders and not any(view.claims for view in snapshot.deployments.values()):
                continue
            try:
                await asyncio.to_thread(collect, runtime, directory, snapshot, remember)
            except PASS_ERRORS as err:
                log.warning("Failed to collect orphan claims in namespace %s: %s", snapshot.namespace, err)
            except Exception:
                # A bug must not end the collector: the next round may well succeed.
                log.exception("Failed to collect orphan claims in namespace %s", snapshot.namespace)
