"""What a campaign report is made of: the event and its window from the API server, and from Prometheus the
operator's own desired and ready replicas per target and each target's metric, over the lifecycle.

Everything that could not be read is said in `problems`, in words, and the report is made of the rest: a
live event gives the part so far, a missing series leaves its figures out, an unreachable Prometheus leaves
the status as the only source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from campaign_autoscaler import API_GROUP, API_VERSION, KIND, PLURAL
from campaign_autoscaler.adapters.prometheus import MetricsUnavailableError, PrometheusMetricsSource
from campaign_autoscaler.adapters.telemetry import PREFIX
from campaign_autoscaler.planning import (
    CampaignSpec,
    MetricsScope,
    SpecError,
    TargetSpec,
    Transition,
    Window,
    lifecycle_end,
    lifecycle_start,
    parse_spec,
    replicas_for_metric,
    resolve_window,
    transitions,
)
from campaign_autoscaler.planning.summary import (
    Observation,
    Tally,
    TargetPlan,
    TargetSummary,
    is_short,
    observe,
    summarize,
)

Point = tuple[datetime, float]
DESIRED_SERIES = f"{PREFIX}_target_desired_replicas"
READY_SERIES = f"{PREFIX}_target_ready_replicas"
METRIC_SERIES = f"{PREFIX}_target_metric_value"
MAX_POINTS = 1100  # per series: Prometheus answers at most 11,000; a plot needs far fewer
HTTP_NOT_FOUND = 404
SCALE_REASONS = ("Scaled", "Restored", "DryRun")


def transition_record(involved: Mapping[str, str], reason: str) -> bool:
    """Whether an Event is one the report reads as a transition's stamp: a scale Event on a CampaignEvent.
    Such Events must each be posted (never counted as a repeat of the one before)."""
    return involved.get("kind") == KIND and reason in SCALE_REASONS


MAX_STEP_LAG = timedelta(seconds=60)  # a scale Event later than this after a step is not the step's


class ReportInputError(ValueError):
    """The event named cannot be reported on (unknown, invalid, never ran): exit code 2."""


class ReportReadError(RuntimeError):
    """The API server could not be read: exit code 1."""


@dataclass(frozen=True)
class TargetReportData:
    name: str
    spec: TargetSpec | None
    desired: list[Point]
    ready: list[Point]
    metric: list[Point] | None  # None: the target has no metric
    demand: list[Point]  # ceil(metric / targetPerReplica) at each metric point
    shortfalls: list[tuple[datetime, datetime]]
    summary: TargetSummary | None  # None when Prometheus gave no desired or ready series
    pod_hours: Mapping[str, float]  # "ready", "desired" and, with a metric, "demand"


@dataclass(frozen=True)
class TransitionRow:
    transition: Transition
    applied: datetime | None  # when the first scale Event at or after its due time was posted
    lag_seconds: float | None


@dataclass(frozen=True)
class ReportData:
    namespace: str
    event: str
    phase: str
    spec: CampaignSpec
    window: Window
    begin: datetime  # the pre-scale
    until: datetime  # the end of the lifecycle, or now for a live event
    live: bool
    generated_at: datetime
    step_seconds: float
    targets: list[TargetReportData]
    transitions: list[TransitionRow]
    status_summary: Mapping[str, Any] | None  # status.summary of this window, when the operator wrote it
    problems: list[str] = field(default_factory=list)
    prometheus_unreachable: bool = False


def read_event(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    try:
        return client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, name, _request_timeout=10
        )
    except ApiException as err:
        if err.status == HTTP_NOT_FOUND:
            raise ReportInputError(f"CampaignEvent {namespace}/{name} not found") from None
        raise ReportReadError(
            f"could not read CampaignEvent {namespace}/{name}: API error {err.status} {err.reason}"
        ) from None
    except (OSError, Urllib3HTTPError) as err:
        raise ReportReadError(f"could not reach the API server: {_first_line(err)}") from None


def collect(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    metrics: PrometheusMetricsSource | None,
    now: datetime,
    metrics_scope: MetricsScope | None = None,
) -> ReportData:
    """Everything the report shows. ReportInputError / ReportReadError when there is no report to make."""
    body = read_event(api_client, namespace, name)
    try:
        spec = parse_spec(body.get("spec") or {}, metrics_scope)
    except SpecError as err:
        raise ReportInputError(f"CampaignEvent {namespace}/{name} is invalid: {err}") from None
    status = body.get("status") or {}
    window, status_summary = _reported_window(spec, status, now)
    begin, end = lifecycle_start(spec, window), lifecycle_end(spec, window)
    if now < begin:
        raise ReportInputError(
            f"CampaignEvent {namespace}/{name} has not run yet: its pre-scale begins at {_iso(begin)}"
        )
    if not status.get("targets"):
        raise ReportInputError(
            f"CampaignEvent {namespace}/{name} has no targets in its status: the operator never acted on it"
        )
    until = min(now, end)
    step = max(1.0, math.ceil((until - begin).total_seconds() / MAX_POINTS))
    problems: list[str] = []
    if now < end:
        problems.append(
            f"the event is live ({status.get('phase', 'unknown phase')}): this is the part so far"
        )
    names = _target_names(status, status_summary)
    specs = _target_specs(api_client, namespace, spec, names, problems)
    entries = {entry.get("name"): entry for entry in status.get("targets") or []}
    unreachable = False
    targets = []
    for target_name in names:
        source = _Series(metrics, begin, until, step)
        data = _target_data(
            source,
            namespace,
            name,
            spec,
            window,
            target_name,
            specs.get(target_name),
            entries.get(target_name, {}),
        )
        problems.extend(source.problems)
        unreachable = unreachable or source.unreachable
        targets.append(data)
        if source.unreachable:
            metrics = None  # asked once: the other targets say the same
    if metrics is None and not unreachable:
        problems.append("no Prometheus to read: the figures come from the event's status alone")
    rows = _transition_rows(api_client, namespace, name, spec, window, until, problems)
    return ReportData(
        namespace=namespace,
        event=name,
        phase=str(status.get("phase", "")),
        spec=spec,
        window=window,
        begin=begin,
        until=until,
        live=now < end,
        generated_at=now,
        step_seconds=step,
        targets=targets,
        transitions=rows,
        status_summary=status_summary,
        problems=_unique(problems),
        prometheus_unreachable=unreachable,
    )


class _Series:
    """Range reads of one target, remembering what failed."""

    def __init__(
        self, metrics: PrometheusMetricsSource | None, begin: datetime, until: datetime, step: float
    ):
        self.metrics, self.begin, self.until, self.step = metrics, begin, until, step
        self.problems: list[str] = []
        self.unreachable = False

    def read(self, query: str, what: str) -> list[Point] | None:
        if self.metrics is None or self.unreachable:
            return None
        try:
            points = self.metrics.points(query, self.begin, self.until, self.step)
        except MetricsUnavailableError as err:
            if err.reason in ("ConnectionFailed", "Timeout", "HTTPError"):
                self.unreachable = True
                self.problems.append(f"Prometheus could not be read ({err.reason}: {err.detail})")
            else:
                self.problems.append(f"{what}: {err.reason}: {err.detail}")
            return None
        if not points:
            self.problems.append(f"{what}: no samples between {_iso(self.begin)} and {_iso(self.until)}")
        return points


def _target_data(
    source: _Series,
    namespace: str,
    event: str,
    spec: CampaignSpec,
    window: Window,
    name: str,
    target: TargetSpec | None,
    entry: Mapping[str, Any],
) -> TargetReportData:
    labels = f'namespace="{namespace}",event="{event}",target="{name}"'
    desired = source.read(f"{DESIRED_SERIES}{{{labels}}}", f"{name}: the operator's desired replicas")
    ready = source.read(f"{READY_SERIES}{{{labels}}}", f"{name}: the operator's ready replicas")
    metric_points: list[Point] | None = None
    demand: list[Point] = []
    seen_metric: list[Point] = []
    per_replica = 1.0
    if target is not None and target.metric is not None:
        per_replica = target.metric.target_per_replica
        metric_points = source.read(target.metric.query, f"{name}: its metric query") or []
        demand = [(at, replicas_for_metric(value, per_replica)) for at, value in metric_points]
        # The values the operator read, when it read them: the demand its passes knew of.
        seen_metric = (
            source.read(f"{METRIC_SERIES}{{{labels}}}", f"{name}: the metric as the operator read it") or []
        )
    summary, shortfalls = None, []
    if desired and ready:
        seen_demand = [(at, replicas_for_metric(value, per_replica)) for at, value in seen_metric]
        summary, shortfalls = _summarize_series(
            spec, window, name, target, entry, desired, ready, seen_metric, seen_demand
        )
    step = source.step
    pod_hours = {"ready": _pod_hours(ready or [], step), "desired": _pod_hours(desired or [], step)}
    if metric_points:
        pod_hours["demand"] = _pod_hours(demand, step)
    return TargetReportData(
        name, target, desired or [], ready or [], metric_points, demand, shortfalls, summary, pod_hours
    )


def _summarize_series(
    spec: CampaignSpec,
    window: Window,
    name: str,
    target: TargetSpec | None,
    entry: Mapping[str, Any],
    desired: list[Point],
    ready: list[Point],
    metric: list[Point],
    demand: list[Point],
) -> tuple[TargetSummary, list[tuple[datetime, datetime]]]:
    """The same fold the operator's passes make, over the samples Prometheus kept (one per step)."""
    begin, end = lifecycle_start(spec, window), lifecycle_end(spec, window)
    ready_at, metric_at, demand_at = dict(ready), dict(metric), dict(demand)
    floor = (entry.get("windowSoFar") or {}).get("floorReplicas")
    tally, stretches, since = Tally(), [], None
    ready_seconds = None
    for at, wanted in desired:
        if at not in ready_at:
            continue
        claimed = int(wanted) if begin <= at < end else None
        seen = Observation(
            at=at,
            desired=claimed,
            ready=int(ready_at[at]),
            metric=metric_at.get(at),
            demand=int(demand_at[at]) if at in demand_at else None,
            floor=floor,
        )
        tally = observe(tally, seen, window)
        short = is_short(seen) and window.start <= at < window.end
        if short and since is None:
            since = at
        elif not short and since is not None:
            stretches.append((since, at))
            since = None
        if ready_seconds is None and claimed is not None and floor is not None and seen.ready >= floor:
            ready_seconds = round((at - begin).total_seconds(), 1)
    if since is not None:
        stretches.append((since, min(window.end, desired[-1][0])))
    if "observedReadySeconds" in entry:
        ready_seconds = float(entry["observedReadySeconds"])
    metric_spec = target.metric if target is not None else None
    plan = TargetPlan(
        lead_time=spec.lead_time,
        target_per_replica=metric_spec.target_per_replica if metric_spec is not None else None,
        growth=metric_spec.forecast.growth if metric_spec is not None and metric_spec.forecast else None,
    )
    return summarize(name, tally, window, plan, ready_seconds), stretches


def _reported_window(
    spec: CampaignSpec, status: Mapping[str, Any], now: datetime
) -> tuple[Window, Mapping[str, Any] | None]:
    """The window to report on: the current one once it has begun, else the one status.summary tells of."""
    summary = status.get("summary") or None
    current = resolve_window(spec, now)
    if now >= lifecycle_start(spec, current) or summary is None:
        kept = (
            summary if summary and (summary.get("window") or {}).get("start") == _iso(current.start) else None
        )
        return current, kept
    told = summary.get("window") or {}
    return Window(datetime.fromisoformat(told["start"]), datetime.fromisoformat(told["end"])), summary


def _target_names(status: Mapping[str, Any], summary: Mapping[str, Any] | None) -> list[str]:
    names = [entry["name"] for entry in (summary or {}).get("targets") or [] if entry.get("name")]
    for entry in status.get("targets") or []:
        if entry.get("name") and entry["name"] not in names:
            names.append(entry["name"])
    return names


def _target_specs(
    api_client: client.ApiClient,
    namespace: str,
    spec: CampaignSpec,
    names: Sequence[str],
    problems: list[str],
) -> dict[str, TargetSpec]:
    """The spec entry of each Deployment: the one naming it, else the first whose selector matches it."""
    found: dict[str, TargetSpec] = {}
    for target in spec.targets:
        if target.name in names:
            found.setdefault(target.name, target)  # the first entry wins, as in the operator's passes
    selectors = [target for target in spec.targets if not target.by_name]
    for name in names:
        if name in found or not selectors:
            continue
        try:
            deployment = client.AppsV1Api(api_client).read_namespaced_deployment(
                name, namespace, _request_timeout=10
            )
        except (ApiException, OSError, Urllib3HTTPError) as err:
            problems.append(f"{name}: could not read its labels to find its metric ({_first_line(err)})")
            continue
        labels = deployment.metadata.labels or {}
        match = next((target for target in selectors if target.matches(labels)), None)
        if match is not None:
            found[name] = match
    return found


def _transition_rows(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    spec: CampaignSpec,
    window: Window,
    until: datetime,
    problems: list[str],
) -> list[TransitionRow]:
    """Each transition due so far, with the first scale Event posted at or after it (one-second stamps)."""
    try:
        events = client.CoreV1Api(api_client).list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}", _request_timeout=10
        )
        stamps = sorted(
            stamp
            for item in events.items
            if item.reason in SCALE_REASONS and (stamp := item.last_timestamp or item.event_time) is not None
        )
    except (ApiException, OSError, Urllib3HTTPError) as err:
        problems.append(f"the event's scale Events could not be read ({_first_line(err)}): no transition lag")
        stamps = []
    due_so_far = [transition for transition in transitions(spec, window) if transition.at <= until]
    rows = []
    for index, transition in enumerate(due_so_far):
        # Event stamps are whole seconds, cut down: a step's Event is stamped at or after its due second, and
        # soon after it; a later one belongs to something else (the metric, drift), and a step that changed
        # no replicas has none.
        due = transition.at.replace(microsecond=0)
        following = due_so_far[index + 1].at if index + 1 < len(due_so_far) else None
        soon = MAX_STEP_LAG if following is None else min(MAX_STEP_LAG, (following - transition.at) / 4)
        applied = next((stamp for stamp in stamps if due <= stamp <= transition.at + soon), None)
        lag = max(0.0, (applied - transition.at).total_seconds()) if applied is not None else None
        rows.append(TransitionRow(transition, applied, lag))
    if stamps == [] and rows and not any("scale Events" in problem for problem in problems):
        problems.append(
            "no scale Events of the event were found (the API server keeps Events for 1h by default)"
        )
    return rows


def _pod_hours(points: Sequence[Point], step: float) -> float:
    return round(sum(value for _, value in points) * step / 3600, 3)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0][:300] if str(err) else type(err).__name__
