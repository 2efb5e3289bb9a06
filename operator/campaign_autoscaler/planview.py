"""`campaign-autoscaler plan`: a CampaignEvent's timeline, computed by the operator's own planning code.

Pure apart from rendering: the manifest text, the baselines and `now` are arguments. Reading files, the
cluster and the clock is the CLI's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from rich.console import Console
from rich.table import Table

from campaign_autoscaler.planning import (
    CampaignSpec,
    Floor,
    Phase,
    PlannedStep,
    TargetSpec,
    Window,
    compute_floor,
    format_duration,
    next_transition,
    next_window,
    phase_at,
    planned_steps,
    resolve_targets,
    resolve_window,
    target_key,
)
from campaign_autoscaler.planning.curve import History
from campaign_autoscaler.planning.decision import TargetInputs, planned_changes
from campaign_autoscaler.planning.instants import human_utc, iso_utc, local_time
from campaign_autoscaler.planning.preflight import (
    ClusterCapacity,
    Preflight,
    WorkloadNeed,
    format_quantity,
    preflight,
)

API_VERSION = "autoscaling.campaigns.dev/v1alpha1"
KIND = "CampaignEvent"
DEFAULT_MAX_SCALE_FACTOR = 10.0
ASSUMED_BASELINE = 1
UPCOMING_WINDOWS = 3
# The operator's defaults (`run --scale-down-stabilization`, `--metrics-interval`): a curve's plan uses them.
DEFAULT_STABILIZATION = timedelta(seconds=300)
DEFAULT_METRICS_INTERVAL = timedelta(seconds=15)
_TARGET_REF = re.compile(r"targets\[(\d+)\]")


class PlanInputError(ValueError):
    """A problem with the command's input other than the spec itself; the message names the file or flag."""


# --- manifests ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventManifest:
    source: str  # the file it came from
    name: str
    namespace: str | None
    raw_spec: Mapping[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def load_event_manifests(text: str, source: str) -> tuple[EventManifest, ...]:
    """Every CampaignEvent in a YAML stream (several documents and `kind: List` allowed; others skipped)."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        raise PlanInputError(f"{source}: invalid YAML: {_yaml_problem(err)}") from None
    objects = list(_objects(documents, source))
    events = tuple(_event_manifest(obj, path, source) for obj, path in objects if obj.get("kind") == KIND)
    if not events:
        kinds = sorted({str(obj.get("kind")) for obj, _ in objects})
        found = f"found {', '.join(kinds)}" if kinds else "the file is empty"
        raise PlanInputError(f"{source}: kind: expected {KIND} ({API_VERSION}), {found}")
    return events


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def _objects(documents: Sequence[Any], source: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    for number, document in enumerate(documents, start=1):
        if not isinstance(document, Mapping):
            raise PlanInputError(
                f"{source}: document {number}: must be a Kubernetes object, got {type(document).__name__}"
            )
        if str(document.get("kind", "")).endswith("List") and isinstance(document.get("items"), list):
            for index, item in enumerate(document["items"]):
                if not isinstance(item, Mapping):
                    raise PlanInputError(f"{source}: document {number}: items[{index}]: must be an object")
                yield item, f"document {number} items[{index}]"
        else:
            yield document, f"document {number}"


def _event_manifest(obj: Mapping[str, Any], path: str, source: str) -> EventManifest:
    if obj.get("apiVersion") != API_VERSION:
        raise PlanInputError(
            f"{source}: {path}: apiVersion: expected {API_VERSION} for kind {KIND}, "
            f"got {obj.get('apiVersion')!r}"
        )
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise PlanInputError(f"{source}: {path}: metadata.name: required")
    raw_spec = obj.get("spec")
    if not isinstance(raw_spec, Mapping):
        raise PlanInputError(f"{source}: {path}: spec: must be an object, got {type(raw_spec).__name__}")
    namespace = metadata.get("namespace")
    return EventManifest(
        source=source,
        name=metadata["name"],
        namespace=namespace if isinstance(namespace, str) and namespace else None,
        raw_spec=raw_spec,
    )


# --- baselines ----------------------------------------------------------------------------------------------
def parse_baseline_flags(values: Sequence[str]) -> dict[str, int]:
    """`--baseline NAME=N` flags: a Deployment name (or `targets[i]` for a whole target) -> replicas."""
    baselines: dict[str, int] = {}
    for value in values:
        name, equals, number = value.rpartition("=")
        if not equals or not name:
            raise PlanInputError(f"--baseline {value}: expected NAME=N, e.g. order-tracking=4")
        try:
            replicas = int(number)
        except ValueError:
            raise PlanInputError(
                f"--baseline {value}: {number!r} is not a whole number of replicas"
            ) from None
        if replicas < 0:
            raise PlanInputError(f"--baseline {value}: replicas must be >= 0")
        baselines[name] = replicas
    return baselines


@dataclass(frozen=True)
class ClusterView:
    """What was read from a cluster, by workload key (planning.workload_key; a Deployment's is its name):
    baseline replicas and what a claim writes; and what each selector matched."""

    namespace: str
    replicas: Mapping[str, int]
    selected: Mapping[int, tuple[str, ...]]  # target index -> the matching workloads' keys, sorted
    writes: Mapping[str, str] = field(default_factory=dict)  # e.g. "StatefulSet spec.replicas"
    requests: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)  # one pod's, by workload key
    limits: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    capacity: ClusterCapacity | None = None  # nodes, their pods' requests and the namespace's quotas
    capacity_problem: str | None = None  # why the capacity could not be read


@dataclass(frozen=True)
class Workload:
    """One column of the timeline: a Deployment, or a selector target not resolved against a cluster."""

    label: str
    target: TargetSpec
    baseline: int
    baseline_source: str  # "--baseline", "cluster" or "assumed"
    floor: Floor


def target_for_ref(spec: CampaignSpec, ref: str) -> TargetSpec | None:
    """The target a `--target`/`--baseline` reference names: a by-name target's name or `targets[i]`."""
    index = _TARGET_REF.fullmatch(ref)
    if index is not None:
        position = int(index.group(1))
        return spec.targets[position] if position < len(spec.targets) else None
    return next((target for target in spec.targets if target.name == ref), None)


def target_ref(target: TargetSpec) -> str:
    """How flags name a target: its Deployment name, or `targets[i]` for a selector."""
    return target.name if target.name is not None else f"targets[{target.index}]"


def plan_workloads(
    spec: CampaignSpec,
    baselines: Mapping[str, int],
    cluster: ClusterView | None,
    max_scale_factor: float = DEFAULT_MAX_SCALE_FACTOR,
) -> tuple[tuple[Workload, ...], tuple[str, ...]]:
    """The workloads the event scales, each with its baseline and floor, and notes about how they were found.

    `baselines` are `--baseline` values: by Deployment name, or by `targets[i]` for every Deployment of a
    target; see `check_baseline_names`.
    """
    columns = _columns(spec, cluster)
    notes = list(_cluster_notes(spec, cluster))
    workloads = []
    for target, label in columns:
        baseline, source = _baseline(target, label, baselines, cluster)
        floor = compute_floor(target, baseline, spec.traffic_multiplier, max_scale_factor)
        workloads.append(Workload(label, target, baseline, source, floor))
    assumed = [w for w in workloads if w.baseline_source == "assumed"]
    if assumed:
        flags = ", ".join(f"--baseline {_flag_name(w)}=N" for w in assumed)
        notes.append(
            f"Baseline {ASSUMED_BASELINE} assumed for {', '.join(w.label for w in assumed)}: "
            f"pass {flags} or --kubeconfig to use the real replicas."
        )
    return tuple(workloads), tuple(notes)


def _unresolved_selector(target: TargetSpec, label: str) -> bool:
    """A selector target shown as itself: no cluster was read to find its Deployments."""
    return target.name is None and label == target.display


def _flag_name(workload: Workload) -> str:
    if _unresolved_selector(workload.target, workload.label):
        return f"targets[{workload.target.index}]"
    return workload.label


def _columns(spec: CampaignSpec, cluster: ClusterView | None) -> list[tuple[TargetSpec, str]]:
    """(target, label) per workload; like the operator, a Deployment belongs to the first target naming it.
    Without a cluster a selector target is one workload, labelled with its selector."""
    if cluster is None:
        return resolve_targets(spec.targets, lambda target: [target.display])
    return resolve_targets(spec.targets, lambda target: cluster.selected.get(target.index, ()))


def known_baseline_names(spec: CampaignSpec, cluster: ClusterView | None) -> set[str]:
    """What `--baseline NAME=N` may name for this event: its Deployments and `targets[i]`."""
    names = {label for target, label in _columns(spec, cluster) if not _unresolved_selector(target, label)}
    return names | {f"targets[{target.index}]" for target in spec.targets}


def check_baseline_names(baselines: Mapping[str, int], known: set[str]) -> None:
    for name in baselines:
        if name not in known:
            listed = ", ".join(sorted(known))
            raise PlanInputError(f"--baseline {name}: not a target of this event (known: {listed})")


def _baseline(
    target: TargetSpec, label: str, baselines: Mapping[str, int], cluster: ClusterView | None
) -> tuple[int, str]:
    for key in (label, f"targets[{target.index}]"):
        if key in baselines:
            return baselines[key], "--baseline"
    if cluster is not None and label in cluster.replicas:
        return cluster.replicas[label], "cluster"
    return ASSUMED_BASELINE, "assumed"


def _cluster_notes(spec: CampaignSpec, cluster: ClusterView | None) -> Iterator[str]:
    if cluster is None:
        return
    if cluster.capacity_problem is not None:
        yield cluster.capacity_problem[0].upper() + cluster.capacity_problem[1:] + "."
    for target in spec.targets:
        if target.name is not None and target_key(target, target.name) not in cluster.replicas:
            yield f"{target.kind} {cluster.namespace}/{target.name} was not found in the cluster."
        if target.name is None and not cluster.selected.get(target.index):
            yield f"{target.display} matched no {target.kind} in namespace {cluster.namespace}."


# --- the plan -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    event: EventManifest
    spec: CampaignSpec
    now: datetime
    window: Window
    phase_now: Phase
    next_at: datetime | None
    workloads: tuple[Workload, ...]
    steps: tuple[PlannedStep, ...]
    upcoming: tuple[Window, ...]  # for a recurring event, the windows after `window`
    notes: tuple[str, ...]
    # Per workload following its last campaign's curve (read from Prometheus): each planned change.
    curves: tuple[tuple[str, tuple[tuple[datetime, int], ...]], ...] = ()
    writes: Mapping[str, str] = field(default_factory=dict)  # by workload label, when a cluster was read
    preflight: Preflight | None = None  # with --kubeconfig: is the capacity the floors need there?


def build_plan(
    event: EventManifest,
    spec: CampaignSpec,
    workloads: Sequence[Workload],
    notes: Sequence[str],
    now: datetime,
    histories: Mapping[str, History] | None = None,
    max_scale_factor: float = DEFAULT_MAX_SCALE_FACTOR,
    cluster: ClusterView | None = None,
) -> Plan:
    """The current or next window at `now` and every transition of it, with each workload's replicas; for
    each workload with a history (by label), the changes its curve plans; with a cluster read, what each
    claim writes and the preflight of the capacity."""
    window = resolve_window(spec, now)
    checked = None
    if cluster is not None and cluster.capacity is not None:
        checked, missing = _preflight(spec, window, workloads, cluster, cluster.capacity)
        notes = [*notes, *missing]
    steps = planned_steps(
        spec,
        window,
        {w.label: w.baseline for w in workloads},
        {w.label: w.floor for w in workloads},
    )
    return Plan(
        event=event,
        spec=spec,
        now=now,
        window=window,
        phase_now=phase_at(spec, window, now),
        next_at=next_transition(spec, window, now),
        workloads=tuple(workloads),
        steps=steps,
        upcoming=_upcoming_windows(spec, window),
        notes=(*notes, *_spec_notes(spec, workloads, histories)),
        curves=_curves(spec, window, workloads, histories or {}, max_scale_factor),
        writes=dict(cluster.writes) if cluster is not None else {},
        preflight=checked,
    )


def _curves(
    spec: CampaignSpec,
    window: Window,
    workloads: Sequence[Workload],
    histories: Mapping[str, History],
    max_scale_factor: float,
) -> tuple[tuple[str, tuple[tuple[datetime, int], ...]], ...]:
    curves = []
    for workload in workloads:
        if workload.label not in histories:
            continue
        inputs = TargetInputs(
            spec=spec,
            target=workload.target,
            window=window,
            now=window.start,
            baseline=workload.baseline,
            max_scale_factor=max_scale_factor,
            stabilization=DEFAULT_STABILIZATION,
            history=histories[workload.label],
            raise_every=DEFAULT_METRICS_INTERVAL,
        )
        curves.append((workload.label, tuple(planned_changes(inputs))))
    return tuple(curves)


def _preflight(
    spec: CampaignSpec,
    window: Window,
    workloads: Sequence[Workload],
    cluster: ClusterView,
    capacity: ClusterCapacity,
) -> tuple[Preflight, list[str]]:
    needs = [
        WorkloadNeed(
            w.label,
            max(0, w.floor.replicas - w.baseline),
            cluster.requests.get(w.label, {}),
            cluster.limits.get(w.label, {}),
        )
        for w in workloads
    ]
    unknown = [need.label for need in needs if need.extra_pods and not need.requests]
    notes = [
        f"{label}: its pods request no resources, so preflight counts them as pods only." for label in unknown
    ]
    checked = preflight(spec, window, needs, capacity, lambda moment: local_time(moment, spec.timezone))
    return checked, notes


def _upcoming_windows(spec: CampaignSpec, window: Window) -> tuple[Window, ...]:
    upcoming: list[Window] = []
    following = next_window(spec, window)
    while following is not None and len(upcoming) < UPCOMING_WINDOWS:
        upcoming.append(following)
        following = next_window(spec, following)
    return tuple(upcoming)


def _spec_notes(
    spec: CampaignSpec, workloads: Sequence[Workload], histories: Mapping[str, History] | None
) -> Iterator[str]:
    """What the tables cannot show. `histories` None: Prometheus was not asked for the curves (when it was,
    a curve it could not give has a note of its own, from the reading)."""
    if spec.dry_run:
        yield "dryRun is set: the operator only reports this plan, it patches nothing."
    for workload in workloads:
        metric = workload.target.metric
        if metric is None:
            continue
        yield (
            f"{workload.label}: from start - leadTime to the end of the ramp-down the live metric may "
            f"raise the replicas above these floors, up to {workload.floor.max_replicas} "
            f"(ceil(value / {metric.target_per_replica:g}))."
        )
        if metric.forecast is not None and metric.forecast.follows_curve:
            if histories is None:
                yield (
                    f"{workload.label}: the curve floor (the query {metric.forecast.offset_text} ago) needs "
                    "Prometheus (--prometheus-url); the timeline shows the plain floor it falls back on."
                )
            elif (history := histories.get(workload.label)) is not None and history.gaps:
                yield f"{workload.label}: {history.describe_gaps()}; the plain floor applies there."
        elif metric.forecast is not None:
            yield (
                f"{workload.label}: the forecast floor (peak {metric.forecast.offset_text} ago x "
                f"{metric.forecast.growth:g}) needs Prometheus and is not included."
            )


# --- rendering ----------------------------------------------------------------------------------------------
def render_plan(plan: Plan, console: Console) -> None:
    spec, zone = plan.spec, plan.spec.timezone
    console.print(f"[bold]CampaignEvent {plan.event.ref}[/bold] ({plan.event.source})", highlight=False)
    console.print(
        f"Window: {local_time(plan.window.start, zone)} -> {local_time(plan.window.end, zone)} "
        f"({human_utc(plan.window.start)} -> {human_utc(plan.window.end)}); lead time "
        f"{format_duration(spec.lead_time)} in {spec.ramp_up_steps} step(s), ramp-down "
        f"{format_duration(spec.ramp_down_duration)} in {spec.ramp_down_steps} step(s)"
        + (
            f"; recurring: cron '{spec.schedule.cron}' for {format_duration(spec.schedule.duration)}"
            if spec.schedule is not None
            else ""
        ),
        highlight=False,
    )
    next_at = f"next transition {human_utc(plan.next_at)}" if plan.next_at else "no further transition"
    console.print(f"At {human_utc(plan.now)}: phase {plan.phase_now}, {next_at}", highlight=False)
    console.print(_floors_table(plan))
    console.print(_timeline_table(plan))
    for label, changes in plan.curves:
        console.print(_curve_table(plan, label, changes))
    for window in plan.upcoming:
        console.print(
            f"Following window: {local_time(window.start, zone)} -> {local_time(window.end, zone)}",
            highlight=False,
        )
    if plan.preflight is not None:
        render_preflight(plan.preflight, console)
    for note in plan.notes:
        console.print(f"Note: {note}", highlight=False, markup=False)


def render_preflight(checked: Preflight, console: Console) -> None:
    """What the floors add against what the nodes and the quotas have free, and the verdict."""
    table = Table(title="Preflight: nodes (Ready, schedulable)")
    for header in ("Resource", "Floors add", "Allocatable", "Requested", "Free", "Short"):
        table.add_column(header, justify="left" if header == "Resource" else "right")
    for row in checked.resources:
        table.add_row(
            row.resource,
            *(format_quantity(row.resource, value) for value in (row.needed, row.allocatable, row.requested)),
            format_quantity(row.resource, row.free),
            _short_cell(row.resource, row.short),
        )
    console.print(table)
    if checked.quotas:
        quotas = Table(title="Preflight: ResourceQuotas of the namespace")
        for header in ("Quota", "Resource", "Hard", "Used", "Free", "Floors add", "Short"):
            quotas.add_column(header, justify="left" if header in ("Quota", "Resource") else "right")
        for row in checked.quotas:
            quotas.add_row(
                row.quota,
                row.resource,
                *(
                    format_quantity(row.resource, value)
                    for value in (row.hard, row.used, row.free, row.needed)
                ),
                _short_cell(row.resource, row.short),
            )
        console.print(quotas)
    style = "green" if checked.ok else "bold red"
    for verdict in checked.verdicts:
        console.print(f"[{style}]Verdict:[/{style}] {verdict}", highlight=False)


def _short_cell(resource: str, short: Decimal) -> str:
    return f"[bold red]{format_quantity(resource, short)}[/bold red]" if short > 0 else "-"


def _floors_table(plan: Plan) -> Table:
    table = Table(title="Floors")
    for header in ("Target", "Kind", "Writes", "Selected by", "Baseline", "Floor", "Min", "Max", "Reason"):
        table.add_column(header, justify="right" if header in ("Baseline", "Floor", "Min", "Max") else "left")
    for w in plan.workloads:
        table.add_row(
            w.label,
            w.target.kind,
            plan.writes.get(w.label, "?"),
            "name" if w.target.name is not None else w.target.display,
            f"{w.baseline} ({w.baseline_source})",
            str(w.floor.replicas),
            str(w.floor.min_replicas),
            str(w.floor.max_replicas),
            w.floor.reason,
        )
    return table


def _timeline_table(plan: Plan) -> Table:
    table = Table(title=f"Timeline of the window opening {local_time(plan.window.start, plan.spec.timezone)}")
    table.add_column(plan.spec.timezone_name)
    table.add_column("UTC")
    table.add_column("Phase")
    table.add_column("Step")
    for workload in plan.workloads:
        table.add_column(workload.label, justify="right")
    for step in plan.steps:
        transition = step.transition
        table.add_row(
            local_time(transition.at, plan.spec.timezone),
            human_utc(transition.at),
            str(transition.phase),
            transition.label,
            *(str(step.replicas[workload.label]) for workload in plan.workloads),
        )
    return table


def _curve_table(plan: Plan, label: str, changes: Sequence[tuple[datetime, int]]) -> Table:
    table = Table(title=f"Curve of {label} (the last campaign's, before the live metric)")
    table.add_column(plan.spec.timezone_name)
    table.add_column("UTC")
    table.add_column(label, justify="right")
    for at, replicas in changes:
        table.add_row(local_time(at, plan.spec.timezone), human_utc(at), str(replicas))
    return table


def plan_to_json(plan: Plan) -> dict[str, Any]:
    spec, zone = plan.spec, plan.spec.timezone
    return {
        "name": plan.event.name,
        "namespace": plan.event.namespace,
        "source": plan.event.source,
        "timezone": spec.timezone_name,
        "now": iso_utc(plan.now),
        "phase": str(plan.phase_now),
        "nextTransition": iso_utc(plan.next_at) if plan.next_at else None,
        "window": _window_json(plan.window, zone),
        "upcomingWindows": [_window_json(window, zone) for window in plan.upcoming],
        "targets": [
            {
                "name": w.label,
                "kind": w.target.kind,
                "apiVersion": w.target.api_version,
                "writes": plan.writes.get(w.label),
                "target": w.target.field(),
                "selector": w.target.label_selector(),
                "baselineReplicas": w.baseline,
                "baselineSource": w.baseline_source,
                "floor": w.floor.replicas,
                "minReplicas": w.floor.min_replicas,
                "maxReplicas": w.floor.max_replicas,
                "reason": w.floor.reason,
            }
            for w in plan.workloads
        ],
        "transitions": [
            {
                "at": iso_utc(step.transition.at),
                "atLocal": step.transition.at.astimezone(zone).isoformat(),
                "phase": str(step.transition.phase),
                "step": step.transition.label,
                "replicas": {w.label: step.replicas[w.label] for w in plan.workloads},
            }
            for step in plan.steps
        ],
        "curves": {
            label: [{"at": iso_utc(at), "replicas": replicas} for at, replicas in changes]
            for label, changes in plan.curves
        },
        "notes": list(plan.notes),
        **({"preflight": _preflight_json(plan.preflight)} if plan.preflight is not None else {}),
    }


def _preflight_json(checked: Preflight) -> dict[str, Any]:
    return {
        "ok": checked.ok,
        "verdicts": list(checked.verdicts),
        "nodes": [
            {
                "resource": row.resource,
                "floorsAdd": str(row.needed),
                "allocatable": str(row.allocatable),
                "requested": str(row.requested),
                "free": str(row.free),
                "short": str(row.short),
            }
            for row in checked.resources
        ],
        "quotas": [
            {
                "quota": row.quota,
                "resource": row.resource,
                "hard": str(row.hard),
                "used": str(row.used),
                "free": str(row.free),
                "floorsAdd": str(row.needed),
                "short": str(row.short),
            }
            for row in checked.quotas
        ],
    }


def _window_json(window: Window, zone: ZoneInfo) -> dict[str, str]:
    return {
        "start": iso_utc(window.start),
        "end": iso_utc(window.end),
        "startLocal": window.start.astimezone(zone).isoformat(),
        "endLocal": window.end.astimezone(zone).isoformat(),
    }
