"""The Prometheus samplers: one per distinct probe, backoff on failure, stopped when nobody wants it."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from campaign_autoscaler.adapters.prometheus import MetricsUnavailableError
from campaign_autoscaler.adapters.sampler import MetricSampler, Probe
from tests.unit.fakes import Clock, ScriptedMetrics

QUERY = 'sum(rate(http_requests_total{app="checkout"}[2m]))'
T0 = datetime(2026, 9, 9, tzinfo=UTC)


def sampler_for(metrics: ScriptedMetrics, clock: Clock, interval: float = 15.0) -> MetricSampler:
    return MetricSampler(metrics, clock, interval, jitter=lambda: 1.0)


def test_a_probe_wanted_by_many_owners_is_asked_once_per_interval() -> None:
    clock, metrics = Clock(T0), ScriptedMetrics()
    metrics.values[QUERY] = 120.0
    sampler = sampler_for(metrics, clock)
    for owner in ("shop/a", "shop/b", "shop/c"):
        sampler.want(owner, {Probe(QUERY)})
    for _ in range(12):  # every 5 s for a minute
        sampler.ask_due()
        clock.advance(seconds=5)
    assert metrics.value_calls[QUERY] == 4  # at 0, 15, 30 and 45 s
    sample = sampler.samples([Probe(QUERY)])[Probe(QUERY)]
    assert (sample.latest.value, sample.latest.at, sample.since) == (120.0, T0 + timedelta(seconds=45), T0)


def test_failures_back_off_exponentially_up_to_four_intervals_and_reset_on_an_answer() -> None:
    clock, metrics = Clock(T0), ScriptedMetrics()
    metrics.values[QUERY] = MetricsUnavailableError("Timeout", "no answer within 5s")
    sampler = sampler_for(metrics, clock, interval=10.0)
    sampler.want("shop/a", {Probe(QUERY)})
    asked_at = []
    for second in range(0, 200):
        before = metrics.value_calls[QUERY]
        sampler.ask_due()
        if metrics.value_calls[QUERY] > before:
            asked_at.append(second)
        clock.advance(seconds=1)
    assert asked_at == [0, 10, 30, 70, 110, 150, 190]  # +10, +20, +40, then capped at +40
    assert sampler.samples([Probe(QUERY)])[Probe(QUERY)].failures == 7

    metrics.values[QUERY] = 5.0
    clock.set(T0 + timedelta(seconds=230))
    sampler.ask_due()
    sample = sampler.samples([Probe(QUERY)])[Probe(QUERY)]
    assert (sample.failures, sample.latest.value) == (0, 5.0)


def test_the_backoff_is_spread_by_the_jitter() -> None:
    sampler = MetricSampler(None, lambda: T0, 10.0)
    delays = {sampler.backoff(2).total_seconds() for _ in range(50)}
    assert len(delays) > 1 and all(16.0 <= delay <= 24.0 for delay in delays)


def test_a_peak_is_asked_until_answered_then_kept_and_no_data_is_an_answer() -> None:
    clock, metrics = Clock(T0), ScriptedMetrics()
    metrics.peaks[QUERY] = [MetricsUnavailableError("ConnectionFailed", "refused"), 1600.0]
    metrics.peaks["empty"] = None
    sampler = sampler_for(metrics, clock)
    year_ago = Probe(QUERY, T0 - timedelta(days=365), T0 - timedelta(days=364))
    no_history = Probe("empty", T0 - timedelta(days=7), T0 - timedelta(days=6))
    sampler.want("shop/a", {year_ago, no_history})
    for _ in range(20):
        sampler.ask_due()
        clock.advance(seconds=5)
    assert (metrics.peaks_asked(QUERY), metrics.peaks_asked("empty")) == (2, 1)
    samples = sampler.samples([year_ago, no_history])
    assert samples[year_ago].latest.value == 1600.0
    assert samples[no_history].latest.failure_reason == "NoData"


def test_a_probe_nobody_wants_any_more_is_stopped() -> None:
    clock, metrics = Clock(T0), ScriptedMetrics()
    metrics.values[QUERY] = 1.0
    metrics.values["other"] = 2.0
    sampler = sampler_for(metrics, clock)
    sampler.want("shop/a", {Probe(QUERY), Probe("other")})
    sampler.want("shop/b", {Probe(QUERY)})
    sampler.want("shop/a", {Probe(QUERY)})
    assert sampler.probes() == {Probe(QUERY)}
    sampler.forget("shop/a")
    assert sampler.probes() == {Probe(QUERY)}
    sampler.forget("shop/b")
    assert sampler.probes() == set()


def test_without_prometheus_every_sample_says_so() -> None:
    sampler = MetricSampler(None, lambda: T0, 15.0)
    sampler.want("shop/a", {Probe(QUERY)})
    sampler.ask_due()
    assert sampler.samples([Probe(QUERY)])[Probe(QUERY)].latest.failure_reason == "NoPrometheus"


class HangingMetrics(ScriptedMetrics):
    """A Prometheus whose every answer waits for the test to let it go."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.waiting = threading.Semaphore(0)

    def value(self, query: str) -> float:
        self.waiting.release()
        self.release.wait(30)
        return super().value(query)


@pytest.mark.asyncio
async def test_started_samplers_ask_on_their_own_threads_and_wake_their_owners() -> None:
    metrics = HangingMetrics()
    metrics.values[QUERY] = 42.0
    metrics.values["other"] = 1.0
    sampler = MetricSampler(metrics, lambda: datetime.now(UTC), 60.0, concurrency=1)
    sampler.start()
    woken = {"shop/a": asyncio.Event(), "shop/b": asyncio.Event()}
    try:
        sampler.want("shop/a", {Probe(QUERY)}, woken["shop/a"].set)
        sampler.want("shop/b", {Probe(QUERY), Probe("other")}, woken["shop/b"].set)
        # The event loop runs on while the request hangs; one slot: the second probe waits for it.
        await asyncio.to_thread(metrics.waiting.acquire, True, 10)
        await asyncio.sleep(0.05)
        assert not any(event.is_set() for event in woken.values())
        assert sampler.asked == 1
        metrics.release.set()
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in woken.values())), 10)
        assert sampler.samples([Probe(QUERY)])[Probe(QUERY)].latest.value == 42.0
    finally:
        metrics.release.set()
        await sampler.stop()


def curve_probe() -> Probe:
    return Probe(QUERY, T0 - timedelta(days=365), T0 - timedelta(days=365) + timedelta(hours=1), 60.0)


def test_a_curve_is_one_range_query_kept_once_answered() -> None:
    clock, metrics = Clock(T0), ScriptedMetrics()
    metrics.curves[QUERY] = lambda start, end, step: [(start, 10.0), (start + timedelta(minutes=1), 30.0)]
    sampler = sampler_for(metrics, clock)
    probe = curve_probe()
    sampler.want("shop/a", {probe})
    for _ in range(10):
        sampler.ask_due()
        clock.advance(seconds=15)
    assert metrics.series_calls == [(QUERY, probe.start, probe.end, 60.0)]
    latest = sampler.samples([probe])[probe].latest
    assert latest.value == 30.0  # the curve's highest point
    assert latest.points == ((probe.start, 10.0), (probe.start + timedelta(minutes=1), 30.0))


def test_a_curve_without_points_is_no_data_and_not_asked_again() -> None:
    clock, metrics = Clock(T0), ScriptedMetrics()
    sampler = sampler_for(metrics, clock)
    sampler.want("shop/a", {curve_probe()})
    for _ in range(5):
        sampler.ask_due()
        clock.advance(seconds=15)
    assert len(metrics.series_calls) == 1
    assert sampler.samples([curve_probe()])[curve_probe()].latest.failure_reason == "NoData"


def test_a_curve_of_nan_only_is_a_failure_asked_again_with_the_backoff() -> None:
    clock, metrics = Clock(T0), ScriptedMetrics()
    metrics.curves[QUERY] = lambda start, end, step: [(start, float("nan"))]
    sampler = sampler_for(metrics, clock, interval=10.0)
    sampler.want("shop/a", {curve_probe()})
    asked_at = []
    for second in range(0, 40):
        before = len(metrics.series_calls)
        sampler.ask_due()
        if len(metrics.series_calls) > before:
            asked_at.append(second)
        clock.advance(seconds=1)
    assert asked_at == [0, 10, 30]
    latest = sampler.samples([curve_probe()])[curve_probe()].latest
    assert (latest.failure_reason, latest.value) == ("NaN", None)
    assert "only NaN" in latest.failure_detail


def test_a_curve_with_several_series_is_a_failure() -> None:
    clock, metrics = Clock(T0), ScriptedMetrics()
    metrics.curves[QUERY] = MetricsUnavailableError("MultipleSeries", "returned 2 series, not 1")
    sampler = sampler_for(metrics, clock)
    sampler.want("shop/a", {curve_probe()})
    sampler.ask_due()
    latest = sampler.samples([curve_probe()])[curve_probe()].latest
    assert latest.failure_reason == "MultipleSeries"
