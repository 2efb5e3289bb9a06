"""Prometheus load: how often the operator queries each metric target, counted at a proxy in front of a real
Prometheus (`--prometheus-url` points at the proxy, `--metrics-interval 1s`).

20 events x 2 metric targets (one query each, distinct), a 5 s lead time, a 40 s window and a 5 s ramp-down:
queries are due once a second per target from the pre-scale to the end of the ramp-down. A fifth of the
targets also carry a forecast (one range query per window). The goal: one query per target per interval, not
more; none while Pending (besides the one validation of each query) and none after Completed.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.integration.faultproxy import FaultProxy
from tests.integration.harness import (
    OperatorProcess,
    campaign_spec,
    deployment_body,
    ensure_crd,
    seconds_from_now,
)

from benchmarks.common import (
    BenchmarkResult,
    Measurement,
    admin_client,
    create_deployments,
    create_events,
    create_namespace,
    event_phases,
    local_control_plane,
    percentile,
    process_usage,
    sleep_until,
    wait_for,
    work_dir,
)
from campaign_autoscaler.devenv.prometheus import (
    PROMETHEUS_HELP,
    PrometheusServer,
    SyntheticExporter,
    find_prometheus,
    selector,
)

EVENTS = 20
METRIC_TARGETS_PER_EVENT = 2
FORECAST_EVERY = 5  # every 5th event's targets also carry a forecast
NAMESPACE = "bench-prometheus"
METRIC = "bench_requests_per_second"
INTERVAL_SECONDS = 1.0
SETTLE_SECONDS = 25
LEAD_SECONDS, WINDOW_SECONDS, RAMP_DOWN_SECONDS = 5, 40, 5
REQUESTS_PER_SECOND, TARGET_PER_REPLICA = 250.0, 100.0  # 3 replicas wanted: above the floor of 2
GOAL_QUERIES_PER_INTERVAL = 1.0
# A query one interval after the last is due at interval + the daemon's 20 ms grace; allow for scheduling.
GAP_TOLERANCE = 0.1


@dataclass(frozen=True)
class Lifecycle:
    pre_scale: datetime
    completed: datetime  # end of the ramp-down


def _target(event: int, k: int) -> str:
    return f"api-{event:02d}-{k}"


def _query(deployment: str) -> str:
    # Already held to the namespace (`--metrics-namespace-label`): the operator sends it as written.
    return f"sum({selector(METRIC, {'app': deployment, 'namespace': NAMESPACE})})"


def _specs(lifecycle: Lifecycle) -> dict[str, dict[str, Any]]:
    start = lifecycle.pre_scale + timedelta(seconds=LEAD_SECONDS)
    specs = {}
    for event in range(EVENTS):
        targets = []
        for k in range(METRIC_TARGETS_PER_EVENT):
            metric: dict[str, Any] = {
                "query": _query(_target(event, k)),
                "targetPerReplica": TARGET_PER_REPLICA,
            }
            if event % FORECAST_EVERY == 0:
                metric["forecast"] = {"offset": "7d"}
            targets.append({"name": _target(event, k), "maxReplicas": 10, "metric": metric})
        specs[f"sale-{event:02d}"] = campaign_spec(
            start=start,
            end=start + timedelta(seconds=WINDOW_SECONDS),
            lead_time=f"{LEAD_SECONDS}s",
            ramp_up_steps=1,
            ramp_down={"duration": f"{RAMP_DOWN_SECONDS}s", "steps": 1},
            multiplier=2,
            targets=targets,
        )
    return specs


def run() -> BenchmarkResult:
    if find_prometheus() is None:
        raise SystemExit(PROMETHEUS_HELP)
    directory = work_dir("prometheus")
    deployments = [_target(event, k) for event in range(EVENTS) for k in range(METRIC_TARGETS_PER_EVENT)]
    with (
        SyntheticExporter() as exporter,
        PrometheusServer([exporter.address]) as prometheus,
        local_control_plane(pod_ready_after=0.5) as plane,
    ):
        for deployment in deployments:
            exporter.set(METRIC, REQUESTS_PER_SECOND, {"app": deployment})
        prometheus.wait_for(
            f"count({METRIC})", lambda samples: bool(samples) and samples[0].value == len(deployments)
        )
        api = admin_client(plane)
        ensure_crd(api)
        create_namespace(api, NAMESPACE)
        create_deployments(api, NAMESPACE, (deployment_body(name, 1) for name in deployments))
        with FaultProxy(prometheus.url, seed=0) as proxy:
            arguments = ["--namespace", NAMESPACE, "--prometheus-url", proxy.url, "--metrics-interval", "1s"]
            operator = OperatorProcess(
                str(plane.kubeconfig_path), directory / "operator.log", arguments
            ).start()
            assert operator.process is not None
            pre_scale = seconds_from_now(SETTLE_SECONDS)
            lifecycle = Lifecycle(
                pre_scale, pre_scale + timedelta(seconds=LEAD_SECONDS + WINDOW_SECONDS + RAMP_DOWN_SECONDS)
            )
            create_events(api, NAMESPACE, _specs(lifecycle))
            settled = wait_for(
                lambda: set(event_phases(api, NAMESPACE).values()) == {"Pending"}, timeout=SETTLE_SECONDS - 3
            )
            sleep_until(lifecycle.completed + timedelta(seconds=10))
            usage = process_usage(operator.process.pid)
            queries = proxy.snapshot().queries
            operator.stop()
    (directory / "queries.json").write_text(json.dumps(queries))
    return _result(queries, lifecycle, settled, usage.cpu_seconds, directory, deployments)


def _result(
    queries: tuple[tuple[float, str], ...],
    lifecycle: Lifecycle,
    settled: float | None,
    cpu_seconds: float,
    directory: Path,
    deployments: list[str],
) -> BenchmarkResult:
    begin, end = lifecycle.pre_scale.timestamp(), lifecycle.completed.timestamp()
    instant: dict[str, list[float]] = defaultdict(list)
    forecasts = 0
    for at, text in queries:
        if text.startswith("max(max_over_time("):
            forecasts += 1
        else:
            instant[text].append(at)
    per_target = [sorted(instant[_query(name)]) for name in deployments]
    before = sum(1 for times in per_target for at in times if at < begin)
    after = sum(1 for times in per_target for at in times if at > end + INTERVAL_SECONDS)
    during = [[at for at in times if begin <= at <= end + INTERVAL_SECONDS] for times in per_target]
    rates = [len(times) / ((end - begin) / INTERVAL_SECONDS) for times in during]
    gaps = [b - a for times in during for a, b in itertools.pairwise(times)]
    short = sum(1 for gap in gaps if gap < INTERVAL_SECONDS - GAP_TOLERANCE)
    unknown = [text for text in instant if text not in {_query(name) for name in deployments}]
    rows = [
        Measurement(
            "queries per target per interval, pre-scale to end of ramp-down (max over targets)",
            f"{max(rates):.2f} (mean {sum(rates) / len(rates):.2f})",
            f"<= {GOAL_QUERIES_PER_INTERVAL:.0f}",
            max(rates) <= GOAL_QUERIES_PER_INTERVAL + 0.05,
        ),
        Measurement(
            f"gaps between two queries of a target shorter than {INTERVAL_SECONDS - GAP_TOLERANCE:.1f} s",
            f"{short} of {len(gaps)}",
            "0",
            short == 0,
        ),
        Measurement(
            "gap p50 / p99 / max", " / ".join(f"{percentile(gaps, q):.2f} s" for q in (0.5, 0.99, 1.0))
        ),
        Measurement(
            "instant queries before the pre-scale (validation)", f"{before} for {len(deployments)} targets"
        ),
        Measurement("instant queries after Completed", str(after), "0", after == 0),
        Measurement(
            "forecast (range) queries",
            f"{forecasts} for {len(deployments) // FORECAST_EVERY} forecasting targets",
            "1 per target per window",
            forecasts <= len(deployments) // FORECAST_EVERY,
        ),
        Measurement("queries the benchmark did not plan", str(len(unknown)), "0", not unknown),
        Measurement(f"{EVENTS} events reported Pending", "never" if settled is None else f"{settled:.1f} s"),
        Measurement("operator CPU, whole run", f"{cpu_seconds:.1f} s"),
    ]
    setup = (
        f"{EVENTS} CampaignEvents x {METRIC_TARGETS_PER_EVENT} metric targets (one distinct query each; "
        f"every {FORECAST_EVERY}th event's targets also forecast), lifecycle {LEAD_SECONDS} s lead + "
        f"{WINDOW_SECONDS} s window + {RAMP_DOWN_SECONDS} s ramp-down; operator `--metrics-interval 1s` "
        "against a real Prometheus (scraping every 1 s) through a counting proxy."
    )
    return BenchmarkResult(
        "Prometheus load", setup, tuple(rows), (f"Operator log: {directory}/operator.log",)
    )
