"""Reads what preflight judges: the nodes and what their pods request, and a namespace's ResourceQuotas.

For `plan --kubeconfig`, with the user's credentials (list Nodes, Pods in every namespace, ResourceQuotas).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from campaign_autoscaler.adapters.placeholders import pod_requests, quantities
from campaign_autoscaler.planning.headroom import sum_requests
from campaign_autoscaler.planning.preflight import PODS, ClusterCapacity, NodeFacts, QuotaFacts

PAGE_SIZE = 500
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"

Request = Callable[..., dict[str, Any]]


def node_facts(body: Mapping[str, Any]) -> NodeFacts:
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
    )
    return NodeFacts(
        name=meta.get("name", ""),
        allocatable=quantities(status.get("allocatable") or {}),
        usable=ready and not spec.get("unschedulable"),
    )


def quota_facts(body: Mapping[str, Any]) -> QuotaFacts:
    """A ResourceQuota as its controller last counted it (its spec, with nothing used, before it has)."""
    status = body.get("status") or {}
    hard = status.get("hard") or (body.get("spec") or {}).get("hard") or {}
    return QuotaFacts(
        name=(body.get("metadata") or {}).get("name", ""),
        hard=quantities(hard),
        used=quantities(status.get("used") or {}),
    )


def _items(
    request: Request, path: str, query: list[tuple[str, str]] | None = None
) -> Iterator[dict[str, Any]]:
    """Every item of a listing, page by page."""
    params = [*(query or []), ("limit", str(PAGE_SIZE))]
    while True:
        page = request("GET", path, query=params)
        yield from page.get("items") or ()
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
        params = [*(query or []), ("limit", str(PAGE_SIZE)), ("continue", token)]


def read_capacity(request: Request, namespace: str) -> ClusterCapacity:
    """The nodes, what the live pods bound to the usable ones request, and the namespace's quotas."""
    nodes = tuple(node_facts(item) for item in _items(request, "/api/v1/nodes"))
    usable = {node.name for node in nodes if node.usable}
    bound = [
        pod
        for pod in _items(request, "/api/v1/pods", [("fieldSelector", LIVE_PODS)])
        if (pod.get("spec") or {}).get("nodeName") in usable
    ]
    requested = sum_requests(pod_requests(pod.get("spec") or {}) for pod in bound)
    requested[PODS] = Decimal(len(bound))
    quotas = tuple(
        quota_facts(item) for item in _items(request, f"/api/v1/namespaces/{namespace}/resourcequotas")
    )
    return ClusterCapacity(nodes=nodes, requested=requested, quotas=quotas)
