"""One pass of one event: read the world, decide every target with `decide_target`, write, report.

A pass is level-triggered: it computes from the event (spec, uid, deletion), its targets as the watches see
them and every claim of the event in its namespace, whatever changed since the last one. Claims on
Deployments it no longer targets are released in the same pass. Prometheus is never asked by a pass: the
samplers ask it beside the passes (`wanted_probes` says what an event needs) and a pass reads the latest
sample and its age from its world, so a slow or silent Prometheus holds up no transition and no release.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from campaign_autoscaler.adapters.kube import ClaimOutcome
from campaign_autoscaler.adapters.sampler import NO_DATA, Probe
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.workloads import WorkloadKind
from campaign_autoscaler.planning import (
    CampaignSpec,
    SpecError,
    TargetSpec,
    Window,
    api_group,
    check_target_kinds,
    claim_fraction,
    forecast_replicas,
    lifecycle_end,
    lifecycle_start,
    phase_at,
    resolve_targets,
    resolve_window,
)
from campaign_autoscaler.planning.capacity import PodState, judge_capacity
from campaign_autoscaler.planning.curve import curve_range, history_from_points
from campaign_autoscaler.planning.decision import (
    MetricMemory,
    MetricReading,
    MetricSample,
    TargetInputs,
    current_reading,
    decide_target,
    next_planned_change,
)
from campaign_autoscaler.planning.headroom import next_change

from .context import EventContext, TargetReport, iso, log
from .events import (
    announce_changes,
    announce_metrics,
    record_phase,
    warn_about_capacity,
    warn_about_paused,
    warn_about_unready,
)
from .headroom import keep_headroom, release_headroom
from .kinds import kind_problem_in
from .runtime import CurveResult, EventMemory, ForecastResult, OperatorStoppingError, Runtime
from .status import invalid_status, previous_entry, valid_status
from .summary import record_window

# A last campaign's curve is read this long before the lead time, so that the first step already follows it.
CURVE_PREFETCH = timedelta(minutes=1)
# Failures that say "Prometheus could not be asked", not "the query is wrong": validation waits for a verdict.
UNREACHABLE = ("ConnectionFailed", "Timeout", "HTTPError", "NoPrometheus")


@dataclass(frozen=True)
class EventWorld:
    """The event and its namespace as a pass reads them."""

    name: str
    namespace: str
    uid: str
    generation: int
    raw_spec: Mapping[str, Any]
    old_status: Mapping[str, Any]
    snapshot: NamespaceSnapshot  # the namespace's Deployments and HPAs as the watches last saw them
    deleting: bool = False
    samples: Mapping[Probe, MetricSample] = field(default_factory=dict)  # what the samplers hold
    # Each target's (apiVersion, kind) as API discovery found it (None: not served); see handlers.kinds.
    kinds: Mapping[tuple[str, str], WorkloadKind | None] = field(default_factory=dict)
    # The not-Ready Pods of each Deployment as the Pod watch last saw them (None: not watched or not listed).
    pods: Mapping[str, tuple[PodState, ...]] | None = None


@dataclass(frozen=True)
class PassResult:
    status: dict[str, Any]
    next_at: datetime | None  # the next transition


def _context(runtime: Runtime, memory: EventMemory, world: EventWorld) -> EventContext:
    return EventContext(
        runtime, memory, world.name, world.namespace, world.uid, world.generation, runtime.clock()
    )


def _spec(runtime: Runtime, memory: EventMemory, world: EventWorld) -> CampaignSpec:
    """The event's spec, its queries held to its namespace (`--metrics-namespace-label`)."""
    return memory.spec(world.generation, world.raw_spec, runtime.config.metrics_scope(world.namespace))


# --- what Prometheus is asked, beside the pass --------------------------------------------------------------
def wanted_probes(runtime: Runtime, memory: EventMemory, world: EventWorld) -> set[Probe]:
    """What the event needs sampled now: its new queries until Prometheus gave its verdict on them, and from
    the lead time to the end of the ramp-down each metric query (once, however many Deployments it serves)
    and the forecast of the window until it is found; a curve from CURVE_PREFETCH before the lead time, so
    that the first step follows it. Reads only what the pass left in `memory`."""
    if world.deleting or memory.fence.released:
        return set()
    try:
        spec = _spec(runtime, memory, world)
    except SpecError:
        return set()
    probes: set[Probe] = set()
    if runtime.metrics is not None and memory.validated_generation != world.generation:
        probes |= {Probe(target.metric.query) for target in spec.targets if target.metric is not None}
    now = runtime.clock()
    window = resolve_window(spec, now)
    claiming = claim_fraction(spec, window, now) is not None
    if not claiming and not _prefetching(spec, window, now):
        return probes
    window_key = iso(window.start) or ""
    forecasts = memory.window.forecasts if memory.window.key == window_key else {}
    curves = memory.window.curves if memory.window.key == window_key else {}
    for target, deployment_name in targets_in(world.snapshot, spec):
        if target.metric is None:
            continue
        if target.metric.forecast is not None and target.metric.forecast.follows_curve:
            curve = curves.get(target.metric)
            if curve is None or not curve.settled:
                probes.add(curve_probe(spec, target, window, runtime.config.curve_step))
        if not claiming:
            continue
        probes.add(Probe(target.metric.query))
        if target.metric.forecast is not None and not target.metric.forecast.follows_curve:
            known = forecasts.get(target.metric) or _forecast_from_status(
                world.old_status, window_key, deployment_name
            )
            if known is None or not known.settled:
                probes.add(_peak_probe(target, window))
    return probes


def _prefetching(spec: CampaignSpec, window: Window, now: datetime) -> bool:
    """Shortly before the lead time: the curves are read, nothing else is."""
    begin = lifecycle_start(spec, window)
    return begin - CURVE_PREFETCH <= now < begin


def _peak_probe(target: TargetSpec, window: Window) -> Probe:
    """The previous campaign's window, `offset` ago."""
    assert target.metric is not None and target.metric.forecast is not None
    offset = target.metric.forecast.offset
    return Probe(target.metric.query, window.start - offset, window.end - offset)


def curve_probe(spec: CampaignSpec, target: TargetSpec, window: Window, step: float) -> Probe:
    """The previous campaign's curve, one point every `step` seconds (see planning.curve.curve_range)."""
    assert target.metric is not None and target.metric.forecast is not None
    start, end = curve_range(spec, window, target.metric.forecast)
    return Probe(target.metric.query, start, end, step)


def _curve_from_sample(
    spec: CampaignSpec, window: Window, target: TargetSpec, answer: MetricReading, step: timedelta
) -> CurveResult:
    """The curve a range query's answer gives, moved into this window's time; or why there is none."""
    assert target.metric is not None and target.metric.forecast is not None
    if answer.value is None:
        return CurveResult(None, answer.failure_reason or NO_DATA, answer.failure_detail)
    history = history_from_points(
        answer.points,
        lifecycle_start(spec, window),
        lifecycle_end(spec, window),
        target.metric.forecast.offset,
        step,
    )
    return CurveResult(history)


def _absorb_curve(
    ctx: EventContext,
    spec: CampaignSpec,
    window: Window,
    target: TargetSpec,
    samples: Mapping[Probe, MetricSample],
) -> None:
    """Keep the curve the sampler read for this window, until it is settled."""
    assert target.metric is not None
    curves = ctx.memory.window.curves
    curve = curves.get(target.metric)
    if curve is not None and curve.settled:
        return
    step = ctx.runtime.config.curve_step
    sample = samples.get(curve_probe(spec, target, window, step))
    if sample is not None and sample.latest is not None:
        curves[target.metric] = _curve_from_sample(
            spec, window, target, sample.latest, timedelta(seconds=step)
        )


def _absorb_samples(ctx: EventContext, world: EventWorld) -> None:
    """Take in what the samplers hold for this pass: the verdict on new queries, the forecast of the window,
    and each metric query's current reading (blind when its latest answer failed or is too old)."""
    memory = ctx.memory
    try:
        spec = _spec(ctx.runtime, memory, world)
        _validate_queries(ctx.runtime, memory, spec, world)
    except SpecError:
        return
    window = resolve_window(spec, ctx.now)
    claiming = claim_fraction(spec, window, ctx.now) is not None
    if not claiming:
        memory.readings.clear()  # a reading of one window is not a reading of the next
        if not _prefetching(spec, window, ctx.now):
            return
    targets = targets_in(world.snapshot, spec)
    window_memory = memory.window_memory(iso(window.start) or "")
    for target, _ in targets:
        if (
            target.metric is not None
            and target.metric.forecast is not None
            and target.metric.forecast.follows_curve
        ):
            _absorb_curve(ctx, spec, window, target, world.samples)
    if not claiming:
        return
    for target, deployment_name in targets:
        if target.metric is None or target.metric.forecast is None or target.metric.forecast.follows_curve:
            continue
        known = window_memory.forecasts.get(target.metric) or _forecast_from_status(
            world.old_status, window_memory.key, deployment_name
        )
        if known is None or not known.settled:
            sample = world.samples.get(_peak_probe(target, window))
            if sample is not None and sample.latest is not None:
                known = _forecast_from_sample(target, sample.latest)
        if known is not None:
            window_memory.forecasts[target.metric] = known
    max_age = timedelta(seconds=ctx.runtime.config.metrics_max_age)
    memory.readings = {}
    for query in {target.metric.query for target, _ in targets if target.metric is not None}:
        sample = world.samples.get(Probe(query))
        reading = current_reading(sample, ctx.now, max_age) if sample is not None else None
        if reading is not None:
            memory.readings[query] = reading


def _validate_queries(runtime: Runtime, memory: EventMemory, spec: CampaignSpec, world: EventWorld) -> None:
    """A query Prometheus rejects makes the event invalid, found before the window opens, not at the peak.

    Only a verdict counts: while Prometheus cannot be asked, the samplers keep asking.
    """
    if runtime.metrics is None or memory.validated_generation == world.generation:
        return
    for target in spec.targets:
        if target.metric is None:
            continue
        sample = world.samples.get(Probe(target.metric.query))
        latest = sample.latest if sample is not None else None
        if latest is None or latest.failure_reason in UNREACHABLE:
            return
        if latest.failure_reason == "BadQuery":
            detail = latest.failure_detail
            rejected = SpecError(target.field("metric.query"), f"rejected by Prometheus: {detail}")
            memory.parsed = (world.generation, rejected)
            memory.validated_generation = world.generation
            raise rejected
    memory.validated_generation = world.generation


def _forecast_from_sample(target: TargetSpec, answer: MetricReading) -> ForecastResult:
    """The forecast a peak's answer gives: replicas, no data, or why Prometheus could not say."""
    assert target.metric is not None and target.metric.forecast is not None
    if answer.value is None:
        return ForecastResult(None, None, answer.failure_reason or NO_DATA)
    growth = target.metric.forecast.growth
    replicas = forecast_replicas(answer.value, growth, target.metric.target_per_replica)
    return ForecastResult(replicas, answer.value, None)


def _forecast_from_status(
    old_status: Mapping[str, Any], window_key: str, deployment_name: str
) -> ForecastResult | None:
    """After a restart: the forecast this window already found, as the status kept it."""
    entry = previous_entry(old_status, window_key, deployment_name)
    if "forecastReplicas" not in entry:
        return None
    peak = entry.get("forecastPeak")
    return ForecastResult(int(entry["forecastReplicas"]), float(peak) if peak else None, None)


# --- the pass ----------------------------------------------------------------------------------------------
def targets_in(snapshot: NamespaceSnapshot, spec: CampaignSpec) -> list[tuple[TargetSpec, str]]:
    """The key of each workload of the namespace the event targets, once (see planning.resolve_targets)."""
    return resolve_targets(
        spec.targets,
        lambda target: [
            view.key
            for view in snapshot.matching(target.matches, (api_group(target.api_version), target.kind))
        ],
    )


def run_pass(runtime: Runtime, memory: EventMemory, world: EventWorld) -> PassResult | None:
    """Bring the event's targets to what the decision wants now; return the whole status to write.

    None when the event's release has begun (from then on no pass writes anything), or when the operator is
    stopping.
    """
    with memory.fence.lock, runtime.gate.writing() as admitted:
        if memory.fence.released or world.deleting or not admitted:
            return None
        ctx = _context(runtime, memory, world)
        _absorb_samples(ctx, world)
        previous = list(world.old_status.get("conditions") or [])
        try:
            spec = _spec(runtime, memory, world)
            check_target_kinds(
                spec.targets, lambda target: kind_problem_in(world.kinds, world.snapshot, target)
            )
        except SpecError as err:
            return _invalid(ctx, err, previous)
        return _valid_pass(ctx, spec, world)


def _invalid(ctx: EventContext, err: SpecError, previous: list[Mapping[str, Any]]) -> PassResult:
    """An invalid spec touches nothing: claims made under an earlier valid spec are held, not guessed at."""
    memory = ctx.memory
    if memory.announced_invalid != ctx.generation:
        memory.announced_invalid = ctx.generation
        log.warning("Rejected CampaignEvent %s/%s: %s", ctx.namespace, ctx.name, err)
        ctx.post(ctx.ref, "Warning", "InvalidSpec", f"Rejected CampaignEvent {ctx.name}: {err}")
    memory.reconciled_generation = ctx.generation
    memory.last_phase = None
    ctx.runtime.telemetry.observe_event(ctx.namespace, ctx.name, "Invalid", [])
    return PassResult(invalid_status(ctx, err, previous), None)


def _valid_pass(ctx: EventContext, spec: CampaignSpec, world: EventWorld) -> PassResult:
    runtime, memory, snapshot = ctx.runtime, ctx.memory, world.snapshot
    window = resolve_window(spec, ctx.now)
    memory.window_memory(iso(window.start) or "")
    phase = phase_at(spec, window, ctx.now)
    dry_run = runtime.config.dry_run or spec.dry_run
    targets = targets_in(snapshot, spec)
    released = _release_dropped(ctx, snapshot, {name for _, name in targets}, dry_run)
    reports = [
        report
        for target, name in targets
        if (report := _decide_and_write(ctx, spec, window, target, name, world, dry_run)) is not None
    ]
    memory.metrics = {r.outcome.deployment.key: r.metric for r in reports if r.metric is not None}
    # Every target is scaled before any Event is posted: Events must not delay the next target's write.
    announce_changes(ctx, [*released, *(report.outcome for report in reports)], dry_run)
    announce_metrics(ctx, reports)
    warn_about_paused(ctx, reports)
    keep_headroom(ctx, spec, window, reports, snapshot, dry_run)
    upcoming = _earliest(
        next_change(spec, window, ctx.now), *(r.next_change[0] for r in reports if r.next_change)
    )
    status = valid_status(ctx, spec, window, phase, upcoming, reports, world.old_status)
    record_window(ctx, spec, window, phase, reports, status, world.old_status)
    warn_about_capacity(ctx, spec, phase, reports, status["targets"])
    warn_about_unready(ctx, reports, world.old_status)
    record_phase(ctx, phase)
    memory.reconciled_generation = ctx.generation
    runtime.telemetry.observe_event(
        ctx.namespace, ctx.name, str(phase), status["targets"], spec.lead_time.total_seconds()
    )
    runtime.telemetry.observe_unready(
        ctx.namespace, ctx.name, {r.outcome.deployment.name: r.capacity.unready for r in reports}
    )
    return PassResult(status, upcoming)


def _earliest(*instants: datetime | None) -> datetime | None:
    """The first of the instants given; None when none is."""
    return min((at for at in instants if at is not None), default=None)


def _decide_and_write(
    ctx: EventContext,
    spec: CampaignSpec,
    window: Window,
    target: TargetSpec,
    deployment_name: str,
    world: EventWorld,
    dry_run: bool,
) -> TargetReport | None:
    snapshot = world.snapshot
    view = snapshot.deployment(deployment_name)
    if view is None:
        return None
    forecast = curve = None
    if target.metric is not None and target.metric.forecast is not None:
        if target.metric.forecast.follows_curve:
            curve = ctx.memory.window.curves.get(target.metric, CurveResult(None, "AwaitingHistory"))
        else:
            forecast = ctx.memory.window.forecasts.get(target.metric)
    metric_before = None
    if target.metric is not None:
        metric_before = ctx.memory.metrics.get(deployment_name, MetricMemory())
    inputs = TargetInputs(
        spec=spec,
        target=target,
        window=window,
        now=ctx.now,
        baseline=view.baseline_replicas,
        max_scale_factor=ctx.runtime.config.max_scale_factor,
        stabilization=timedelta(seconds=ctx.runtime.config.scale_down_stabilization),
        forecast_replicas=forecast.replicas if forecast is not None else None,
        reading=ctx.memory.readings.get(target.metric.query) if target.metric is not None else None,
        memory=metric_before or MetricMemory(),
        claim_in_force=view.claims.get(ctx.key),
        history=curve.history if curve is not None else None,
        raise_every=timedelta(seconds=ctx.runtime.config.metrics_interval),
    )
    decision = decide_target(inputs)
    if decision.wanted is not None and not dry_run:
        # Remembered before the write: a write that lands but whose answer is lost is released too.
        ctx.memory.touched.add(deployment_name)
    outcome = ctx.runtime.kube.set_claim(
        snapshot, deployment_name, ctx.key, decision.wanted, owner_uid=ctx.uid, dry_run=dry_run
    )
    if outcome is None:
        return None
    if outcome.released:
        ctx.memory.touched.discard(deployment_name)
    next_change = _next_change(ctx, inputs, deployment_name) if curve is not None else None
    deployment = outcome.deployment
    capacity = judge_capacity(
        decision.wanted if decision.wanted is not None else outcome.baseline.replicas,
        deployment.ready_replicas,
        world.pods.get(deployment_name, ()) if world.pods is not None else None,
        deployment.creation_failure,
    )
    return TargetReport(outcome, decision, forecast, metric_before, target, curve, next_change, capacity)


def _next_change(
    ctx: EventContext, inputs: TargetInputs, deployment_name: str
) -> tuple[datetime, int] | None:
    """The curve's next planned change; worked out again only once it is due, or when what it comes from
    changed (the spec, the baseline, the curve): until then nothing in the plan moves."""
    key = (ctx.generation, inputs.baseline, id(inputs.history))
    cached = ctx.memory.window.next_changes.get(deployment_name)
    if cached is not None and cached[0] == key and (cached[1] is None or cached[1][0] > ctx.now):
        return cached[1]
    change = next_planned_change(inputs)
    ctx.memory.window.next_changes[deployment_name] = (key, change)
    return change


def _release_dropped(
    ctx: EventContext, snapshot: NamespaceSnapshot, targeted: set[str], dry_run: bool
) -> list[ClaimOutcome]:
    """Claims of this event on Deployments it no longer targets (spec edited, labels changed, Deployment
    renamed), as the watches show them or as this process wrote them (the watch may not show it yet)."""
    seen = set(snapshot.claimed_by(ctx.key))
    dropped = (seen | ctx.memory.touched) - targeted
    return _release(ctx, snapshot, sorted(dropped), fresh=dropped - seen, dry_run=dry_run)


def _release(
    ctx: EventContext, snapshot: NamespaceSnapshot, names: list[str], fresh: set[str], dry_run: bool
) -> list[ClaimOutcome]:
    """Drop the event's claim on each named Deployment; the outcomes that changed (or, dry, would change)."""
    outcomes = []
    for name in names:
        outcome = ctx.runtime.kube.set_claim(
            snapshot, name, ctx.key, None, fresh=name in fresh, dry_run=dry_run
        )
        if not dry_run:
            ctx.memory.touched.discard(name)
        if outcome is not None and (outcome.written or dry_run):
            outcomes.append(outcome)
    return outcomes


# --- deletion ----------------------------------------------------------------------------------------------
def release_event(runtime: Runtime, memory: EventMemory, world: EventWorld) -> list[ClaimOutcome]:
    """Drop every claim of the event, restoring each target to its baseline or to the claims that remain.

    Waits for the pass in flight, then fences every later one off. Each target is read afresh (the watch
    may lag a claim written just before): every Deployment the watches show claimed by the event, every one
    this process wrote a claim to, and every one the spec targets. Refused (OperatorStoppingError) once the
    operator is stopping: the finalizer stays, and the replica that takes over releases the event.
    """
    with memory.fence.lock:
        return _release_fenced(runtime, memory, world)


def release_gone_event(runtime: Runtime, memory: EventMemory, world: EventWorld) -> list[ClaimOutcome] | None:
    """`release_event` for an event found gone without its finalizer, which several of the operator's paths
    may report at once (the watch's DELETED, a refused status write, a failed pass): the first releases it;
    the others, and any after the finalizer, get None and write nothing."""
    with memory.fence.lock:
        if memory.fence.released:
            return None
        return _release_fenced(runtime, memory, world)


def _release_fenced(runtime: Runtime, memory: EventMemory, world: EventWorld) -> list[ClaimOutcome]:
    """The release, its caller holding the event's fence."""
    with runtime.gate.writing() as admitted:
        if not admitted:
            raise OperatorStoppingError(f"not releasing CampaignEvent {world.namespace}/{world.name}")
        memory.fence.released = True
        ctx = _context(runtime, memory, world)
        names = set(world.snapshot.claimed_by(ctx.key)) | memory.touched
        with contextlib.suppress(SpecError):  # an invalid spec names no targets; its claims are known
            spec = _spec(runtime, memory, world)
            names |= {name for _, name in targets_in(world.snapshot, spec)}
        # The operator's --dry-run patches nothing, not even a release. An event's own dryRun does not hold
        # back the release of claims it made before it was switched to dry run: that would leak them.
        dry_run = runtime.config.dry_run
        released = _release(ctx, world.snapshot, sorted(names), fresh=names, dry_run=dry_run)
        announce_changes(ctx, released, dry_run=dry_run)
        if not dry_run:
            release_headroom(ctx)
    runtime.telemetry.forget_event(world.namespace, world.name)
    return released
