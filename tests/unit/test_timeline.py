import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from campaign_autoscaler.planning import (
    Phase,
    Window,
    claim_fraction,
    next_transition,
    parse_spec,
    phase_at,
    ramp_replicas,
    resolve_window,
    transitions,
)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


START, END = utc(2026, 9, 9), utc(2026, 9, 10, 2)
WINDOW = Window(START, END)


def spec_with(*, lead="30m", up_steps=3, down="1h", down_steps=4, schedule=None):
    raw = {
        "leadTime": lead,
        "rampUp": {"steps": up_steps},
        "rampDown": {"duration": down, "steps": down_steps},
        "targets": [{"name": "checkout"}],
    }
    if schedule:
        raw["schedule"] = schedule
    else:
        raw |= {"start": START.isoformat(), "end": END.isoformat()}
    return parse_spec(raw)


def expected_ramp(baseline, floor, fraction):
    return baseline + math.ceil((floor - baseline) * fraction)


def test_contract_timeline():
    timeline = transitions(spec_with(), WINDOW)
    assert [(t.at, t.phase, t.label, t.fraction) for t in timeline] == [
        (utc(2026, 9, 8, 23, 30), Phase.PRE_SCALING, "ramp-up 1/3", Fraction(1, 3)),
        (utc(2026, 9, 8, 23, 40), Phase.PRE_SCALING, "ramp-up 2/3", Fraction(2, 3)),
        (utc(2026, 9, 8, 23, 50), Phase.PRE_SCALING, "ramp-up 3/3", Fraction(1)),
        (START, Phase.ACTIVE, "window opens", Fraction(1)),
        (END, Phase.RAMPING_DOWN, "window closes", Fraction(1)),
        (END + timedelta(minutes=15), Phase.RAMPING_DOWN, "ramp-down 1/4", Fraction(3, 4)),
        (END + timedelta(minutes=30), Phase.RAMPING_DOWN, "ramp-down 2/4", Fraction(1, 2)),
        (END + timedelta(minutes=45), Phase.RAMPING_DOWN, "ramp-down 3/4", Fraction(1, 4)),
        (END + timedelta(hours=1), Phase.COMPLETED, "completed", Fraction(0)),
    ]


def test_ramp_replicas_baseline_4_floor_10():
    timeline = transitions(spec_with(), WINDOW)
    replicas = [ramp_replicas(4, 10, t.fraction) for t in timeline]
    assert replicas == [expected_ramp(4, 10, t.fraction) for t in timeline]
    # 4 + ceil(6 * 1/3), 4 + ceil(6 * 2/3), 10 ... 4 + ceil(6 * 3/4) = 9, 4 + 3, 4 + ceil(1.5), 4
    assert replicas == [6, 8, 10, 10, 10, 9, 7, 6, 4]


@pytest.mark.parametrize(
    ("baseline", "floor", "steps"),
    [(4, 10, 3), (1, 2, 5), (0, 7, 3), (3, 100, 7), (10, 11, 4)],
)
def test_ramp_rounds_up_and_reaches_floor_and_baseline(baseline, floor, steps):
    ups = [ramp_replicas(baseline, floor, Fraction(i + 1, steps)) for i in range(steps)]
    downs = [ramp_replicas(baseline, floor, Fraction(steps - k, steps)) for k in range(1, steps + 1)]
    assert ups == sorted(ups) and ups[-1] == floor
    assert downs == sorted(downs, reverse=True) and downs[-1] == baseline
    assert all(baseline <= r <= floor for r in ups + downs)
    assert ups[0] == baseline + math.ceil(Fraction(floor - baseline, steps))


def test_floor_at_or_below_baseline_claims_the_baseline():
    # The floor is a floor: a target already above it keeps its baseline, never less.
    for fraction in (Fraction(0), Fraction(1, 3), Fraction(1)):
        assert ramp_replicas(10, 4, fraction) == 10
        assert ramp_replicas(5, 5, fraction) == 5
    assert ramp_replicas(0, 0, Fraction(1)) == 0


def test_ramp_fraction_exactness():
    # 3 x (1/3) must be exactly 1, not 0.999..., so ceil lands on the floor not one above.
    assert ramp_replicas(0, 3, Fraction(1, 3)) == 1
    assert ramp_replicas(0, 9, Fraction(2, 3)) == 6


def test_lead_time_zero_ramp_up_coincides_with_start():
    timeline = transitions(spec_with(lead="0s", up_steps=3), WINDOW)
    assert timeline[0] == transitions(spec_with(lead="0s", up_steps=1), WINDOW)[0]
    assert (timeline[0].at, timeline[0].phase, timeline[0].fraction) == (START, Phase.ACTIVE, Fraction(1))
    assert len({t.at for t in timeline}) == len(timeline)
    spec = spec_with(lead="0s")
    assert phase_at(spec, WINDOW, START - timedelta(microseconds=1)) == Phase.PENDING
    assert phase_at(spec, WINDOW, START) == Phase.ACTIVE
    assert claim_fraction(spec, WINDOW, START - timedelta(microseconds=1)) is None
    assert claim_fraction(spec, WINDOW, START) == 1


def test_ramp_down_duration_zero_restores_at_end_in_one_step():
    spec = spec_with(down="0s", down_steps=4)
    timeline = transitions(spec, WINDOW)
    assert (timeline[-1].at, timeline[-1].phase, timeline[-1].fraction) == (END, Phase.COMPLETED, 0)
    assert all(t.at < END for t in timeline[:-1])
    assert not any(t.phase == Phase.RAMPING_DOWN for t in timeline)
    assert phase_at(spec, WINDOW, END - timedelta(microseconds=1)) == Phase.ACTIVE
    assert phase_at(spec, WINDOW, END) == Phase.COMPLETED
    assert claim_fraction(spec, WINDOW, END) is None


def test_sub_microsecond_steps_collapse_to_the_later_one():
    spec = spec_with(lead="0.000001s", up_steps=3, down="0.000001s", down_steps=3)
    timeline = transitions(spec, WINDOW)
    instants = [t.at for t in timeline]
    assert instants == sorted(set(instants))
    assert timeline[-1].phase == Phase.COMPLETED


@pytest.mark.parametrize(
    ("now", "phase", "fraction"),
    [
        (utc(2026, 9, 8), Phase.PENDING, None),
        (utc(2026, 9, 8, 23, 29, 59), Phase.PENDING, None),
        (utc(2026, 9, 8, 23, 30), Phase.PRE_SCALING, Fraction(1, 3)),
        (utc(2026, 9, 8, 23, 45), Phase.PRE_SCALING, Fraction(2, 3)),
        (utc(2026, 9, 8, 23, 59), Phase.PRE_SCALING, Fraction(1)),
        (START, Phase.ACTIVE, Fraction(1)),
        (END - timedelta(seconds=1), Phase.ACTIVE, Fraction(1)),
        (END, Phase.RAMPING_DOWN, Fraction(1)),
        (END + timedelta(minutes=15), Phase.RAMPING_DOWN, Fraction(3, 4)),
        (END + timedelta(minutes=59), Phase.RAMPING_DOWN, Fraction(1, 4)),
        (END + timedelta(hours=1), Phase.COMPLETED, None),
        (utc(2027, 1, 1), Phase.COMPLETED, None),
    ],
)
def test_phase_and_claim_over_time(now, phase, fraction):
    spec = spec_with()
    assert phase_at(spec, WINDOW, now) == phase
    assert claim_fraction(spec, WINDOW, now) == fraction


def test_phase_values_are_the_contract_strings():
    assert [p.value for p in Phase] == [
        "Pending",
        "PreScaling",
        "Active",
        "RampingDown",
        "Completed",
        "Invalid",
    ]
    assert Phase.RAMPING_DOWN == "RampingDown"


def test_next_transition_one_off():
    spec = spec_with()
    assert next_transition(spec, WINDOW, utc(2026, 1, 1)) == utc(2026, 9, 8, 23, 30)
    assert next_transition(spec, WINDOW, utc(2026, 9, 8, 23, 30)) == utc(2026, 9, 8, 23, 40)
    assert next_transition(spec, WINDOW, START) == END
    assert next_transition(spec, WINDOW, END + timedelta(minutes=50)) == END + timedelta(hours=1)
    assert next_transition(spec, WINDOW, END + timedelta(hours=1)) is None


def test_next_transition_recurring_continues_with_the_next_window():
    spec = spec_with(schedule={"cron": "0 0 9 9 *", "duration": "26h"})
    window = resolve_window(spec, utc(2026, 9, 9))
    assert window == WINDOW
    completed = END + timedelta(hours=1)
    assert next_transition(spec, window, completed - timedelta(seconds=1)) == completed
    next_lead = utc(2027, 9, 8, 23, 30)
    assert next_transition(spec, window, completed) == next_lead
    assert next_transition(spec, window, utc(2027, 1, 1)) == next_lead
    assert next_transition(spec, window, utc(2027, 9, 8, 23, 30)) == utc(2027, 9, 8, 23, 40)


def test_recurring_event_is_pending_again_after_completion():
    spec = spec_with(schedule={"cron": "0 0 9 9 *", "duration": "26h"})
    after = END + timedelta(hours=1)
    assert phase_at(spec, WINDOW, after) == Phase.COMPLETED
    following = resolve_window(spec, after)
    assert following.start == utc(2027, 9, 9)
    assert phase_at(spec, following, after) == Phase.PENDING
