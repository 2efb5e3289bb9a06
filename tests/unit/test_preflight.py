"""Preflight without a cluster: what the floors add against what the nodes and the quotas have free."""

from __future__ import annotations

from decimal import Decimal

from campaign_autoscaler.planning import parse_spec, resolve_window
from campaign_autoscaler.planning.instants import local_time
from campaign_autoscaler.planning.preflight import (
    ClusterCapacity,
    NodeFacts,
    QuotaFacts,
    WorkloadNeed,
    format_quantity,
    preflight,
    quota_need,
)

GI = Decimal(2**30)
RAW = {
    "timezone": "Asia/Jakarta",
    "start": "2026-09-09T00:00:00",
    "end": "2026-09-09T10:00:00",
    "leadTime": "30m",
    "targets": [{"name": "checkout"}],
}
CHECKOUT = WorkloadNeed("checkout", 14, {"cpu": Decimal(1), "memory": GI}, {"cpu": Decimal(2)})


def node(name: str, cpu: int = 4, usable: bool = True) -> NodeFacts:
    return NodeFacts(name, {"cpu": Decimal(cpu), "memory": 16 * GI, "pods": Decimal(110)}, usable)


TWO_NODES = (node("a"), node("b"))


def check(raw=RAW, needs=(CHECKOUT,), nodes=TWO_NODES, quotas=(), requested=None):
    spec = parse_spec(raw)
    window = resolve_window(spec, spec.start)
    capacity = ClusterCapacity(
        tuple(nodes), requested or {"cpu": Decimal(2), "memory": 4 * GI, "pods": Decimal(3)}, tuple(quotas)
    )
    return preflight(spec, window, list(needs), capacity, lambda moment: local_time(moment, spec.timezone))


def test_the_nodes_short_of_cpu_say_how_many_nodes_to_add_and_by_when() -> None:
    checked = check()
    rows = {row.resource: row for row in checked.resources}
    assert (rows["cpu"].needed, rows["cpu"].allocatable, rows["cpu"].free, rows["cpu"].short) == (14, 8, 6, 8)
    assert rows["memory"].short == 0 and rows["pods"].needed == 14 and rows["pods"].short == 0
    assert not checked.ok
    (verdict,) = checked.verdicts
    assert verdict == (
        "Needs 8 CPU more than the nodes have: the cluster autoscaler must add about 2 node(s) of 4 CPU "
        "before 2026-09-08 23:30:00 WIB; set nodeHeadroom.leadTime to at least your node provisioning time"
    )


def test_with_node_headroom_the_verdict_says_when_the_placeholders_ask() -> None:
    (verdict,) = check({**RAW, "nodeHeadroom": {"leadTime": "10m"}}).verdicts
    assert "placeholders ask for them from 2026-09-08 23:20:00 WIB" in verdict
    assert "nodeHeadroom.leadTime (10m) at least your node provisioning time" in verdict


def test_unusable_nodes_count_for_nothing() -> None:
    checked = check(nodes=(node("a"), node("b"), node("cordoned", cpu=64, usable=False)))
    assert {row.resource: row.allocatable for row in checked.resources}["cpu"] == 8
    (verdict,) = check(nodes=()).verdicts
    assert verdict.startswith("No Ready node can take the floors (14 CPU, 14Gi memory, 14 pods)")


def test_enough_room_is_said_plainly() -> None:
    checked = check(nodes=(node("a", 16), node("b", 16)))
    assert checked.ok
    assert checked.verdicts == ("The nodes have room for the floors, and no ResourceQuota refuses them.",)


def test_quotas_are_judged_per_resource_they_limit() -> None:
    quota = QuotaFacts(
        "compute",
        hard={
            "pods": Decimal(20),
            "requests.cpu": Decimal(10),
            "limits.cpu": Decimal(40),
            "services": Decimal(5),
        },
        used={"pods": Decimal(2), "requests.cpu": Decimal(2), "limits.cpu": Decimal(4)},
    )
    checked = check(nodes=(node("a", 32), node("b", 32)), quotas=(quota,))
    rows = {row.resource: row for row in checked.quotas}
    assert set(rows) == {"pods", "requests.cpu", "limits.cpu"}  # services are not what the floors add
    assert (rows["requests.cpu"].needed, rows["requests.cpu"].free, rows["requests.cpu"].short) == (14, 8, 6)
    assert rows["limits.cpu"].needed == 28 and rows["limits.cpu"].short == 0
    assert rows["pods"].short == 0
    assert checked.verdicts == (
        "ResourceQuota compute refuses the floors: they need 14 more requests.cpu, it has 8 left of 10; "
        "raise it by 6 (node headroom's placeholders count against it too)",
    )


def test_what_a_quota_resource_grows_by() -> None:
    needs = [CHECKOUT, WorkloadNeed("search", 2)]
    assert quota_need("count/pods", needs) == 16
    assert quota_need("memory", needs) == 14 * GI
    assert quota_need("requests.nvidia.com/gpu", needs) == 0
    assert quota_need("persistentvolumeclaims", needs) is None


def test_quantities_read_for_people() -> None:
    assert format_quantity("cpu", Decimal("0.25")) == "0.25"
    assert format_quantity("memory", 14 * GI) == "14Gi"
    assert format_quantity("requests.memory", Decimal(64 * 2**20)) == "64Mi"
    assert format_quantity("pods", Decimal(110)) == "110"
