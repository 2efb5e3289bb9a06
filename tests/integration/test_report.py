"""After a sale: status.summary and `campaign-autoscaler report`, with the real operator and API server and a
real Prometheus scraping both the operator's /metrics and the synthetic exporter; the page opened in a real
headless Chromium.

The screenshot (report.png), a copy of the page and the measured, recorded and reported numbers
(numbers.json) are kept under build/test-artifacts/report/ (ignored by git).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from html import escape
from itertools import pairwise
from pathlib import Path

import pytest

from campaign_autoscaler.cli import main
from campaign_autoscaler.devenv.prometheus import PrometheusServer, SyntheticExporter
from campaign_autoscaler.report import write_report
from tests.integration.harness import (
    Cluster,
    OperatorProcess,
    campaign_spec,
    free_port,
    seconds_from_now,
    utc_now,
    wait_until,
)

METRIC = "shop_requests_per_second"
SCRAPE_SECONDS = 1.0
WATCH_DELAY_SECONDS = 0.5  # a change of Ready replicas wakes the event's pass from the watch
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "report"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def scraping_prometheus(
    synthetic_exporter: SyntheticExporter, metrics_port: int
) -> Iterator[PrometheusServer]:
    """A Prometheus of this test's own: the synthetic exporter and the operator's /metrics, every second."""
    targets = [synthetic_exporter.address, f"127.0.0.1:{metrics_port}"]
    with PrometheusServer(targets, scrape_interval=f"{SCRAPE_SECONDS:g}s") as server:
        yield server


@pytest.fixture
def operator(
    kubeconfig: str,
    namespace: str,
    tmp_path: Path,
    metrics_port: int,
    scraping_prometheus: PrometheusServer,
    campaignevent_crd: object,
) -> Iterator[OperatorProcess]:
    args = [
        "--namespace", namespace,
        "--metrics-port", str(metrics_port),
        "--resync-interval", "2s",
        "--prometheus-url", scraping_prometheus.url,
        "--prometheus-timeout", "1s",
        "--metrics-interval", "1s",
        "--scale-down-stabilization", "3s",
    ]  # fmt: skip
    process = OperatorProcess(kubeconfig, tmp_path / "operator.log", args).start()
    yield process
    code = process.stop()
    print(process.log()[-4000:])
    assert code == 0


def measure_until_completed(
    cluster: Cluster, feed: SyntheticExporter, labels: dict, start: datetime, mid_window: Callable[[], None]
) -> list:
    """Every 0.1 s: (when, desired, ready) as the Deployment shows them; the demand rises 5 s into the
    window (80 / 10 = 8 replicas over the floor of 4) and falls back 7 s later; `mid_window` runs once,
    15 s in."""
    samples = []
    raised = lowered = looked = False
    while cluster.phase("sale") != "Completed":
        now = utc_now()
        if not raised and now >= start + timedelta(seconds=5):
            feed.set(METRIC, 80, labels)
            raised = True
        if not lowered and now >= start + timedelta(seconds=12):
            feed.set(METRIC, 30, labels)
            lowered = True
        if not looked and now >= start + timedelta(seconds=15):
            mid_window()
            looked = True
        deployment = cluster.deployment("checkout")
        samples.append((utc_now(), deployment.spec.replicas, deployment.status.ready_replicas or 0))
        time.sleep(0.1)
        assert now < start + timedelta(seconds=90), "the event completes"
    return samples


def short_seconds(samples: list, start: datetime, end: datetime) -> float:
    total = 0.0
    for (at, desired, ready), (following, _, _) in pairwise(samples):
        if ready < desired:
            begin, until = max(at, start), min(following, end)
            total += max(0.0, (until - begin).total_seconds())
    return total


def ready_at(samples: list, moment: datetime) -> bool:
    _, desired, ready = next(sample for sample in samples if sample[0] >= moment)
    return ready >= desired


def test_summary_and_report_match_what_was_measured(
    cluster: Cluster,
    api_client,
    kubeconfig: str,
    synthetic_exporter: SyntheticExporter,
    scraping_prometheus: PrometheusServer,
    metrics_port: int,
    operator: OperatorProcess,
    tmp_path: Path,
    capsys,
):
    labels = {"namespace": cluster.namespace}  # held to it by the operator and the report
    synthetic_exporter.set(METRIC, 30, labels)  # 3 replicas: below the floor
    scraping_prometheus.wait_for(
        f'up{{instance="127.0.0.1:{metrics_port}"}}', lambda s: any(x.value == 1 for x in s), timeout=30
    )
    scraping_prometheus.wait_for(
        f'{METRIC}{{namespace="{cluster.namespace}"}}', lambda s: bool(s), timeout=30
    )
    cluster.create_deployment("checkout", replicas=2)
    start = seconds_from_now(6)
    end = start + timedelta(seconds=20)
    target = {
        "name": "checkout",
        "metric": {"query": f"sum({METRIC})", "targetPerReplica": 10},
    }
    spec = campaign_spec(
        start=start, end=end, targets=[target], lead_time="5s", ramp_up_steps=1,
        ramp_down={"duration": "4s", "steps": 2}, multiplier=2,
    )  # fmt: skip
    cluster.create_event("sale", spec)
    live_reports = []

    def live_report() -> None:
        page = tmp_path / "live.html"
        live_reports.append(
            write_report(api_client, cluster.namespace, "sale", scraping_prometheus.url, page)
        )

    samples = measure_until_completed(cluster, synthetic_exporter, labels, start, live_report)
    wait_until(lambda: "summary" in cluster.status("sale"), timeout=10, message="status.summary written")

    measured_short = short_seconds(samples, start, end)
    measured_peak_desired = max(desired for _, desired, _ in samples)
    measured_peak_ready = max(ready for _, _, ready in samples)
    status = cluster.status("sale")
    [entry] = status["summary"]["targets"]
    assert measured_short > 1.0, "the demand outran the Ready pods for a while"
    assert (measured_peak_desired, measured_peak_ready) == (8, 8)
    assert entry["peakDesiredReplicas"] == measured_peak_desired
    assert entry["peakReadyReplicas"] == measured_peak_ready
    assert entry["peakMetricValue"] == "80"
    assert entry["readyAtStart"] is ready_at(samples, start) is True
    # The pass sees a shortfall end when the watch shows the Deployment's Ready replicas change.
    assert abs(entry["shortSeconds"] - measured_short) <= SCRAPE_SECONDS + WATCH_DELAY_SECONDS
    assert "floor 4 is below this peak (80) x 1.2: set replicas >= 10" in entry["recommendation"]
    [announced] = cluster.k8s_events(reason="CampaignSummary")
    assert announced.type == "Normal"
    assert announced.message == status["summary"]["headline"]

    # The report, from Prometheus: the same numbers, within one scrape interval.
    page = tmp_path / "report.html"
    result = write_report(api_client, cluster.namespace, "sale", scraping_prometheus.url, page)
    assert result.problems == [], result.problems
    [reported] = result.data.targets
    summary = reported.summary
    assert summary is not None
    assert (summary.peak_desired, summary.peak_ready, summary.peak_metric) == (8, 8, 80.0)
    assert summary.ready_at_start is True
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "numbers.json").write_text(
        json.dumps(
            {
                "measured": {"shortSeconds": round(measured_short, 2), "peakDesired": measured_peak_desired},
                "statusSummary": entry,
                "report": {"shortSeconds": summary.short_seconds, "peakDesired": summary.peak_desired},
            },
            indent=2,
        )
    )
    assert abs(summary.short_seconds - entry["shortSeconds"]) <= SCRAPE_SECONDS + 0.5
    assert len(reported.shortfalls) >= 1
    page_text = page.read_text()
    assert escape(entry["recommendation"]) in page_text  # the operator's advice, as status.summary holds it
    assert escape(status["summary"]["headline"]) in page_text
    assert [row.transition.label for row in result.data.transitions][-1] == "completed"

    browse(page, expected_plots=1)

    # Mid-window, the report was of the part so far, and said so.
    [live] = live_reports
    assert live.data.live and live.data.phase == "Active"
    assert live.problems == ["the event is live (Active): this is the part so far"]
    [so_far] = live.data.targets
    assert so_far.summary is not None and so_far.summary.peak_desired == 8
    assert "so far: 1/1 target(s) Ready at start" in (tmp_path / "live.html").read_text()

    # Markdown for a post-mortem, through the command.
    markdown = tmp_path / "report.md"
    code = main([
        "report", "-n", cluster.namespace, "sale", "--prometheus-url", scraping_prometheus.url,
        "--kubeconfig", kubeconfig, "--format", "markdown", "--out", str(markdown),
    ])  # fmt: skip
    assert code == 0
    terminal = capsys.readouterr().out
    assert status["summary"]["headline"] in terminal
    assert f"Wrote {markdown}" in terminal
    text = markdown.read_text()
    assert "| checkout | 8 | 8 | 80 |" in text

    # Prometheus unreachable: one line, exit 1, and the partial report that the status allows.
    partial = tmp_path / "partial.html"
    closed = f"http://127.0.0.1:{free_port()}"
    code = main([
        "report", "-n", cluster.namespace, "sale", "--prometheus-url", closed, "--kubeconfig", kubeconfig,
        "--out", str(partial), "--prometheus-timeout", "2s",
    ])  # fmt: skip
    assert code == 1
    partial_html = partial.read_text()
    assert "Prometheus could not be read (ConnectionFailed" in partial_html
    assert escape(entry["recommendation"]) in partial_html  # what the status holds is still there


def browse(page: Path, expected_plots: int) -> None:
    """Open the page in headless Chromium: no console error, every plot decoded, and a screenshot kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and CHROMEDRIVER, "chromium and chromium-driver are installed by scripts/bootstrap.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,2400",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(page.as_uri())
        wait_until(
            lambda: driver.execute_script("return document.readyState") == "complete", timeout=20,
            message="the page loaded",
        )  # fmt: skip
        plots = driver.execute_script(
            "return Array.from(document.querySelectorAll('img.plot'))"
            ".map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "report.png"))
        shutil.copy(page, ARTIFACTS / "report.html")
    finally:
        driver.quit()
    assert errors == []
    assert len(plots) == expected_plots
    assert all(complete and width > 300 and height > 100 for complete, width, height in plots), plots
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_report_refuses_an_unknown_event_and_one_that_never_ran(
    cluster: Cluster, kubeconfig: str, tmp_path: Path, capsys
):
    out = str(tmp_path / "r.html")
    base = [
        "report",
        "-n",
        cluster.namespace,
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--kubeconfig",
        kubeconfig,
    ]
    assert main([*base, "nosuch", "--out", out]) == 2
    assert capsys.readouterr().err == f"error: CampaignEvent {cluster.namespace}/nosuch not found\n"

    later = seconds_from_now(3600)
    cluster.create_deployment("checkout", replicas=2)
    cluster.create_event(
        "later", campaign_spec(start=later, end=later + timedelta(hours=1), targets=[{"name": "checkout"}])
    )
    assert main([*base, "later", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: CampaignEvent {cluster.namespace}/later has not run yet: its pre-scale begins at "
    )
    assert err.count("\n") == 1
    assert not Path(out).exists()

    assert main([*base, "later", "--out", str(tmp_path / "no" / "such" / "r.html")]) == 2
    assert "is not a writable folder" in capsys.readouterr().err
