"""`simulate --with-hpa`: this operator on a target an HPA scales, as the claim works on one (it raises the
HPA's bounds; the HPA keeps scaling from the demand within them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from campaign_autoscaler.planning import Baseline, CampaignSpec, lifecycle_end, lifecycle_start, parse_spec
from campaign_autoscaler.simulation import (
    ON_HPA,
    TICK,
    CampaignAutoscaler,
    CampaignAutoscalerOnHpa,
    HpaBackedState,
    HpaState,
    Observation,
    Policy,
    ReactiveHpa,
    Trace,
    TrafficCurve,
    campaign_windows,
    replay,
)

T0 = datetime(2026, 9, 8, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
CAPACITY = 100.0
BASELINE = 4


def sale(**fields: object) -> CampaignSpec:
    """From 12:30 to 13:00, 30m lead in 3 steps, 1h ramp-down in 4, multiplier 2.5: floor 10 on baseline 4."""
    spec = {
        "start": "2026-09-08T12:30:00Z",
        "end": "2026-09-08T13:00:00Z",
        "leadTime": "30m",
        "rampUp": {"steps": 3},
        "rampDown": {"duration": "1h", "steps": 4},
        "trafficMultiplier": 2.5,
        "targets": [{"name": "order-tracking"}],
    }
    return parse_spec({**spec, **fields})


def curve(*pods_per_minute: float) -> TrafficCurve:
    return TrafficCurve(start=T0, rps=tuple(p * CAPACITY for p in pods_per_minute), source="test")


def wavy(minutes: int, low: float, high: float) -> TrafficCurve:
    """Demand between `low` and `high` pods, a wave every 40 minutes: rises and falls across every step."""
    middle, half = (low + high) / 2, (high - low) / 2
    return curve(*(middle + half * math.sin(2 * math.pi * m / 40) for m in range(minutes)))


def policies(
    spec: CampaignSpec, traffic: TrafficCurve, hpa_max: int = 100
) -> tuple[CampaignAutoscaler, ReactiveHpa, CampaignAutoscalerOnHpa]:
    windows = campaign_windows(spec, traffic.start, traffic.end)
    operator = CampaignAutoscaler(spec, windows, BASELINE, spec.targets[0])
    hpa = ReactiveHpa(capacity_per_pod=CAPACITY, min_replicas=BASELINE, max_replicas=hpa_max)
    return operator, hpa, CampaignAutoscalerOnHpa(operator, hpa, f"campaign-autoscaler{ON_HPA}")


def run(policy: Policy, traffic: TrafficCurve, startup: timedelta = timedelta(0)) -> Trace:
    return replay(policy, traffic, CAPACITY, initial_replicas=BASELINE, startup=startup)


@dataclass
class Recorder:
    """The policy, recording each sync: what it saw, the bounds written before it, the replicas it gave."""

    policy: CampaignAutoscalerOnHpa
    syncs: list[tuple[Observation, tuple[int | None, int | None] | None, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.policy.name

    def initial_state(self) -> HpaBackedState:
        return self.policy.initial_state()

    def decide(self, state: HpaBackedState, seen: Observation) -> tuple[HpaBackedState, int]:
        new_state, replicas = self.policy.decide(state, seen)
        self.syncs.append((seen, state.bounds, replicas))
        return new_state, replicas

    def placeholders(self, seen: Observation, replicas: int) -> int:
        return self.policy.placeholders(seen, replicas)


def lifecycle(spec: CampaignSpec, traffic: TrafficCurve) -> tuple[datetime, datetime]:
    [window] = campaign_windows(spec, traffic.start, traffic.end)
    return lifecycle_start(spec, window), lifecycle_end(spec, window)


@pytest.mark.parametrize("startup", [timedelta(0), timedelta(seconds=90)])
def test_before_the_lifecycle_the_target_is_the_hpas_alone(startup: timedelta) -> None:
    spec = sale(start="2026-09-08T14:00:00Z", end="2026-09-08T14:30:00Z")
    traffic = wavy(240, 2, 9)
    _, hpa, on_hpa = policies(spec, traffic)
    begin, _ = lifecycle(spec, traffic)
    alone, backed = run(hpa, traffic, startup), run(on_hpa, traffic, startup)
    before = [(a, b) for a, b in zip(alone.slots, backed.slots, strict=True) if a.at < begin]
    assert len(before) == 90 * 4
    assert all(a == b for a, b in before)
    assert len({a.replicas for a, _ in before}) > 3  # the HPA really moved there


def test_after_the_lifecycle_the_hpa_has_its_own_bounds_back() -> None:
    spec = sale()
    traffic = curve(*[1] * 200)
    *_, on_hpa = policies(spec, traffic)
    _, finish = lifecycle(spec, traffic)
    backed = run(on_hpa, traffic)
    # The last claim (6, from 13:45) ends at 14:00; the HPA sees its own minReplicas 4 one sync later.
    replicas = {slot.at: slot.replicas for slot in backed.slots}
    assert replicas[finish - TICK] == 6
    assert replicas[finish] == 6
    assert replicas[finish + TICK] == BASELINE
    assert {slot.replicas for slot in backed.slots if slot.at > finish} == {BASELINE}


def test_inside_the_lifecycle_low_demand_gets_the_floor_one_hpa_sync_after_the_claim() -> None:
    spec = sale()
    traffic = curve(*[1] * 180)
    operator, _, on_hpa = policies(spec, traffic)
    plain, backed = run(operator, traffic), run(on_hpa, traffic)
    claimed = {slot.at: slot.replicas for slot in plain.slots}
    begin, finish = lifecycle(spec, traffic)
    for slot in backed.slots:
        if begin + TICK <= slot.at <= finish:
            assert slot.replicas == claimed[slot.at - TICK], slot.at
    assert max(slot.replicas for slot in backed.slots) == 10


def test_inside_the_lifecycle_demand_above_the_floor_is_the_hpas() -> None:
    spec = sale()
    traffic = curve(*[1] * 40, *[25] * 50, *[1] * 90)  # 25 pods' worth from 12:40 to 13:30, the floor is 10
    *_, on_hpa = policies(spec, traffic)
    backed = run(on_hpa, traffic)
    replicas = {slot.at: slot.replicas for slot in backed.slots}
    assert replicas[T0 + 39 * MINUTE] == 10  # the floor, the HPA idle at its minReplicas
    # From the floor the HPA goes on to 20, then 25 (at most double or +4 per sync).
    assert [replicas[T0 + 40 * MINUTE + i * TICK] for i in range(3)] == [20, 25, 25]
    assert {replicas[T0 + m * MINUTE] for m in range(41, 90)} == {25}


def test_a_claim_above_the_hpas_max_replicas_raises_it() -> None:
    spec = sale()
    traffic = curve(*[1] * 180)
    _, _, on_hpa = policies(spec, traffic, hpa_max=6)
    backed = run(on_hpa, traffic)
    assert max(slot.replicas for slot in backed.slots) == 10


@pytest.mark.parametrize("startup", [timedelta(0), timedelta(seconds=90)])
@pytest.mark.parametrize(("low", "high"), [(0.5, 6), (2, 14), (5, 30)])
def test_never_below_the_bounds_written_nor_below_the_hpa_alone(
    startup: timedelta, low: float, high: float
) -> None:
    """Every sync: at least the minReplicas the operator wrote before it, and, once the target is within
    its bounds, at least what the HPA alone answers to the same observation: max(claim, HPA demand)."""
    spec = sale(targets=[{"name": "checkout", "metric": {"query": "q", "targetPerReplica": 150}}])
    traffic = wavy(200, low, high)
    _, hpa, on_hpa = policies(spec, traffic)
    begin, finish = lifecycle(spec, traffic)
    recorder = Recorder(on_hpa)
    run(recorder, traffic, startup)
    raised = 0
    for seen, written, replicas in recorder.syncs:
        if seen.at < begin or seen.at > finish:
            assert written is None, seen.at  # no claim: the HPA's own bounds
            continue
        if seen.at == begin:
            continue  # the first claim is written now, the HPA sees it next sync
        assert written is not None and written[0] is not None
        assert replicas >= written[0] >= BASELINE, seen.at
        raised += written[0] > BASELINE
        if seen.replicas >= written[0]:
            assert replicas >= hpa.decide(HpaState(), seen)[1], seen.at
    assert raised > 100  # the claim held the HPA above its own minReplicas for most of the lifecycle


def test_one_sync_is_max_of_the_claim_and_the_hpas_answer() -> None:
    spec = sale()
    traffic = curve(*[1] * 180)
    _, hpa, on_hpa = policies(spec, traffic)
    at = T0 + 45 * MINUTE
    recorded = Baseline(BASELINE, "web", BASELINE, 100)
    for demand_pods, expected in [(2, 10), (10, 10), (14, 14), (30, 20)]:
        state = HpaBackedState(baseline=recorded)
        # The claim in force at 12:44:45 (the floor 10) is written; the HPA applies it at its next sync.
        state, _ = on_hpa.decide(state, Observation(at - TICK, 100.0, 10, 10))
        assert state.bounds == (10, 100)
        seen = Observation(at, demand_pods * CAPACITY, 10, 10)
        _, replicas = on_hpa.decide(state, seen)
        alone = hpa.decide(HpaState(), seen)[1]  # 30 pods wanted: +100 % per sync at most
        assert replicas == expected == max(10, alone), demand_pods


def test_the_baseline_is_the_replicas_the_hpa_had_when_first_claimed() -> None:
    """As the operator records it: the HPA runs 7 pods at the lead time, so the floor is ceil(7 x 2.5)."""
    spec = sale(start="2026-09-08T13:00:00Z", end="2026-09-08T13:30:00Z")
    traffic = curve(*[7] * 240)
    _, _, on_hpa = policies(spec, traffic)
    backed = run(on_hpa, traffic)
    assert {slot.replicas for slot in backed.slots if slot.at < T0 + 30 * MINUTE} == {7}
    assert max(slot.replicas for slot in backed.slots) == 18
    assert backed.slots[-1].replicas == 7  # after the release the HPA holds the demand's 7


def test_hpa_replicas_outside_its_bounds_go_to_the_bound_at_once() -> None:
    hpa = ReactiveHpa(capacity_per_pod=CAPACITY, min_replicas=20, max_replicas=30)
    # Below minReplicas: straight to it, not limited to double or +4 per sync, whatever the demand.
    assert hpa.decide(HpaState(), Observation(T0, 0.0, 4, 4)) == (HpaState(), 20)
    assert hpa.decide(HpaState(), Observation(T0, 2500.0, 4, 4)) == (HpaState(), 20)
    assert hpa.decide(HpaState(), Observation(T0, 0.0, 50, 50)) == (HpaState(), 30)
