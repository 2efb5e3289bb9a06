from datetime import UTC, datetime, timedelta

import pytest

from campaign_autoscaler.planning import (
    Stabilizer,
    forecast_replicas,
    replicas_for_metric,
)

T0 = datetime(2026, 9, 9, tzinfo=UTC)
FIVE_MINUTES = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("value", "target", "expected"),
    [
        (160, 80, 2),
        (160.0, 80.0, 2),
        (161, 80, 3),
        (812.5, 80, 11),
        (0.3, 0.1, 3),  # 0.3 / 0.1 is 2.9999999999999996 as floats
        (0.7, 0.1, 7),  # ... and 6.999999999999999
        (0, 80, 0),
        (-5, 80, 0),
        (1e-9, 80, 1),
    ],
)
def test_replicas_for_metric(value, target, expected):
    assert replicas_for_metric(value, target) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_replicas_for_metric_rejects_non_finite_values(value):
    with pytest.raises(ValueError):
        replicas_for_metric(value, 80)


def test_replicas_for_metric_rejects_bad_target():
    with pytest.raises(ValueError):
        replicas_for_metric(100, 0)


def test_forecast_replicas():
    assert forecast_replicas(800, 1.2, 80) == 12
    assert forecast_replicas(800, 1.0, 80) == 10
    assert forecast_replicas(801, 1.0, 80) == 11
    assert forecast_replicas(1000, 1.1, 100) == 11  # 1000 * 1.1 is 1100.0000000000002 as floats
    assert forecast_replicas(0, 1.2, 80) == 0


def test_stabilizer_goes_up_at_once_and_down_after_the_window():
    stabilizer = Stabilizer()
    assert stabilizer.stabilized(T0, FIVE_MINUTES) is None
    stabilizer = stabilizer.record(T0, 10, FIVE_MINUTES)
    stabilizer = stabilizer.record(T0 + timedelta(minutes=1), 20, FIVE_MINUTES)
    assert stabilizer.stabilized(T0 + timedelta(minutes=1), FIVE_MINUTES) == 20  # up: immediate
    stabilizer = stabilizer.record(T0 + timedelta(minutes=2), 12, FIVE_MINUTES)
    assert stabilizer.stabilized(T0 + timedelta(minutes=2), FIVE_MINUTES) == 20  # down: held
    assert stabilizer.stabilized(T0 + timedelta(minutes=6), FIVE_MINUTES) == 20  # 20 sampled 5 min ago
    assert stabilizer.stabilized(T0 + timedelta(minutes=6, seconds=1), FIVE_MINUTES) == 12
    assert stabilizer.stabilized(T0 + timedelta(minutes=7, seconds=1), FIVE_MINUTES) is None


def test_stabilizer_is_immutable_and_forgets_old_samples():
    first = Stabilizer().record(T0, 10, FIVE_MINUTES)
    second = first.record(T0 + timedelta(minutes=10), 3, FIVE_MINUTES)
    assert first.samples == ((T0, 10),)
    assert second.samples == ((T0 + timedelta(minutes=10), 3),)
    assert second.stabilized(T0 + timedelta(minutes=10), FIVE_MINUTES) == 3
    with pytest.raises(AttributeError):
        second.samples = ()


def test_stabilizer_ignores_samples_after_now():
    stabilizer = Stabilizer().record(T0, 5, FIVE_MINUTES).record(T0 + timedelta(minutes=1), 9, FIVE_MINUTES)
    assert stabilizer.stabilized(T0, FIVE_MINUTES) == 5
