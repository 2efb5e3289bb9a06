import pytest

from campaign_autoscaler.planning import Floor, clamp, compute_floor, parse_spec


def target(**fields):
    raw = {
        "start": "2026-09-09T00:00:00Z",
        "end": "2026-09-10T00:00:00Z",
        "targets": [{"name": "checkout", **fields}],
    }
    return parse_spec(raw).targets[0]


def test_multiplier_floor_and_reason():
    floor = compute_floor(target(), baseline=4, traffic_multiplier=2.5, max_scale_factor=10)
    assert floor == Floor(
        replicas=10, min_replicas=0, max_replicas=40, reason="floor 10 = ceil(2.5 x baseline 4)"
    )


def test_target_multiplier_overrides_the_event():
    floor = compute_floor(target(multiplier=3), baseline=4, traffic_multiplier=2.5, max_scale_factor=10)
    assert (floor.replicas, floor.reason) == (12, "floor 12 = ceil(3 x baseline 4)")


def test_explicit_replicas_win_over_multipliers():
    floor = compute_floor(
        target(replicas=20, multiplier=3), baseline=4, traffic_multiplier=2.5, max_scale_factor=10
    )
    assert (floor.replicas, floor.reason) == (20, "floor 20 = replicas")


@pytest.mark.parametrize(
    ("baseline", "multiplier", "expected"),
    [
        (4, 2.5, 10),
        (3, 1.1, 4),
        (10, 1.1, 11),
        (100, 1.1, 110),
        (7, 0.3, 3),
        (3, 0.1, 1),
        (5, 1.15, 6),
        (20, 1.15, 23),
    ],
)
def test_multiplier_has_no_float_noise(baseline, multiplier, expected):
    # 3 * 1.1 is 3.3000000000000003 as floats and 10 * 1.1 is 11.000000000000002: ceil must use the decimals.
    floor = compute_floor(target(multiplier=multiplier), baseline, 2.0, max_scale_factor=100)
    assert floor.replicas == expected


def test_forecast_raises_the_floor():
    floor = compute_floor(
        target(), baseline=4, traffic_multiplier=2.5, max_scale_factor=10, forecast_replicas=12
    )
    assert (floor.replicas, floor.reason) == (12, "floor 12 = forecast 12")


def test_forecast_below_the_floor_changes_nothing():
    floor = compute_floor(
        target(), baseline=4, traffic_multiplier=2.5, max_scale_factor=10, forecast_replicas=7
    )
    assert (floor.replicas, floor.reason) == (10, "floor 10 = ceil(2.5 x baseline 4)")


def test_explicit_max_clamps():
    floor = compute_floor(target(maxReplicas=8), baseline=4, traffic_multiplier=2.5, max_scale_factor=10)
    assert floor == Floor(8, 0, 8, "floor 10 = ceil(2.5 x baseline 4), clamped to max 8")


def test_explicit_min_raises():
    floor = compute_floor(target(minReplicas=4), baseline=1, traffic_multiplier=2, max_scale_factor=10)
    assert floor == Floor(4, 4, 10, "floor 2 = ceil(2 x baseline 1), raised to min 4")


def test_max_clamps_the_forecast_too():
    floor = compute_floor(target(maxReplicas=15), 4, 2.5, 10, forecast_replicas=30)
    assert (floor.replicas, floor.reason) == (15, "floor 30 = forecast 30, clamped to max 15")


def test_default_max_is_baseline_times_scale_factor():
    floor = compute_floor(target(multiplier=50), baseline=2, traffic_multiplier=2, max_scale_factor=10)
    assert floor == Floor(20, 0, 20, "floor 100 = ceil(50 x baseline 2), clamped to max 20")
    floor = compute_floor(target(), baseline=3, traffic_multiplier=2, max_scale_factor=1.5)
    assert (floor.replicas, floor.max_replicas) == (5, 5)  # ceil(3 x 1.5) = 5 caps ceil(3 x 2) = 6


def test_default_max_never_lowers_explicit_replicas():
    floor = compute_floor(target(replicas=50), baseline=2, traffic_multiplier=2, max_scale_factor=10)
    assert floor == Floor(50, 0, 50, "floor 50 = replicas")


def test_default_max_never_contradicts_explicit_min():
    floor = compute_floor(target(minReplicas=30), baseline=2, traffic_multiplier=2, max_scale_factor=10)
    assert (floor.replicas, floor.min_replicas, floor.max_replicas) == (30, 30, 30)


def test_clamp_order_min_max_replicas_multiplier_forecast():
    # replicas beats the multiplier, min raises replicas, forecast beats replicas, max caps the forecast
    fields = {"replicas": 12, "multiplier": 5, "minReplicas": 14, "maxReplicas": 40}
    assert compute_floor(target(**fields), 4, 2, 10).replicas == 14  # replicas 12 raised to min 14
    assert compute_floor(target(**fields), 4, 2, 10, forecast_replicas=30).replicas == 30
    assert compute_floor(target(**fields), 4, 2, 10, forecast_replicas=90).replicas == 40
    without_replicas = {"multiplier": 5, "minReplicas": 14, "maxReplicas": 40}
    assert compute_floor(target(**without_replicas), 4, 2, 10).replicas == 20


def test_baseline_zero():
    assert compute_floor(target(), 0, 2.5, 10) == Floor(0, 0, 0, "floor 0 = ceil(2.5 x baseline 0)")
    assert compute_floor(target(replicas=3), 0, 2.5, 10) == Floor(3, 0, 3, "floor 3 = replicas")
    assert compute_floor(target(minReplicas=2), 0, 2.5, 10).replicas == 2


def test_negative_baseline_is_a_bug():
    with pytest.raises(ValueError, match="baseline"):
        compute_floor(target(), -1, 2, 10)


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"), [(5, 0, 10, 5), (-1, 0, 10, 0), (11, 0, 10, 10), (5, 7, 3, 7)]
)
def test_clamp(value, low, high, expected):
    assert clamp(value, low, high) == expected


def test_floors_and_default_caps_stay_within_the_int32_replicas_of_the_api():
    spec = parse_spec(
        {"start": "2026-09-09T00:00:00Z", "end": "2026-09-10T00:00:00Z", "targets": [{"name": "checkout"}]}
    )
    floor = compute_floor(spec.targets[0], 214_748_365, traffic_multiplier=10, max_scale_factor=10)
    assert floor.replicas == floor.max_replicas == 2**31 - 1
    huge = compute_floor(spec.targets[0], 4, traffic_multiplier=1e308, max_scale_factor=10)
    assert huge.replicas == 40 and huge.reason.endswith("capped at the int32 limit, clamped to max 40")
