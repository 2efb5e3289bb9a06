"""The live dashboard: a table refreshed in place on a terminal (plain lines otherwise), and the summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from campaign_autoscaler.planning import PlannedStep

from .observe import (
    ClusterSample,
    DemoOutcome,
    DeploymentState,
    EndState,
    EventLine,
    StepObservation,
    TargetStatus,
    TrafficCover,
    may_be_raised,
    observe_steps,
)
from .scenario import EVENT_NAME, METRIC_TARGET, OVERRUN, TARGET_PER_REPLICA, DemoPlan, DemoTimeline

SAMPLE_SECONDS = 0.25
PROMISED_LAG_SECONDS = 1.0
LAG_COLUMN_WIDTH = len("✗ not seen")


def relative(moment: datetime, plan: DemoPlan) -> str:
    """`T-30s`: seconds from the window opening."""
    return f"T{(moment - plan.window.start).total_seconds():+.0f}s"


def clock_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


@dataclass(frozen=True)
class Frame:
    """Everything one refresh of the live view shows."""

    plan: DemoPlan
    timeline: DemoTimeline
    namespace: str
    samples: tuple[ClusterSample, ...]
    events: tuple[EventLine, ...]
    live_metric: bool

    @property
    def latest(self) -> ClusterSample:
        return self.samples[-1]


def _headline(frame: Frame) -> Text:
    sample, plan = frame.latest, frame.plan
    text = Text()
    text.append(f"{frame.namespace}/{EVENT_NAME}", style="bold")
    text.append(f"  {clock_time(sample.at)}  {relative(sample.at, plan)}  ")
    text.append(sample.phase or "(no status yet)", style="bold cyan")
    text.append(f"  next: {_next_step_text(plan, sample)}\n")
    text.append(f"Traffic on checkout {sample.traffic_rps:,.0f} req/s", style="bold")
    source = "via Prometheus" if frame.live_metric else "not scraped: no Prometheus"
    text.append(f"  (synthetic 9.9 curve, {frame.timeline.pace()}; {source})")
    if sample.nodes is not None:
        text.append(f"\nNodes {sample.nodes}", style="bold")
        text.append("  (the node provisioner adds one when Pods find no room)")
    return text


def _next_step_text(plan: DemoPlan, sample: ClusterSample) -> str:
    if sample.phase is None:
        return "waiting for the operator"
    if sample.next_transition is None:
        return "nothing: the event is complete"
    step = plan.step_due_at(sample.next_transition)
    label = step.transition.label if step else "resync"
    wait = (sample.next_transition - sample.at).total_seconds()
    return f"{label} at {relative(sample.next_transition, plan)} (in {max(0.0, wait):.0f}s)"


def _lag_text(observation: StepObservation, now: datetime) -> Text:
    lag = observation.lag_seconds
    if lag is not None:
        style = "green" if lag <= PROMISED_LAG_SECONDS else "yellow"
        return Text(f"✓ {lag:+.2f}s", style=style)
    if now < observation.step.transition.at + OVERRUN:
        return Text("…", style="dim")
    return Text("✗ not seen", style="bold red")


def _wanted_text(plan: DemoPlan, step: PlannedStep, name: str) -> str:
    replicas = step.replicas[name]
    return f"≥{replicas}" if may_be_raised(plan, step, name) else str(replicas)


def _table(title: str, expand: bool) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        expand=expand,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )


def timeline_table(plan: DemoPlan, observations: Sequence[StepObservation], now: datetime) -> Table:
    table = _table("Timeline: due, planned replicas, observed lag", expand=False)
    for column in ("due", "step", "phase", *plan.names):
        table.add_column(column, justify="right" if column in plan.names else "left", no_wrap=True)
    table.add_column("lag", no_wrap=True, min_width=LAG_COLUMN_WIDTH)  # a steady width as lags come in
    for observation in observations:
        step = observation.step
        table.add_row(
            relative(step.transition.at, plan),
            step.transition.label,
            str(step.transition.phase),
            *(_wanted_text(plan, step, name) for name in plan.names),
            _lag_text(observation, now),
        )
    return table


def _ready_text(state: DeploymentState | None) -> Text:
    if state is None:
        return Text("-")
    style = "green" if state.ready_replicas >= state.spec_replicas else "yellow"
    return Text(str(state.ready_replicas), style=style)


def metric_text(value: str | None) -> str:
    """The metric value the operator reported, rounded; `-` when the target has no metric or no value."""
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return value or "-"
    return f"{number:,.0f}" if math.isfinite(number) else "-"


def deployments_table(frame: Frame) -> Table:
    table = _table(f"Deployments in namespace {frame.namespace}", expand=True)
    for column in ("Deployment", "baseline", "desired", "spec", "ready", "metric"):
        table.add_column(column, justify="left" if column == "Deployment" else "right", no_wrap=True)
    table.add_column("operator's reason", no_wrap=True, overflow="ellipsis", ratio=1)
    sample = frame.latest
    for name in frame.plan.names:
        state = sample.deployments.get(name)
        target = sample.targets.get(name, TargetStatus(None, None, None, None))
        table.add_row(
            name,
            str(frame.plan.baselines[name]),
            "-" if target.desired is None else str(target.desired),
            "-" if state is None else str(state.spec_replicas),
            _ready_text(state),
            metric_text(target.metric_value),
            target.reason or "",
        )
    return table


def events_table(plan: DemoPlan, events: Sequence[EventLine]) -> Table:
    table = _table("Latest Kubernetes Events of the CampaignEvent", expand=True)
    table.add_column("when", no_wrap=True)
    table.add_column("reason", no_wrap=True)
    table.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)
    for event in events:
        style = "yellow" if event.kind == "Warning" else ""
        table.add_row(relative(event.at, plan), Text(event.reason, style=style), event.message)
    if not events:
        table.add_row("", "", Text("(none yet)", style="dim"))
    return table


def render_dashboard(frame: Frame) -> RenderableType:
    observations = observe_steps(frame.plan, frame.samples)
    return Group(
        _headline(frame),
        timeline_table(frame.plan, observations, frame.latest.at),
        deployments_table(frame),
        events_table(frame.plan, frame.events),
    )


def progress_line(plan: DemoPlan, sample: ClusterSample) -> str:
    """One line of the plain log used when the output is not a terminal."""
    states = "  ".join(
        f"{name} {state.spec_replicas} ({state.ready_replicas} Ready)"
        for name in plan.names
        if (state := sample.deployments.get(name)) is not None
    )
    nodes = f"  nodes {sample.nodes}" if sample.nodes is not None else ""
    return (
        f"{relative(sample.at, plan):>6}  {sample.phase or '(no status)':<12} {states}  "
        f"traffic {sample.traffic_rps:,.0f} req/s{nodes}"
    )


class LiveView:
    """A `rich.live.Live` table refreshed in place (on a terminal)."""

    def __init__(self, console: Console) -> None:
        self._live = Live(console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def show(self, frame: Frame) -> None:
        self._live.update(render_dashboard(frame), refresh=True)


def _visible_state(sample: ClusterSample) -> tuple[object, ...]:
    return (sample.phase, tuple(sorted(sample.deployments.items())), sample.nodes)


class ProgressLog:
    """Plain lines, one per visible change, for logs and CI (output not a terminal)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._last_state: tuple[object, ...] | None = None
        self._printed_events: set[tuple[datetime, str]] = set()

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def show(self, frame: Frame) -> None:
        state = _visible_state(frame.latest)
        if state != self._last_state:
            self._console.print(progress_line(frame.plan, frame.latest), markup=False)
            self._last_state = state
        for event in frame.events:
            if (event.at, event.message) not in self._printed_events:
                self._printed_events.add((event.at, event.message))
                self._console.print(f"{'':>6}  Event {event.reason}: {event.message}", markup=False)


def _check(ok: bool) -> str:
    return "[green]✓[/]" if ok else "[bold red]✗[/]"


def render_summary(console: Console, plan: DemoPlan, outcome: DemoOutcome, live_metric: bool) -> None:
    console.print()
    console.rule("[bold]Summary")
    console.print(timeline_table(plan, outcome.steps, plan.completes_at + OVERRUN))
    observed = sum(1 for item in outcome.steps if item.observed_at is not None)
    console.print(
        f"{_check(outcome.all_steps_observed)} Transitions observed: {observed} of {len(outcome.steps)} "
        f"(lag = first sample showing the step - due time; samples every {SAMPLE_SECONDS}s; "
        f"the operator aims at < {PROMISED_LAG_SECONDS:g}s)"
    )
    ready = ", ".join(f"{item.name} {item.ready}/{item.floor}" for item in outcome.ready_at_opening)
    verdict = "yes, every planned floor was Ready" if outcome.capacity_ready else "NO"
    console.print(
        f"{_check(outcome.capacity_ready)} Capacity Ready when the window opened: {verdict} "
        f"(Ready/floor: {ready})"
    )
    console.print(traffic_cover_line(outcome.traffic_cover, _check(outcome.traffic_cover.covered)))
    _print_metric_line(console, plan, outcome, live_metric)
    for state in outcome.end_states:
        _print_end_state(console, state)


def traffic_cover_line(cover: TrafficCover, check: str = "") -> str:
    """Ready checkout capacity at the opening against the traffic then, said plainly when it was short."""
    ready = "-" if cover.ready is None else str(cover.ready)
    head = (
        f"{check} Traffic covered at the opening: {METRIC_TARGET} {ready} Ready x {TARGET_PER_REPLICA} "
        f"req/s = {cover.capacity_rps:,.0f} req/s for {cover.traffic_rps:,.0f} req/s"
    ).lstrip()
    short_for = f"Ready capacity was below the traffic for {cover.short_seconds:.1f}s of the window"
    if cover.covered:
        return f"{head}: yes, for the whole window"
    if cover.capacity_rps < cover.traffic_rps:
        return f"{head}: NO, short by {cover.traffic_rps - cover.capacity_rps:,.0f} req/s; {short_for}"
    return f"{head}: at the opening, but {short_for}"


def _print_metric_line(console: Console, plan: DemoPlan, outcome: DemoOutcome, live_metric: bool) -> None:
    if not live_metric:
        floors = ", ".join(f"{name} {floor.replicas}" for name, floor in plan.floors.items())
        console.print(f"  Live metric: off (no Prometheus); the plain floors held: {floors}.")
        return
    wanted = math.ceil(outcome.traffic_peak / TARGET_PER_REPLICA)
    for name, peak in outcome.window_peaks.items():
        floor = plan.floors[name].replicas
        effect = f"raised {name} from its floor of {floor} to {peak}"
        if peak <= floor:
            effect = f"kept {name} at its floor of {floor}"
        console.print(
            f"  Live metric: traffic peaked at {outcome.traffic_peak:,.0f} req/s, {wanted} Pods of "
            f"{TARGET_PER_REPLICA} req/s; it {effect} replicas during the window."
        )


def _print_end_state(console: Console, state: EndState) -> None:
    relation = "=" if state.replicas == state.baseline else "≠"
    annotations = (
        "annotations removed"
        if not state.leftover_annotations
        else f"annotations LEFT: {', '.join(state.leftover_annotations)}"
    )
    console.print(
        f"{_check(state.exact)} End state: {state.name} {state.replicas} replicas {relation} "
        f"baseline {state.baseline}, {annotations}"
    )
