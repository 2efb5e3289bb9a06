"""PromQL tenancy: a target's query only ever sees the series of its event's own namespace.

Every series selector of the query (inside functions, aggregations, binary operations, subqueries, with
`offset` or `@`) is given the matcher `LABEL="<namespace>"`, as prom-label-proxy does; a selector that
already names the label in any other way (`namespace="payments"`, `namespace=~".+"`, `namespace!="shop"`)
or uses `or` between its matchers is refused instead, so that a query never silently means something else
than what was written. The query is read by a real PromQL parser, never by pattern matching, and the
scoped query is parsed again and checked before it is returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import promql_parser

from .errors import SpecError


@dataclass(frozen=True)
class MetricsScope:
    """The label that carries a series' namespace in Prometheus, and the namespace a query is held to."""

    label: str
    namespace: str


def scope_query(query: str, scope: MetricsScope, field: str) -> str:
    """`query` with every selector held to `scope`; a SpecError naming `field` when it cannot be."""
    expression = _parse(query, field)
    injected: list[str] = []

    def held_to_namespace(node: promql_parser.Expr) -> promql_parser.Expr | None:
        if not isinstance(node, promql_parser.VectorSelector):
            return None
        if _carries_scope(node, scope, field):
            return None
        injected.append(str(node))
        node.matchers = promql_parser.Matchers(
            [
                *node.matchers.matchers,
                promql_parser.Matcher(promql_parser.MatchOp.Equal, scope.label, scope.namespace),
            ]
        )
        # A fresh node: the transform keeps a node that was changed in place as it was.
        return promql_parser.parse(str(node))

    transformed = promql_parser.transform(expression, post_visit=held_to_namespace)
    # A query that already holds every selector to the namespace is sent as written.
    scoped = str(transformed) if injected else query
    _check_scoped(_parse(scoped, field), scope, field)
    return scoped


def _parse(query: str, field: str) -> promql_parser.Expr:
    try:
        return promql_parser.parse(query)
    except ValueError as err:
        raise SpecError(field, f"is not valid PromQL: {err}") from None


def _carries_scope(selector: promql_parser.VectorSelector, scope: MetricsScope, field: str) -> bool:
    """Whether the selector already holds exactly `LABEL="<namespace>"`; refuses any other use of LABEL."""
    if selector.matchers.or_matchers:
        raise SpecError(
            field,
            f"selector {selector} uses `or` between label matchers, which cannot be held to namespace "
            f"{scope.namespace!r}; write one query per alternative",
        )
    on_label = [matcher for matcher in selector.matchers.matchers if matcher.name == scope.label]
    for matcher in on_label:
        if matcher.op != promql_parser.MatchOp.Equal or matcher.value != scope.namespace:
            raise SpecError(
                field,
                f"selector {selector} may only see series with {scope.label}={json.dumps(scope.namespace)} "
                f"(the event's namespace), not {matcher}",
            )
    return bool(on_label)


def _check_scoped(expression: promql_parser.Expr, scope: MetricsScope, field: str) -> None:
    def check(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and not _carries_scope(node, scope, field):
            raise SpecError(field, f"selector {node} could not be held to namespace {scope.namespace!r}")
        return True

    promql_parser.walk(expression, pre_visit=check)
