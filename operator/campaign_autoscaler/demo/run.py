"""Orchestration: set the stage (the cluster, Prometheus, the operator, the Deployments), apply the event,
follow it to the end with the live dashboard, write the plot and the summary, and clean everything up."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from rich.console import Console
from urllib3.exceptions import HTTPError

from campaign_autoscaler.devenv.controlplane import (
    ASSETS_ENV_VAR,
    KUBERNETES_VERSION,
    ManagedProcess,
    default_assets_dir,
    find_assets,
    free_loopback_port,
)
from campaign_autoscaler.devenv.prometheus import PrometheusError, find_prometheus

from .campaign_report import (
    DEFAULT_REPORT_PATH,
    CampaignReport,
    print_campaign_report,
    write_campaign_report,
)
from .dashboard import SAMPLE_SECONDS, Frame, LiveView, ProgressLog, clock_time, render_summary
from .environment import (
    CRD_PATH,
    DEMO_NODE_SHAPE,
    DEMO_PROVISIONER,
    DEMO_WORLD,
    READY_TIMEOUT_SECONDS,
    REAL_PODS_READY_TIMEOUT_SECONDS,
    DemoError,
    ExistingCluster,
    LiveMetric,
    TrafficFeed,
    api_client_for,
    create_deployments,
    create_event,
    create_namespace,
    install_crd,
    operator_argv,
    shown_command,
    start_control_plane,
    start_live_metric,
    start_operator,
    throwaway_namespace,
)
from .observe import ClusterReader, ClusterSample, DemoOutcome, EventLine, settled, summarize
from .plot import write_demo_plot
from .scenario import (
    DEPLOYMENTS,
    FULL_TIMELINE,
    METRIC_TARGET,
    NAMESPACE,
    OVERRUN,
    SHORT_TIMELINE,
    TARGET_PER_REPLICA,
    TRAFFIC_MULTIPLIER,
    TRAFFIC_SELECTOR,
    CompressedTraffic,
    DemoPlan,
    DemoTimeline,
    build_plan,
    compress_traffic,
    event_manifest,
    opening_time,
)

DEFAULT_PLOT_PATH = "campaign-demo.png"
REFRESH_SECONDS = 0.5
MAX_FAILED_SAMPLES = 40  # 10 s of an unreachable API server ends the demo
SETTLE_SECONDS = 2.0  # keep watching this long after the end state is reached, so it is seen


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DemoOptions:
    timeline: DemoTimeline = FULL_TIMELINE
    plot_path: Path = Path(DEFAULT_PLOT_PATH)
    report_path: Path = Path(DEFAULT_REPORT_PATH)
    use_prometheus: bool = True
    cluster: ExistingCluster | None = None  # None: the embedded control plane


@dataclass(frozen=True)
class DemoReport:
    plan: DemoPlan
    outcome: DemoOutcome
    live_metric: bool
    plot_path: Path | None
    plot_problem: str | None
    campaign_report: CampaignReport


class Stopwatch:
    """How long each stage of the demo took."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}

    @contextlib.contextmanager
    def lap(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.laps[name] = time.monotonic() - started


@contextlib.contextmanager
def _step(console: Console, stopwatch: Stopwatch, name: str, doing: str, done: str) -> Iterator[None]:
    """A spinner while the step runs, then one line saying what is now up and how long it took."""
    with console.status(f"{doing}…"), stopwatch.lap(name):
        yield
    console.print(f"[green]✓[/] {done} [dim]({stopwatch.laps[name]:.1f}s)[/]")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signal_handlers(handler: Any, *signals: signal.Signals) -> Iterator[None]:
    """Install `handler` for `signals` (only the main thread may), restoring the previous ones after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number in signals}
    try:
        yield
    finally:
        for number, old_handler in previous.items():
            signal.signal(number, old_handler)


@contextlib.contextmanager
def _background_logs_to(path: Path) -> Iterator[None]:
    """Warnings of the background threads (Pod simulator, HTTP retries) go to a file, not over the table."""
    handler = logging.FileHandler(path)
    loggers = [logging.getLogger(name) for name in ("campaign_autoscaler.devenv", "urllib3", "kubernetes")]
    previous = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in zip(loggers, previous, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate
        handler.close()


def _say_without_metric(console: Console, why: str) -> None:
    console.print(
        f"[yellow]![/] {why}\n  Continuing without the live metric: checkout holds its plain floor "
        f"({TRAFFIC_MULTIPLIER:g} x its baseline) instead of also following the traffic."
    )


def _live_metric_or_none(
    stack: contextlib.ExitStack, console: Console, stopwatch: Stopwatch, wanted: bool, operator_address: str
) -> LiveMetric | None:
    if not wanted:
        _say_without_metric(console, "Prometheus is off (--no-prometheus).")
        return None
    if find_prometheus() is None:
        _say_without_metric(
            console,
            "The prometheus binary was not found: install it with `apt-get install -y prometheus` "
            "(the packaged service need not run) to see the live metric.",
        )
        return None
    try:
        with _step(
            console,
            stopwatch,
            "Prometheus",
            "Starting Prometheus and the synthetic traffic exporter",
            f"Prometheus up, scraping {TRAFFIC_SELECTOR} and the operator's /metrics every second",
        ):
            return start_live_metric(stack, operator_address)
    except (PrometheusError, TimeoutError) as err:
        _say_without_metric(console, f"Prometheus did not start: {err}")
        return None


class CampaignFollower:
    """Samples the cluster until the event completed and settled (or overran), refreshing the view."""

    def __init__(
        self,
        reader: ClusterReader,
        traffic: CompressedTraffic,
        operator: ManagedProcess,
        view: LiveView | ProgressLog,
        frame: Frame,
    ) -> None:
        self._reader = reader
        self._traffic = traffic
        self._operator = operator
        self._view = view
        self._frame = frame  # plan, timeline, namespace and metric mode; samples and events are filled in
        self._samples: list[ClusterSample] = []
        self._events: tuple[EventLine, ...] = ()
        self._failures = 0
        self._shown_at = 0.0
        self._settled_at: datetime | None = None

    def run(self) -> list[ClusterSample]:
        while not self._done():
            self._sample()
            if time.monotonic() - self._shown_at >= REFRESH_SECONDS:
                self._show()
            self._check_operator()
            time.sleep(SAMPLE_SECONDS)
        self._show()
        return self._samples

    def _done(self) -> bool:
        if not self._samples:
            return False
        plan, latest = self._frame.plan, self._samples[-1]
        if self._settled_at is None and settled(plan, latest):
            self._settled_at = latest.at
        if self._settled_at is not None:
            return (latest.at - self._settled_at).total_seconds() >= SETTLE_SECONDS
        return latest.at > plan.completes_at + OVERRUN

    def _sample(self) -> None:
        try:
            self._samples.append(self._reader.sample(self._traffic))
            self._failures = 0
        except (ApiException, HTTPError, OSError) as err:
            self._failures += 1
            if self._failures >= MAX_FAILED_SAMPLES:
                raise DemoError(f"The API server stopped answering: {err}") from err

    def _show(self) -> None:
        if not self._samples:
            return
        with contextlib.suppress(ApiException, HTTPError, OSError):
            self._events = self._reader.operator_events()
        frame = self._frame
        self._view.show(
            Frame(
                frame.plan,
                frame.timeline,
                frame.namespace,
                tuple(self._samples),
                self._events,
                frame.live_metric,
            )
        )
        self._shown_at = time.monotonic()

    def _check_operator(self) -> None:
        if not self._operator.is_running():
            raise DemoError(str(self._operator.failure("exited while the event was running")))


# --- the whole demo ---------------------------------------------------------------------------------------
def _where(options: DemoOptions) -> str:
    if options.cluster is None:
        return "on a throw-away local cluster"
    context = f", context {options.cluster.context}" if options.cluster.context else ""
    return f"in a throw-away namespace of the cluster of {options.cluster.kubeconfig}{context}"


def _print_intro(console: Console, options: DemoOptions) -> None:
    timeline = options.timeline
    console.rule("[bold]campaign-autoscaler demo")
    console.print(
        f"The 9.9 sale, compressed to {timeline.title} ({timeline.pace()}), {_where(options)}.\n"
        "The operator below is the real one, in its own process; the demo only creates the Deployments and "
        "the CampaignEvent, then watches.\n"
    )


def _print_event(
    console: Console, plan: DemoPlan, manifest: Mapping[str, Any], traffic: CompressedTraffic
) -> None:
    from rich.syntax import Syntax

    metadata = manifest["metadata"]
    console.print(f"[green]✓[/] Applied CampaignEvent {metadata['namespace']}/{metadata['name']}:")
    text = yaml.safe_dump({"spec": manifest["spec"]}, sort_keys=False).rstrip()
    console.print(Syntax(text, "yaml", background_color="default"))
    window = plan.window
    console.print(
        f"  Scaling starts at {clock_time(plan.scaling_starts_at)}, the window is open "
        f"{clock_time(window.start)} to {clock_time(window.end)}, baselines are back by "
        f"{clock_time(plan.completes_at)}. Planned floors:"
    )
    for name, floor in plan.floors.items():
        raised = " (the live metric may raise it)" if name in plan.metric_targets else ""
        console.print(f"    {name}: {plan.baselines[name]} -> {floor.replicas}  ({floor.reason}){raised}")
    console.print(f"  {planned_cover_line(plan, traffic)}")
    console.print()


def planned_cover_line(plan: DemoPlan, traffic: CompressedTraffic) -> str:
    """What checkout's floor serves against the traffic expected when the window opens."""
    floor = plan.floors[METRIC_TARGET].replicas
    capacity, expected = floor * TARGET_PER_REPLICA, traffic.rps_at(plan.window.start)
    verdict = "covers it" if capacity >= expected else f"is SHORT by {expected - capacity:,.0f} req/s"
    return (
        f"At the opening {METRIC_TARGET}'s floor of {floor} Pods x {TARGET_PER_REPLICA} req/s = "
        f"{capacity:,.0f} req/s; the traffic then is {expected:,.0f} req/s: the floor {verdict}."
    )


def _write_plot(
    plan: DemoPlan, samples: Sequence[ClusterSample], options: DemoOptions, live_metric: bool, namespace: str
) -> str | None:
    """Write the PNG; returns why it could not be written, or None."""
    try:
        write_demo_plot(plan, samples, options.plot_path, options.timeline, live_metric, namespace)
    except ImportError:
        return "matplotlib is not installed: pip install 'campaign-autoscaler[demo]'"
    except OSError as err:
        return f"could not write {options.plot_path}: {err}"
    return None


@dataclass(frozen=True)
class Environment:
    """What the set-up started: the cluster's client and namespace, the operator, and Prometheus when it
    runs."""

    api_client: client.ApiClient
    namespace: str
    operator: ManagedProcess
    metric: LiveMetric | None


@dataclass(frozen=True)
class _Cluster:
    api_client: client.ApiClient
    kubeconfig: Path
    context: str | None
    namespace: str
    existing: bool


def _embedded_cluster(
    stack: contextlib.ExitStack, options: DemoOptions, console: Console, assets: Path, stopwatch: Stopwatch
) -> _Cluster:
    ready_after = options.timeline.pod_ready_after
    with _step(
        console,
        stopwatch,
        "control plane",
        "Starting a local control plane",
        f"Control plane up: etcd, kube-apiserver, kube-controller-manager, kube-scheduler "
        f"v{KUBERNETES_VERSION}; {DEMO_WORLD.nodes} Nodes of {DEMO_NODE_SHAPE.pods} Pods, one more "
        f"{DEMO_PROVISIONER.provisioning_delay:g}s after Pods find no room; "
        f"Pods turn Ready {ready_after:g}s after they are placed",
    ):
        plane = start_control_plane(stack, assets, options.timeline)
    api_client = stack.enter_context(api_client_for(plane.kubeconfig_path))
    return _Cluster(api_client, plane.kubeconfig_path, None, NAMESPACE, existing=False)


def _prepare_namespace(
    stack: contextlib.ExitStack, cluster: _Cluster, console: Console, stopwatch: Stopwatch
) -> None:
    if not cluster.existing:
        with _step(
            console,
            stopwatch,
            "CRD",
            "Installing the CRD",
            f"CRD installed from crds/, namespace {NAMESPACE}",
        ):
            install_crd(stack, cluster.api_client, delete_after=False)
            create_namespace(stack, cluster.api_client, cluster.namespace, delete_after=False)
        return
    created: list[bool] = []
    with _step(
        console,
        stopwatch,
        "namespace",
        "Checking the CRD and creating a throw-away namespace",
        f"Namespace {cluster.namespace} created (deleted at the end, with everything in it)",
    ):
        created.append(install_crd(stack, cluster.api_client, delete_after=True))
        create_namespace(stack, cluster.api_client, cluster.namespace, delete_after=True)
    if created[0]:
        console.print(f"[green]✓[/] CRD installed from {CRD_PATH} (deleted at the end: the demo created it)")
    else:
        console.print("[green]✓[/] The cluster already serves CampaignEvents: its CRD is left as it is")


def _set_up(
    stack: contextlib.ExitStack,
    options: DemoOptions,
    console: Console,
    assets: Path | None,
    workdir: Path,
    stopwatch: Stopwatch,
) -> Environment:
    if options.cluster is None:
        assert assets is not None
        cluster = _embedded_cluster(stack, options, console, assets, stopwatch)
    else:
        existing = options.cluster
        cluster = _Cluster(
            existing.api_client, existing.kubeconfig, existing.context, throwaway_namespace(), existing=True
        )
    metrics_port = free_loopback_port()  # the operator's /metrics, for Prometheus and the report
    metric = _live_metric_or_none(
        stack, console, stopwatch, options.use_prometheus, f"127.0.0.1:{metrics_port}"
    )
    _prepare_namespace(stack, cluster, console, stopwatch)
    argv = operator_argv(
        cluster.kubeconfig,
        options.timeline,
        metric.server.url if metric else None,
        cluster.namespace,
        cluster.context,
        metrics_port=metrics_port if metric else None,
    )
    log_path = workdir / "operator.log"
    operator = start_operator(stack, argv, log_path)
    console.print(f"[green]✓[/] Operator started, its log in {log_path}:")
    console.print(f"    [bold]{shown_command(argv)}[/]")
    baselines = ", ".join(f"{d.name} {d.replicas} replicas" for d in DEPLOYMENTS)
    with _step(
        console,
        stopwatch,
        "Deployments",
        "Creating the Deployments",
        f"Deployments Ready at their baselines: {baselines} (checkout labelled campaign.tier=checkout)",
    ):
        timeout = REAL_PODS_READY_TIMEOUT_SECONDS if cluster.existing else READY_TIMEOUT_SECONDS
        create_deployments(cluster.api_client, cluster.namespace, timeout)
    return Environment(cluster.api_client, cluster.namespace, operator, metric)


def _run_campaign(
    stack: contextlib.ExitStack,
    options: DemoOptions,
    console: Console,
    clock: Callable[[], datetime],
    environment: Environment,
    stopwatch: Stopwatch,
) -> DemoReport:
    """Apply the event, follow it to the end, write the plot and the campaign report (before the clean-up
    deletes the event)."""
    live_metric = environment.metric is not None
    opening = opening_time(clock(), options.timeline)
    manifest = event_manifest(options.timeline, opening, live_metric, environment.namespace)
    plan = build_plan(manifest)
    traffic = compress_traffic(options.timeline, opening)
    if environment.metric is not None:
        stack.enter_context(TrafficFeed(environment.metric.exporter, traffic, clock, environment.namespace))
    releases = environment.operator if options.cluster is not None else None
    create_event(stack, environment.api_client, manifest, delete_after=releases)
    _print_event(console, plan, manifest, traffic)
    frame = Frame(plan, options.timeline, environment.namespace, (), (), live_metric)
    reader = ClusterReader(
        environment.api_client, environment.namespace, clock, count_nodes=options.cluster is None
    )
    view = LiveView(console) if console.is_terminal else ProgressLog(console)
    with stopwatch.lap("campaign"), view:
        samples = CampaignFollower(reader, traffic, environment.operator, view, frame).run()
    problem = _write_plot(plan, samples, options, live_metric, environment.namespace)
    plot_path = None if problem else options.plot_path
    with stopwatch.lap("report"), console.status("Waiting for status.summary, writing the campaign report…"):
        campaign_report = write_campaign_report(
            environment.api_client,
            environment.namespace,
            reader,
            environment.metric.server.url if environment.metric is not None else None,
            options.report_path.resolve(),
            now=clock(),
        )
    return DemoReport(plan, summarize(plan, samples), live_metric, plot_path, problem, campaign_report)


def _clean_up(
    stack: contextlib.ExitStack, console: Console, stopwatch: Stopwatch, options: DemoOptions
) -> None:
    """Stop and delete everything, newest first; a second Ctrl-C must not leave half of it running."""
    doing = (
        "Stopping the operator, Prometheus and the control plane"
        if options.cluster is None
        else "Deleting the CampaignEvent and the namespace, stopping the operator and Prometheus"
    )
    with (
        _signal_handlers(signal.SIG_IGN, signal.SIGINT, signal.SIGTERM),
        stopwatch.lap("clean-up"),
        console.status(f"{doing}…"),
    ):
        stack.close()
    done = "Stopped" if options.cluster is None else "Stopped or deleted"
    console.print(
        f"[green]✓[/] {done} everything the demo started [dim]({stopwatch.laps['clean-up']:.1f}s)[/]"
    )


def _timings(stopwatch: Stopwatch, total: float) -> str:
    laps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in stopwatch.laps.items())
    return f"Timings: {laps}; total {total:.1f}s"


def _finish(console: Console, report: DemoReport, stopwatch: Stopwatch, total: float) -> bool:
    render_summary(console, report.plan, report.outcome, report.live_metric)
    if report.plot_path is not None:
        console.print(f"[green]✓[/] Plot: {report.plot_path.resolve()}")
    else:
        console.print(f"[yellow]![/] No plot: {report.plot_problem}")
    print_campaign_report(console, report.campaign_report)
    console.print(_timings(stopwatch, total))
    outcome = report.outcome
    if outcome.succeeded:
        console.print(
            "[bold green]Result: PASS[/] - every transition happened, capacity was Ready when the window "
            "opened and covered the traffic, and every Deployment is back exactly at its baseline."
        )
        return True
    failed = [
        what
        for what, ok in (
            ("a transition was not observed", outcome.all_steps_observed),
            ("capacity was not Ready when the window opened", outcome.capacity_ready),
            ("the Ready capacity did not cover the traffic", outcome.traffic_cover.covered),
            ("the end state is not the baseline", outcome.end_state_exact),
        )
        if not ok
    ]
    console.print(f"[bold red]Result: FAILED[/] - {'; '.join(failed)}.")
    return False


def run_demo(options: DemoOptions, console: Console, clock: Callable[[], datetime] = _utc_now) -> int:
    """Run the whole demo; 0 only if it ended exactly at the baselines (see DemoOutcome.succeeded)."""
    started = time.monotonic()
    _print_intro(console, options)
    assets = None
    if options.cluster is None:
        assets = _assets_or_say_how(console)
        if assets is None:
            return 1
    workdir = Path(tempfile.mkdtemp(prefix="campaign-demo-"))
    operator_log = workdir / "operator.log"
    stopwatch = Stopwatch()
    stack = contextlib.ExitStack()
    try:
        with (
            _signal_handlers(_raise_interrupt, signal.SIGTERM),
            _background_logs_to(workdir / "environment.log"),
        ):
            try:
                environment = _set_up(stack, options, console, assets, workdir, stopwatch)
                report = _run_campaign(stack, options, console, clock, environment, stopwatch)
            finally:
                _clean_up(stack, console, stopwatch, options)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted[/]: everything the demo started has been stopped.")
        _keep_only(workdir, operator_log, console)
        return 130
    except (DemoError, ApiException, HTTPError, OSError) as err:
        console.print(f"[bold red]✗ The demo failed:[/] {_describe(err)}")
        console.print(f"  Logs kept in {workdir}")
        return 1
    passed = _finish(console, report, stopwatch, time.monotonic() - started)
    if passed:
        _keep_only(workdir, operator_log, console)
    else:
        console.print(f"  Logs kept in {workdir} (the operator's: {operator_log})")
    return 0 if passed else 1


def _keep_only(workdir: Path, operator_log: Path, console: Console) -> None:
    """Remove the demo's scratch files but the operator's log, which was pointed at when it started."""
    if not operator_log.exists():
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for path in workdir.iterdir():
        if path != operator_log:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    console.print(f"  The operator's log is kept in {operator_log}")


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):  # its str() carries the whole HTTP response
        return f"the API server answered {error.status} {error.reason}: {error.body}"
    return str(error)


def _assets_or_say_how(console: Console) -> Path | None:
    """The control plane binaries, or None after saying how to get them."""
    assets = find_assets()
    if assets is None:
        override = os.environ.get(ASSETS_ENV_VAR)
        looked_in = f"${ASSETS_ENV_VAR}={override}" if override else str(default_assets_dir())
        console.print(
            "[bold red]✗[/] The local control plane binaries (etcd, kube-apiserver, kube-controller-manager "
            f"v{KUBERNETES_VERSION}) are missing (looked in {looked_in}).\n"
            "  Get them with [bold]make testenv[/] (a few minutes, once; cached), then run the demo again, "
            "or run it in a cluster you have with [bold]--kubeconfig FILE[/]."
        )
    return assets


def run_demo_command(
    short: bool,
    plot: str,
    no_prometheus: bool,
    cluster: ExistingCluster | None = None,
    report: str = DEFAULT_REPORT_PATH,
) -> int:
    """`campaign-autoscaler demo` with its parsed flags; `cluster` for `--kubeconfig`."""
    import sys

    options = DemoOptions(
        timeline=SHORT_TIMELINE if short else FULL_TIMELINE,
        plot_path=Path(plot),
        report_path=Path(report),
        use_prometheus=not no_prometheus,
        cluster=cluster,
    )
    terminal = sys.stdout.isatty()
    # Piped output (CI logs) keeps each line whole; tables get a fixed, readable width.
    console = Console(highlight=False, width=None if terminal else 120, soft_wrap=not terminal)
    return run_demo(options, console)
