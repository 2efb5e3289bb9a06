"""`campaign-autoscaler demo`: the whole command end to end, its clean-up, and the logic it reports with.

The end-to-end tests run the real command in a subprocess and follow its child processes through /proc, so
that only the demo's own etcd, kube-apiserver, Prometheus and operator are checked afterwards (the test
session's control plane, and anything else on the machine, are left out of the comparison).
"""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes
import pytest

from campaign_autoscaler.demo.dashboard import metric_text, traffic_cover_line
from campaign_autoscaler.demo.observe import (
    ClusterSample,
    DeploymentState,
    end_states,
    observe_steps,
    ready_at_opening,
    settled,
    summarize,
    traffic_cover,
)
from campaign_autoscaler.demo.run import planned_cover_line
from campaign_autoscaler.demo.scenario import (
    FULL_TIMELINE,
    SHORT_TIMELINE,
    DemoPlan,
    build_plan,
    compress_traffic,
    event_manifest,
)
from campaign_autoscaler.devenv.controlplane import MISSING_ASSETS_HELP, ControlPlane, find_assets
from campaign_autoscaler.devenv.prometheus import find_prometheus
from campaign_autoscaler.planning import BASELINE_ANNOTATION, Phase
from tests.integration.conftest import require

DEMO_TIMEOUT_SECONDS = 240
WATCHED_BINARIES = frozenset({"etcd", "kube-apiserver", "kube-controller-manager", "prometheus"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OPENING = datetime(2026, 9, 9, 12, 0, tzinfo=UTC)


# --- the demo's own processes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChildProcess:
    pid: int
    start_ticks: int  # field 22 of /proc/PID/stat: tells a process from a later one reusing its pid
    name: str


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # the command name in parentheses may hold spaces


def _process_name(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [word.decode(errors="replace") for word in argv if word]
    if "campaign_autoscaler" in words and "run" in words:
        return "operator"
    name = Path(words[0]).name if words else ""
    return name if name in WATCHED_BINARIES else None


def children_of(parent_pid: int) -> set[ChildProcess]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or int(fields[1]) != parent_pid:  # fields[1] is the parent pid
            continue
        name = _process_name(int(entry.name))
        if name is not None:
            found.add(ChildProcess(int(entry.name), int(fields[19]), name))
    return found


def still_running(child: ChildProcess) -> bool:
    fields = _stat_fields(child.pid)
    return fields is not None and int(fields[19]) == child.start_ticks and fields[0] != "Z"


class ChildWatcher:
    """Records every watched child of one process while it runs (the demo starts and stops them)."""

    def __init__(self, parent_pid: int) -> None:
        self.parent_pid = parent_pid
        self.seen: set[ChildProcess] = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChildWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.wait(0.1):
            self.seen |= children_of(self.parent_pid)


def _restore_default_sigint() -> None:
    # A shell running the tests in the background may ignore SIGINT; Python then keeps ignoring it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_demo(*arguments: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "campaign_autoscaler", "demo", *arguments],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_restore_default_sigint,
    )


def run_demo(*arguments: str, cwd: Path) -> tuple[int, str, ChildWatcher]:
    """Run the demo to its end, watching its children; its exit code, its output and what it started."""
    demo = start_demo(*arguments, cwd=cwd)
    with ChildWatcher(demo.pid) as watcher:
        try:
            output, _ = demo.communicate(timeout=DEMO_TIMEOUT_SECONDS)
        finally:
            if demo.poll() is None:
                demo.kill()
    print(output)
    return demo.returncode, output, watcher


@pytest.fixture
def control_plane_assets() -> None:
    require(find_assets() is not None, MISSING_ASSETS_HELP)


def assert_nothing_left(watcher: ChildWatcher, expected: set[str]) -> None:
    names = {child.name for child in watcher.seen}
    assert expected <= names, f"the demo's children were not all seen: {sorted(names)}"
    left = sorted(f"{child.name} (pid {child.pid})" for child in watcher.seen if still_running(child))
    assert not left, f"the demo left processes running: {left}"


def assert_campaign_report(output: str, path: Path, *, scraped: bool) -> None:
    """The demo wrote the campaign report at `path`, named it by its absolute path, and printed its summary;
    with Prometheus, from the operator's own series (Prometheus scraped its /metrics), else from the
    status."""
    assert f"✓ Report: {path}" in output and path.is_absolute()
    assert "Window of CampaignEvent sale-9-9 completed: 2/2 target(s) Ready at start" in output
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>Campaign report: " in page and "/sale-9-9</title>" in page
    assert '<h2 id="target-checkout">checkout</h2>' in page
    assert '<h2 id="target-order-tracking">order-tracking</h2>' in page
    if scraped:
        # Peak desired and peak Ready of checkout, folded from the operator's series; nothing missing.
        assert "<tr><td>checkout</td><td>8</td><td>8</td><td>2500</td>" in page
        assert 'class="problems"' not in page, page[:4000]
        assert page.count('src="data:image/png;base64,') == 2, "one embedded plot per target"
        assert len(page) > 20_000
    else:
        assert "no Prometheus to read: the figures come from the event&#x27;s status alone" in page


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


# --- end to end ---------------------------------------------------------------------------------------------
@pytest.mark.timeout(DEMO_TIMEOUT_SECONDS + 30)
def test_short_demo_ends_exactly_at_the_baselines_writes_the_plot_and_the_report_and_leaves_nothing_running(
    control_plane_assets: None, tmp_path: Path
):
    plot = Path("out") / "x.png"  # relative, as a user would pass it
    report = Path("out") / "report.html"
    started = time.monotonic()
    code, output, watcher = run_demo("--short", "--plot", str(plot), "--report", str(report), cwd=tmp_path)
    elapsed = time.monotonic() - started

    assert code == 0, output[-4000:]
    steps = len(build_plan(event_manifest(SHORT_TIMELINE, OPENING, live_metric=True)).steps)
    assert f"✓ Transitions observed: {steps} of {steps}" in output
    assert "✓ Capacity Ready when the window opened: yes" in output
    assert "✓ End state: order-tracking 4 replicas = baseline 4, annotations removed" in output
    assert "✓ End state: checkout 3 replicas = baseline 3, annotations removed" in output
    assert "Result: PASS" in output
    assert (
        "floor of 8 Pods x 320 req/s = 2,560 req/s; the traffic then is 2,500 req/s: the floor covers it"
        in output
    )
    assert (
        "✓ Traffic covered at the opening: checkout 8 Ready x 320 req/s = 2,560 req/s for 2,500 req/s: yes, "
        "for the whole window"
    ) in output
    if find_prometheus() is not None:
        assert "it kept checkout at its floor of 8 replicas" in output, (
            "2,500 req/s at 320 req/s wants 8 Pods"
        )
    else:
        assert "Continuing without the live metric" in output
    assert f"✓ Plot: {tmp_path / plot}" in output
    log = re.search(r"The operator's log is kept in (\S+)", output)
    assert log and Path(log.group(1)).is_absolute() and Path(log.group(1)).stat().st_size > 0
    Path(log.group(1)).unlink()
    Path(log.group(1)).parent.rmdir()
    assert png_size(tmp_path / plot) == (1200, 800)
    assert_campaign_report(output, tmp_path / report, scraped=find_prometheus() is not None)
    assert elapsed < 150, f"the short demo took {elapsed:.0f}s"
    expected = {"etcd", "kube-apiserver", "kube-controller-manager", "operator"}
    assert_nothing_left(watcher, expected | ({"prometheus"} if find_prometheus() else set()))


@pytest.mark.timeout(DEMO_TIMEOUT_SECONDS + 60)
def test_the_demo_runs_in_an_existing_cluster_and_removes_everything_it_created(
    control_plane_assets: None, tmp_path: Path
):
    # A control plane started apart from the demo, as a user's cluster would be: without the CRD, with the
    # Pod readiness simulator standing in for the kubelets it does not have.
    with ControlPlane(find_assets()) as plane:
        api_client = kubernetes.config.new_client_from_config(
            config_file=str(plane.kubeconfig_path), persist_config=False
        )
        core = kubernetes.client.CoreV1Api(api_client)
        extensions = kubernetes.client.ApiextensionsV1Api(api_client)
        namespaces_before = {ns.metadata.name for ns in core.list_namespace().items}
        code, output, watcher = run_demo(
            "--short", "--kubeconfig", str(plane.kubeconfig_path), "--plot", "x.png", cwd=tmp_path
        )
        namespaces_after = {ns.metadata.name for ns in core.list_namespace().items}
        crds_after = [crd.metadata.name for crd in extensions.list_custom_resource_definition().items]
        api_client.close()

    assert code == 0, output[-4000:]
    namespace = re.search(r"Namespace (campaign-demo-[0-9a-f]{6}) created", output)
    assert namespace, output[:3000]
    assert f"Applied CampaignEvent {namespace.group(1)}/sale-9-9" in output
    assert "CRD installed from" in output and "deleted at the end: the demo created it" in output
    assert "Result: PASS" in output
    assert "✓ Traffic covered at the opening: checkout 8 Ready" in output
    assert_campaign_report(output, tmp_path / "campaign-report.html", scraped=find_prometheus() is not None)
    assert namespaces_after == namespaces_before, "the throw-away namespace is deleted"
    assert "campaignevents.autoscaling.campaigns.dev" not in crds_after, "the CRD the demo created is deleted"
    # No control plane of its own: only the operator (and Prometheus) were started.
    names = {child.name for child in watcher.seen}
    assert names & {"etcd", "kube-apiserver", "kube-controller-manager"} == set(), names
    assert_nothing_left(watcher, {"operator"} | ({"prometheus"} if find_prometheus() else set()))


def test_a_bad_kubeconfig_for_the_demo_is_one_line(tmp_path: Path):
    garbage = tmp_path / "kubeconfig"
    garbage.write_text("just: [a, list]\n")
    demo = subprocess.run(
        [sys.executable, "-m", "campaign_autoscaler", "demo", "--kubeconfig", str(garbage)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert demo.returncode == 2
    assert demo.stderr.startswith(f"error: {garbage}: not a usable kubeconfig"), demo.stderr
    assert len(demo.stderr.strip().splitlines()) == 1 and not demo.stdout


def _wait_for_output(log: Path, marker: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if marker in text:
            return text
        time.sleep(0.1)
    return log.read_text(errors="replace") if log.exists() else ""


@pytest.mark.timeout(DEMO_TIMEOUT_SECONDS)
def test_an_operator_that_dies_in_an_existing_cluster_still_leaves_nothing_there(
    control_plane_assets: None, tmp_path: Path
):
    log = tmp_path / "demo.log"
    with ControlPlane(find_assets()) as plane:
        api_client = kubernetes.config.new_client_from_config(
            config_file=str(plane.kubeconfig_path), persist_config=False
        )
        core = kubernetes.client.CoreV1Api(api_client)
        namespaces_before = {ns.metadata.name for ns in core.list_namespace().items}
        with log.open("w") as output:
            demo = subprocess.Popen(
                [sys.executable, "-m", "campaign_autoscaler", "demo", "--short", "--no-prometheus",
                 "--kubeconfig", str(plane.kubeconfig_path), "--plot", "x.png"],
                cwd=tmp_path,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        try:
            head = _wait_for_output(log, "PreScaling", timeout=120)
            assert "PreScaling" in head, head  # the operator has claimed: its finalizer is on the event
            (operator,) = [child for child in children_of(demo.pid) if child.name == "operator"]
            os.kill(operator.pid, signal.SIGKILL)
            demo.wait(timeout=120)
        finally:
            if demo.poll() is None:
                demo.kill()
        namespaces_after = {ns.metadata.name for ns in core.list_namespace().items}
        api_client.close()
    text = log.read_text(errors="replace")
    print(text)

    assert demo.returncode == 1, text[-4000:]
    assert "The demo failed" in text and "exited while the event was running" in text
    assert namespaces_after == namespaces_before, "the namespace went, the dead operator's finalizer with it"


@pytest.mark.timeout(DEMO_TIMEOUT_SECONDS)
def test_ctrl_c_mid_campaign_stops_everything_the_demo_started(control_plane_assets: None, tmp_path: Path):
    log = tmp_path / "demo.log"
    with log.open("w") as output:
        # The output goes to a file, not a pipe: nothing the demo prints while it stops can be lost unread.
        demo = subprocess.Popen(
            [sys.executable, "-m", "campaign_autoscaler", "demo", "--short", "--plot", "x.png"],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_restore_default_sigint,
        )
    with ChildWatcher(demo.pid) as watcher:
        try:
            head = _wait_for_output(log, "Applied CampaignEvent", timeout=120)
            assert "Applied CampaignEvent" in head, head
            head = _wait_for_output(log, "PreScaling", timeout=60)
            assert "PreScaling" in head, head  # mid-campaign: the operator has scaled
            demo.send_signal(signal.SIGINT)
            demo.wait(timeout=60)
        finally:
            if demo.poll() is None:
                demo.kill()
    text = log.read_text(errors="replace")
    rest = text[len(head) :]
    print(text)

    assert demo.returncode == 130, rest[-4000:]
    assert "Interrupted: everything the demo started has been stopped." in rest
    assert not (tmp_path / "x.png").exists()
    assert not (tmp_path / "campaign-report.html").exists(), "no report of an interrupted campaign"
    assert_nothing_left(watcher, {"etcd", "kube-apiserver", "kube-controller-manager", "operator"})


# --- the logic the summary rests on (no cluster) -----------------------------------------------------------
def test_the_compressed_timelines_fit_their_budgets():
    assert FULL_TIMELINE.total <= timedelta(minutes=2)  # + ~25 s start-up and clean-up: under 3 minutes
    assert SHORT_TIMELINE.total < timedelta(seconds=60)
    for timeline in (FULL_TIMELINE, SHORT_TIMELINE):
        step_gap = timeline.lead_time / timeline.ramp_up_steps
        assert timedelta(seconds=timeline.pod_ready_after) < step_gap, (
            "the last step's Pods are Ready in time"
        )


def _plan(live_metric: bool = True) -> DemoPlan:
    return build_plan(event_manifest(FULL_TIMELINE, OPENING, live_metric))


def test_the_plan_follows_the_api_semantics():
    plan = _plan()
    assert {name: floor.replicas for name, floor in plan.floors.items()} == {
        "order-tracking": 10,
        "checkout": 8,
    }
    assert plan.metric_targets == {"checkout"}
    assert plan.scaling_starts_at == OPENING - FULL_TIMELINE.lead_time
    labels = [step.transition.label for step in plan.steps]
    assert labels == [
        "ramp-up 1/3", "ramp-up 2/3", "ramp-up 3/3", "window opens", "window closes",
        "ramp-down 1/3", "ramp-down 2/3", "completed",
    ]  # fmt: skip
    assert [step.replicas["order-tracking"] for step in plan.steps] == [6, 8, 10, 10, 10, 8, 6, 4]
    assert plan.steps[-1].replicas == {"order-tracking": 4, "checkout": 3}
    assert not _plan(live_metric=False).metric_targets


def test_the_traffic_replays_the_9_9_curve_sixty_times_faster():
    traffic = compress_traffic(FULL_TIMELINE, OPENING)
    before, at_opening = traffic.rps_at(OPENING - timedelta(seconds=30)), traffic.rps_at(OPENING)
    assert 800 < before < 1000, "a normal evening around midnight in Jakarta"
    assert at_opening == 2500, "the reported +150 %"
    assert traffic.rps_at(OPENING + timedelta(seconds=19)) == 2500, "the surge holds 20 minutes"
    assert traffic.rps_at(OPENING + FULL_TIMELINE.window + timedelta(seconds=1)) < 1000, "the sale is over"


def _sample(
    plan: DemoPlan, at: datetime, phase: Phase | None, replicas: dict[str, int], **extra
) -> ClusterSample:
    annotations = extra.get("annotations", ())
    ready = extra.get("ready", replicas)
    deployments = {name: DeploymentState(count, ready[name], annotations) for name, count in replicas.items()}
    return ClusterSample(at, str(phase) if phase else None, None, deployments, {}, extra.get("rps", 1000.0))


def test_a_step_is_observed_at_the_first_sample_showing_its_phase_and_replicas():
    plan = _plan()
    first = plan.steps[0]  # ramp-up 1/3: order-tracking 6, checkout at least 5
    due = first.transition.at
    samples = [
        _sample(plan, due - timedelta(seconds=5), Phase.PENDING, {"order-tracking": 4, "checkout": 3}),
        _sample(plan, due + timedelta(seconds=0.2), Phase.PENDING, {"order-tracking": 6, "checkout": 5}),
        _sample(plan, due + timedelta(seconds=0.4), Phase.PRE_SCALING, {"order-tracking": 6, "checkout": 6}),
    ]
    observations = observe_steps(plan, samples)
    assert observations[0].lag_seconds == pytest.approx(0.4)  # the phase came with the second sample
    assert all(item.observed_at is None for item in observations[1:])


def test_a_metric_target_may_be_above_its_step_but_not_below_it():
    plan = _plan()
    step = plan.steps[0]
    at = step.transition.at + timedelta(seconds=0.3)
    above = _sample(plan, at, Phase.PRE_SCALING, {"order-tracking": 6, "checkout": 9})
    below = _sample(plan, at, Phase.PRE_SCALING, {"order-tracking": 6, "checkout": 3})
    order_tracking_above = _sample(plan, at, Phase.PRE_SCALING, {"order-tracking": 7, "checkout": 5})
    assert observe_steps(plan, [above])[0].observed_at == at
    assert observe_steps(plan, [below])[0].observed_at is None
    assert observe_steps(plan, [order_tracking_above])[0].observed_at is None


def test_capacity_at_the_opening_is_read_from_the_last_sample_before_it():
    plan = _plan()
    floors = {"order-tracking": 10, "checkout": 8}
    ready = [
        _sample(
            plan, OPENING - timedelta(seconds=1), Phase.PRE_SCALING, floors, ready={**floors, "checkout": 5}
        ),
        _sample(plan, OPENING - timedelta(seconds=0.2), Phase.PRE_SCALING, floors),
        _sample(plan, OPENING + timedelta(seconds=1), Phase.ACTIVE, floors, ready={**floors, "checkout": 2}),
    ]
    assert all(item.ok for item in ready_at_opening(plan, ready))
    assert not all(item.ok for item in ready_at_opening(plan, ready[:1]))
    assert not any(item.ok for item in ready_at_opening(plan, ready[2:])), "no sample before the opening"


def test_the_end_state_is_exact_only_at_the_baselines_without_annotations():
    plan = _plan()
    done = plan.completes_at + timedelta(seconds=1)
    baselines = {"order-tracking": 4, "checkout": 3}
    exact = _sample(plan, done, Phase.COMPLETED, baselines)
    annotated = _sample(plan, done, Phase.COMPLETED, baselines, annotations=(BASELINE_ANNOTATION,))
    off_by_one = _sample(plan, done, Phase.COMPLETED, {**baselines, "checkout": 4})
    assert all(state.exact for state in end_states(plan, exact))
    assert settled(plan, exact)
    assert not settled(plan, annotated) and not settled(plan, off_by_one)
    assert [state.leftover_annotations for state in end_states(plan, annotated)] == [
        (BASELINE_ANNOTATION,)
    ] * 2
    assert not summarize(plan, [off_by_one]).end_state_exact
    assert not summarize(plan, []).succeeded


def _window_samples(plan: DemoPlan, checkout_ready: list[tuple[float, int]]) -> list[ClusterSample]:
    """Samples at these seconds from the opening with these Ready checkout replicas, the traffic at 2,500."""
    floors = {"order-tracking": 10, "checkout": 8}
    return [
        _sample(
            plan,
            OPENING + timedelta(seconds=second),
            Phase.ACTIVE if second >= 0 else Phase.PRE_SCALING,
            floors,
            ready={**floors, "checkout": ready},
            rps=2500.0 if second >= 0 else 900.0,
        )
        for second, ready in checkout_ready
    ]


def test_the_traffic_cover_compares_ready_capacity_with_the_traffic_through_the_window():
    plan = _plan()
    covered = traffic_cover(plan, _window_samples(plan, [(-0.5, 8), (0.1, 8), (5.0, 8), (50.0, 8)]))
    assert covered.ready == 8 and covered.capacity_rps == 2560 and covered.traffic_rps == 2500
    assert covered.covered and covered.short_seconds == 0
    # The case: 6 Ready (1,920 req/s) for the first 5.5 s of the window, then 8.
    short = traffic_cover(plan, _window_samples(plan, [(-0.5, 6), (0.0, 6), (5.5, 8), (50.0, 8)]))
    assert not short.covered
    assert short.short_seconds == pytest.approx(5.5)
    assert traffic_cover_line(short) == (
        "Traffic covered at the opening: checkout 6 Ready x 320 req/s = 1,920 req/s for 2,500 req/s: NO, "
        "short by 580 req/s; Ready capacity was below the traffic for 5.5s of the window"
    )
    assert not summarize(plan, _window_samples(plan, [(-0.5, 6), (0.0, 6), (50.0, 8)])).succeeded


def test_a_target_without_a_metric_value_shows_a_dash_not_nan():
    assert metric_text(None) == "-"
    assert metric_text("NaN") == "-"
    assert metric_text("+Inf") == "-"
    assert metric_text("2500.4") == "2,500"


def test_the_planned_cover_line_says_whether_the_floor_covers_the_opening():
    plan = _plan()
    line = planned_cover_line(plan, compress_traffic(FULL_TIMELINE, OPENING))
    assert line.endswith("2,560 req/s; the traffic then is 2,500 req/s: the floor covers it.")
