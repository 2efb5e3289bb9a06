"""Each CampaignEvent's timing: a Kopf daemon that sleeps until its next pass is due, a watch handler that
wakes it, and the finalizer that releases the event.

The daemon is the only writer of the event's status. Its passes run in worker threads; the finalizer waits
for the one in flight (the event's fence) before it releases, so that nothing is written after the release.
"""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler.adapters.informer import DriftAlarms, WorkloadCache
from campaign_autoscaler.adapters.podcache import PodCache
from campaign_autoscaler.adapters.sampler import MetricSampler
from campaign_autoscaler.planning import claim_key

from .collector import EventDirectory
from .context import log
from .kinds import find_kinds, named_kinds, watch_kinds
from .namespaces import in_selected_namespace
from .passes import EventWorld, PassResult, release_event, release_gone_event, run_pass, wanted_probes
from .runtime import PASS_ERRORS, TRANSITION_GRACE_SECONDS, EventMemory, OperatorStoppingError, Runtime

# What a write to an event answers when the event is gone: 404, or 422 when the uid test of a JSON Patch
# fails (another event of the same name).
GONE_STATUSES = (404, 422)


def event_memory(memo: kopf.Memo) -> EventMemory:
    """The event's own memory (Kopf gives every object a memo of its own)."""
    if "event" not in memo:
        memo["event"] = EventMemory()
    return memo["event"]


def _world(
    memo: kopf.Memo,
    *,
    name: str,
    namespace: str,
    uid: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
) -> EventWorld:
    # The workload cache is read here, in the event loop that keeps it current, before a pass moves to a
    # worker thread.
    workloads: WorkloadCache = memo["workloads"]
    pods: PodCache | None = memo.get("pods")
    return EventWorld(
        name=name,
        namespace=namespace,
        uid=uid,
        generation=int(meta.get("generation") or 0),
        raw_spec=dict(spec),
        old_status=dict(status),
        snapshot=workloads.snapshot(namespace),
        deleting=bool(meta.get("deletionTimestamp")),
        pods=pods.pods(namespace) if pods is not None else None,
    )


async def _with_kinds(memo: kopf.Memo, runtime: Runtime, world: EventWorld) -> EventWorld:
    """The world with its targets' kinds found, each kind that can be scaled watched (and listed)."""
    kinds = await find_kinds(runtime.kube.kinds, named_kinds(world.raw_spec), runtime.clock())
    workloads: WorkloadCache = memo["workloads"]
    if await watch_kinds(workloads, kinds):
        return dataclasses.replace(world, kinds=kinds, snapshot=workloads.snapshot(world.namespace))
    return dataclasses.replace(world, kinds=kinds)


def _sampled(memo: kopf.Memo, runtime: Runtime, memory: EventMemory, world: EventWorld) -> EventWorld:
    """Tell the samplers what the event needs now, and hand the pass what they hold of it."""
    sampler: MetricSampler = memo["sampler"]
    probes = wanted_probes(runtime, memory, world)
    sampler.want(world.uid, probes, memory.wake)
    return dataclasses.replace(world, samples=sampler.samples(probes))


def sleep_seconds(runtime: Runtime, result: PassResult, world: EventWorld) -> float:
    """Until the next transition, the moment a metric's last value goes stale, or the resync. A new sample, a
    change of a target's Ready replicas and a target pushed below its floor wake the event by themselves."""
    now = runtime.clock()
    delays = [runtime.config.resync_interval]
    if result.next_at is not None:
        delays.append(max(0.0, (result.next_at - now).total_seconds()) + TRANSITION_GRACE_SECONDS)
    for probe, sample in world.samples.items():
        if probe.once or (sample.latest is not None and sample.latest.failed):
            continue
        answered_at = sample.latest.at if sample.latest is not None else sample.since
        stale_in = runtime.config.metrics_max_age - (now - answered_at).total_seconds()
        if stale_in >= 0:
            delays.append(stale_in + TRANSITION_GRACE_SECONDS)
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
    """The event's own loop: a pass on every transition when it is due, and every resync."""
    runtime: Runtime = memo["runtime"]
    memory = event_memory(memo)
    alarms: DriftAlarms = memo["drift_alarms"]
    alarms.register(claim_key(namespace, name), memory.wake)
    try:
        await _passes(memo, runtime, memory, stopped, meta=meta, spec=spec, status=status)
    finally:
        alarms.unregister(claim_key(namespace, name), memory.wake)
        memo["sampler"].forget(uid)


async def _passes(
    memo: kopf.Memo,
    runtime: Runtime,
    memory: EventMemory,
    stopped: kopf.DaemonStopped,
    *,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
) -> None:
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    due: datetime | None = None
    written: StatusWrite | None = None
    while not stopped and not meta.get("deletionTimestamp"):
        if not in_selected_namespace(namespace, memo):
            # The namespace lost the label: its workloads are no longer watched. Idle, asking Prometheus
            # nothing, until Kopf stops the daemon (its filter no longer matches) or the label returns.
            memo["sampler"].forget(uid)
            await _nap(memory, stopped, runtime.config.resync_interval)
            continue
        world = _world(memo, name=name, namespace=namespace, uid=uid, meta=meta, spec=spec, status=status)
        world = _sampled(memo, runtime, memory, world)
        try:
            failed = written.failure() if written is not None else None
            if failed is not None:
                written = None
                if await gone_after(runtime, failed, namespace, name, uid):
                    await let_go(runtime, memory, world, "it no longer exists")
                    return
                _log_failed_status(runtime, namespace, name, failed)  # this pass writes it again
            world = await _with_kinds(memo, runtime, world)
            urgent = memory.take_urgency(runtime.clock())
            result = await runtime.in_lane(urgent, run_pass, runtime, memory, world)
            if result is None:
                return  # the release has begun
            if needs_status_write(result.status, world.old_status, written):
                written = await write_status(runtime, memory, world, result.status)
            runtime.telemetry.count_pass(namespace, name)
        except PASS_ERRORS as err:
            if await gone_after(runtime, err, namespace, name, uid):
                await let_go(runtime, memory, world, "it no longer exists")
                return
            # Nothing is half-applied: every write tests what it was decided on and is decided again, from
            # fresh data, on the next attempt.
            detail = _counted_failure(runtime, err)
            delay = memory.retry_delay(runtime.clock(), runtime.config.resync_interval)
            log.warning(
                "Failed to reconcile CampaignEvent %s/%s: %s; retrying in %.1fs",
                namespace,
                name,
                detail,
                delay,
            )
            await _nap(memory, stopped, delay)
            continue
        memory.failures = 0
        memory.next_at = result.next_at
        if due is not None and due <= runtime.clock():
            runtime.telemetry.transition_lag.observe(max(0.0, (runtime.clock() - due).total_seconds()))
        due = result.next_at
        world = _sampled(memo, runtime, memory, world)  # what the pass learnt may change what is wanted
        await _nap(memory, stopped, sleep_seconds(runtime, result, world))


@dataclass(frozen=True)
class StatusWrite:
    """A status handed to the status lane, and what the watch showed of the status when it was."""

    status: dict[str, Any]
    seen_before: dict[str, Any]
    done: Future[None]

    def failure(self) -> Exception | None:
        """The error the write failed with, once it has; None while it waits or when it landed."""
        if not self.done.done():
            return None
        error = self.done.exception()
        return error if isinstance(error, Exception) else None


def needs_status_write(status: dict[str, Any], seen: dict[str, Any], written: StatusWrite | None) -> bool:
    """Whether a pass's status must be written: not when the watch shows it already, nor when it was handed
    over already and the watch has shown nothing new since (waiting, or landed and not yet seen)."""
    if status == seen:
        return False
    return not (
        written is not None
        and written.status == status
        and written.seen_before == seen
        and written.failure() is None
    )


async def write_status(
    runtime: Runtime, memory: EventMemory, world: EventWorld, status: dict[str, Any]
) -> StatusWrite:
    """Hand the status to the status lane (no pass waits for it); without a lane, write it here. A write
    the event turned out to be gone for wakes the daemon, which lets the event go."""
    lane = runtime.statuses
    if lane is not None:
        done = lane.submit(world.namespace, world.name, world.uid, status)
    else:
        done = Future()
        try:
            await asyncio.to_thread(
                runtime.kube.replace_event_status, world.namespace, world.name, world.uid, status
            )
        except PASS_ERRORS as err:
            done.set_exception(err)
        else:
            done.set_result(None)
    loop = asyncio.get_running_loop()

    def judged(finished: Future[None]) -> None:
        error = None if finished.cancelled() else finished.exception()
        if isinstance(error, ApiException) and error.status in GONE_STATUSES:
            loop.call_soon_threadsafe(memory.wake, True)

    done.add_done_callback(judged)
    return StatusWrite(dict(status), dict(world.old_status), done)


def _counted_failure(runtime: Runtime, err: Exception) -> str:
    """What a failed write says in a log line; an API error is counted in the operator's metrics."""
    if isinstance(err, ApiException):
        runtime.telemetry.api_errors.labels(status=str(err.status)).inc()
        return f"API error {err.status} {err.reason}"
    return str(err) or type(err).__name__


def _log_failed_status(runtime: Runtime, namespace: str, name: str, err: Exception) -> None:
    detail = _counted_failure(runtime, err)
    log.warning(
        "Failed to write the status of CampaignEvent %s/%s: %s; writing it again", namespace, name, detail
    )


async def on_event_seen(
    type: str | None,
    name: str,
    namespace: str,
    uid: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Every watch event of a CampaignEvent: keep the directory of live events, and wake the event's daemon
    at once when its spec changed or it is being deleted."""
    directory: EventDirectory = memo["directory"]
    key = claim_key(namespace, name)
    if type == "DELETED":
        directory.gone(key, uid)
        memory = event_memory(memo)
        if not memory.fence.released:  # else the finalizer released it
            # Gone without its finalizer: deleted before Kopf's finalizer landed (Kopf starts the daemon in
            # the same cycle as it adds the finalizer), or the finalizer removed by hand. Kopf never stops
            # such an event's daemon, so the release fences it off here.
            world = _world(memo, name=name, namespace=namespace, uid=uid, meta=meta, spec=spec, status=status)
            await let_go(memo["runtime"], memory, world, "it was deleted without its finalizer")
        return
    deleting = bool(meta.get("deletionTimestamp"))
    directory.seen(key, uid, deleting)
    memory = event_memory(memo)
    if deleting or memory.reconciled_generation != meta.get("generation"):
        memory.wake(urgent=True)


async def gone_after(runtime: Runtime, err: Exception, namespace: str, name: str, uid: str) -> bool:
    """Whether a pass's failure `err` says the event of that uid no longer exists (none of that name, or
    another one re-created), as the API server confirms; False when it cannot say."""
    if not isinstance(err, ApiException) or err.status not in GONE_STATUSES:
        return False
    try:
        event = await asyncio.to_thread(runtime.kube.get_event, namespace, name)
    except PASS_ERRORS:
        return False
    return event is None or (event.get("metadata") or {}).get("uid") != uid


async def let_go(runtime: Runtime, memory: EventMemory, world: EventWorld, why: str) -> None:
    """Release an event that is gone without its finalizer, and fence its daemon off for good. A failed
    release, or one refused because the operator is stopping, is left to the orphan collector (of this
    replica or of the one that takes over)."""
    memory.wake(urgent=True)
    try:
        outcomes = await asyncio.to_thread(release_gone_event, runtime, memory, world)
    except (*PASS_ERRORS, OperatorStoppingError) as err:
        log.warning("Failed to release CampaignEvent %s/%s (%s): %s", world.namespace, world.name, why, err)
        return
    if outcomes is None:  # another report of the same deletion released it first
        return
    log.info(
        "Released CampaignEvent %s/%s from %d target(s): %s", world.namespace, world.name, len(outcomes), why
    )


async def on_event_deleted(
    name: str,
    namespace: str,
    uid: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Finalizer: release every claim of the event at once, after the pass in flight, before any other."""
    runtime: Runtime = memo["runtime"]
    memory = event_memory(memo)
    memory.wake(urgent=True)
    memo["sampler"].forget(uid)
    world = _world(memo, name=name, namespace=namespace, uid=uid, meta=meta, spec=spec, status=status)
    outcomes = await asyncio.to_thread(release_event, runtime, memory, world)
    log.info("Released CampaignEvent %s/%s from %d target(s)", namespace, name, len(outcomes))
