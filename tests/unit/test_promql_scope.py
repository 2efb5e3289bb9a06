"""PromQL tenancy: every selector of a target's query is held to the event's namespace, or refused."""

from __future__ import annotations

import promql_parser
import pytest

from campaign_autoscaler.planning import MetricsScope, SpecError, parse_spec, scope_query

SHOP = MetricsScope(label="namespace", namespace="shop")
FIELD = "spec.targets[0].metric.query"


def selectors(query: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def collect(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(query), pre_visit=collect)
    return found


def namespace_matchers(selector: promql_parser.VectorSelector) -> list[tuple[str, str]]:
    return [
        (str(matcher.op), matcher.value)
        for matcher in selector.matchers.matchers
        if matcher.name == "namespace"
    ]


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ('sum(rate(http_requests_total{app="checkout"}[2m]))', 1),
        ("http_requests_total", 1),
        ('{__name__=~"http_.*"}', 1),
        ("sum(rate(orders_total[5m] offset 1h))", 1),
        ("sum(rate(orders_total[5m] @ 1700000000))", 1),
        ("sum(rate(orders_total[5m] @ start() offset 1d))", 1),
        ("max_over_time((sum(rate(orders_total[1m])))[1h:1m])", 1),
        ("max_over_time((orders_total offset 1w)[1h:1m] @ end())", 1),
        ("sum(orders_total) / on() group_left sum(payments_total)", 2),
        ("orders_total or payments_total unless refunds_total", 3),
        ("absent(payments_total)", 1),
        ("absent_over_time(payments_total[5m])", 1),
        ('label_replace(payments_total, "namespace", "shop", "", "")', 1),
        ('sum(label_replace(payments_total, "namespace", "$1", "team", "(.*)"))', 1),
        ("count(count by (namespace) (up))", 1),
        ("-orders_total + 2 * vector(1) + scalar(payments_total)", 2),
        ('sum(rate(http_requests_total{namespace="shop"}[2m]))', 1),
        ("topk(1, orders_total) > bool 3", 1),
    ],
)
def test_every_selector_is_held_to_the_namespace(query: str, count: int):
    scoped = scope_query(query, SHOP, FIELD)
    found = selectors(scoped)
    assert len(found) == count, scoped
    for selector in found:
        assert namespace_matchers(selector) == [("MatchOp.Equal", "shop")], (scoped, str(selector))


def test_modifiers_survive_the_scoping():
    scoped = scope_query("max_over_time((sum(rate(x[1m] offset 1h)))[1d:1m] @ 100 offset 365d)", SHOP, FIELD)
    expression = promql_parser.parse(scoped)
    assert isinstance(expression, promql_parser.Call)
    subquery = expression.args[0]
    assert isinstance(subquery, promql_parser.SubqueryExpr)
    assert subquery.range.total_seconds() == 86400
    assert subquery.offset.total_seconds() == 365 * 86400
    assert subquery.at is not None
    (inner,) = selectors(scoped)
    assert inner.offset.total_seconds() == 3600


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ('sum(rate(http_requests_total{namespace="payments"}[2m]))', 'namespace="payments"'),
        ('orders_total{namespace=~"shop|payments"}', 'namespace=~"shop|payments"'),
        ('orders_total{namespace!="shop"}', 'namespace!="shop"'),
        ('orders_total{namespace!~"x"}', 'namespace!~"x"'),
        ('orders_total{namespace=~".+"}', 'namespace=~".+"'),
        ('sum(orders_total) + sum(payments_total{namespace="payments"})', 'namespace="payments"'),
        ('max_over_time((payments_total{namespace="payments"})[1h:1m])', 'namespace="payments"'),
        ('absent(payments_total{namespace="payments"})', 'namespace="payments"'),
        (
            'label_replace(payments_total{namespace="payments"}, "namespace", "shop", "", "")',
            'namespace="payments"',
        ),
        ('orders_total{namespace="shop", namespace="payments"}', 'namespace="payments"'),
    ],
)
def test_a_selector_that_names_another_namespace_is_refused(query: str, named: str):
    with pytest.raises(SpecError) as raised:
        scope_query(query, SHOP, FIELD)
    assert raised.value.field == FIELD
    assert "selector" in raised.value.message and named in raised.value.message


def test_or_between_matchers_is_refused():
    with pytest.raises(SpecError, match="`or` between label matchers") as raised:
        scope_query('orders_total{app="a" or namespace="payments"}', SHOP, FIELD)
    assert raised.value.field == FIELD


@pytest.mark.parametrize("query", ["sum(", "rate(orders_total)", "orders_total +", "foo bar"])
def test_invalid_promql_is_refused_naming_the_field(query: str):
    with pytest.raises(SpecError, match="is not valid PromQL") as raised:
        scope_query(query, SHOP, FIELD)
    assert raised.value.field == FIELD


def test_another_label_name():
    scoped = scope_query(
        'up{kubernetes_namespace="shop"} + up', MetricsScope("kubernetes_namespace", "shop"), FIELD
    )
    assert all(
        [(m.name, m.value) for m in s.matchers.matchers if m.name == "kubernetes_namespace"]
        == [("kubernetes_namespace", "shop")]
        for s in selectors(scoped)
    )
    assert [m.name for s in selectors(scoped) for m in s.matchers.matchers].count("namespace") == 0


SPEC = {
    "start": "2026-09-09T00:00:00",
    "end": "2026-09-10T00:00:00",
    "targets": [
        {"name": "web"},
        {
            "name": "checkout",
            "metric": {
                "query": 'sum(rate(http_requests_total{app="checkout"}[2m]))',
                "targetPerReplica": 80,
                "forecast": {"offset": "365d"},
            },
        },
    ],
}


def test_the_parsed_spec_carries_the_scoped_query():
    parsed = parse_spec(SPEC, SHOP)
    metric = parsed.targets[1].metric
    assert metric is not None
    assert [namespace_matchers(s) for s in selectors(metric.query)] == [[("MatchOp.Equal", "shop")]]
    assert parse_spec(SPEC).targets[1].metric.query == SPEC["targets"][1]["metric"]["query"]


def test_the_spec_error_names_the_target():
    spec = {
        **SPEC,
        "targets": [
            SPEC["targets"][0],
            {"name": "x", "metric": {"query": 'a{namespace="b"}', "targetPerReplica": 1}},
        ],
    }
    with pytest.raises(SpecError) as raised:
        parse_spec(spec, SHOP)
    assert raised.value.field == "spec.targets[1].metric.query"


def test_a_query_already_held_to_the_namespace_is_sent_as_written():
    query = 'sum( rate(http_requests_total{namespace="shop",app="checkout"}[2m]) )'
    assert scope_query(query, SHOP, FIELD) == query
