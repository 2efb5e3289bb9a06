import json

import pytest

from campaign_autoscaler.planning import (
    BASELINE_ANNOTATION,
    CLAIMS_ANNOTATION,
    Baseline,
    claim_key,
    dump_baseline,
    dump_claims,
    effective_replicas,
    hpa_bounds,
    parse_baseline,
    parse_claims,
    replicas_to_apply,
)


def test_annotation_names():
    assert BASELINE_ANNOTATION == "autoscaling.campaigns.dev/baseline"
    assert CLAIMS_ANNOTATION == "autoscaling.campaigns.dev/claims"


def test_claim_key():
    assert claim_key("shop", "sale-9-9") == "shop/sale-9-9"


def test_claims_round_trip_compact_and_sorted():
    claims = {"shop/sale-9-9": 10, "shop/flash": 12}
    text = dump_claims(claims)
    assert text == '{"shop/flash":12,"shop/sale-9-9":10}'
    assert parse_claims(text) == claims


@pytest.mark.parametrize("text", [None, ""])
def test_no_claims(text):
    assert parse_claims(text) == {}


@pytest.mark.parametrize(
    "text", ["{", "[1]", '{"a": "10"}', '{"a": -1}', '{"a": true}', '{"a": 1.5}', "null", "NaN"]
)
def test_malformed_claims_name_the_annotation(text):
    with pytest.raises(ValueError, match=CLAIMS_ANNOTATION):
        parse_claims(text)


def test_plain_baseline_round_trip():
    assert dump_baseline(Baseline(4)) == '{"replicas": 4}'
    assert parse_baseline('{"replicas": 4}') == Baseline(4)
    assert parse_baseline('{"replicas": 0}') == Baseline(0)


def test_hpa_baseline_round_trip():
    baseline = Baseline(replicas=2, hpa_name="checkout", hpa_min_replicas=2, hpa_max_replicas=10)
    text = dump_baseline(baseline)
    assert json.loads(text) == {"hpa": "checkout", "minReplicas": 2, "maxReplicas": 10, "replicas": 2}
    assert text == '{"hpa": "checkout", "minReplicas": 2, "maxReplicas": 10, "replicas": 2}'
    assert parse_baseline(text) == baseline


def test_baseline_ignores_keys_it_does_not_know():
    assert parse_baseline('{"replicas": 4, "since": "2026-09-09"}') == Baseline(4)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "4",
        "{}",
        '{"replicas": "4"}',
        '{"replicas": -4}',
        '{"replicas": 4, "minReplicas": 1}',
        '{"hpa": "checkout", "replicas": 2}',
        '{"hpa": "", "minReplicas": 1, "maxReplicas": 3, "replicas": 2}',
        '{"hpa": "checkout", "minReplicas": 1, "maxReplicas": "3", "replicas": 2}',
    ],
)
def test_malformed_baseline_names_the_annotation(text):
    with pytest.raises(ValueError, match=BASELINE_ANNOTATION):
        parse_baseline(text)


def test_overlapping_claims_take_the_max():
    assert effective_replicas(4, {"shop/a": 10, "shop/b": 12}) == 12
    assert effective_replicas(4, {"shop/a": 3}) == 4
    assert effective_replicas(4, {}) == 4


@pytest.mark.parametrize(
    ("current", "baseline", "old", "new", "expected"),
    [
        # first claim raises the target
        (4, 4, {}, {"s/a": 6}, 6),
        # ramp-up steps follow the claim
        (6, 4, {"s/a": 6}, {"s/a": 8}, 8),
        # unchanged claim, target as we set it: nothing to do
        (10, 4, {"s/a": 10}, {"s/a": 10}, None),
        # someone scaled below the floor: raised again
        (5, 4, {"s/a": 10}, {"s/a": 10}, 10),
        # an HPA or a person raised it above the floor: left alone
        (15, 4, {"s/a": 10}, {"s/a": 10}, None),
        # ramp-down step while at what we set: lowered
        (10, 4, {"s/a": 10}, {"s/a": 9}, 9),
        # ramp-down step while someone holds it higher: left alone
        (14, 4, {"s/a": 10}, {"s/a": 9}, None),
        # last claim released: exact baseline, even if someone scaled it
        (9, 4, {"s/a": 9}, {}, 4),
        (20, 4, {"s/a": 9}, {}, 4),
        (2, 4, {"s/a": 9}, {}, 4),
        # overlapping events: the other claim still holds the target up
        (12, 4, {"s/a": 10, "s/b": 12}, {"s/a": 10}, 10),
        (12, 4, {"s/a": 10, "s/b": 12}, {"s/b": 12}, None),
        # a claim below the baseline never lowers the target
        (4, 4, {}, {"s/a": 2}, None),
        (3, 4, {}, {"s/a": 2}, 4),
        # baseline 0
        (0, 0, {}, {"s/a": 3}, 3),
        (3, 0, {"s/a": 3}, {}, 0),
    ],
)
def test_replicas_to_apply(current, baseline, old, new, expected):
    assert replicas_to_apply(current, baseline, old, new) == expected


def test_hpa_bounds():
    baseline = Baseline(replicas=2, hpa_name="checkout", hpa_min_replicas=2, hpa_max_replicas=10)
    assert hpa_bounds(baseline, {}) == (2, 10)
    assert hpa_bounds(baseline, {"s/a": 6}) == (6, 10)
    assert hpa_bounds(baseline, {"s/a": 6, "s/b": 14}) == (14, 14)
    assert hpa_bounds(baseline, {"s/a": 1}) == (2, 10)


def test_hpa_bounds_need_an_hpa_baseline():
    with pytest.raises(ValueError, match="HPA"):
        hpa_bounds(Baseline(4), {"s/a": 6})
