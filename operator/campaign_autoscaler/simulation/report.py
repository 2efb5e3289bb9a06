"""What each policy cost and where it fell short, as a table or JSON."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rich.console import Console
from rich.table import Table

from campaign_autoscaler.planning import format_duration
from campaign_autoscaler.planning.instants import iso_utc, local_time

from .policies import TICK
from .replay import Simulation, Trace
from .traffic import MINUTE

_TICKS_PER_HOUR = 3600 // int(TICK.total_seconds())
_TICKS_PER_MINUTE = MINUTE // TICK


@dataclass(frozen=True)
class PolicySummary:
    policy: str
    under_provisioned_minutes: Fraction  # time with fewer Ready pods than the demand needs
    missing_pod_minutes: Fraction  # the capacity missing over that time, in pod-minutes
    worst_shortfall_pods: int
    pod_hours: Fraction  # every pod asked for, Ready or starting, node headroom's placeholders included
    cost_vs_oracle: Fraction | None  # pod_hours / the oracle's; None when the oracle needs no pod at all
    replica_changes: int = 0  # how often the replicas asked for changed: the writes a policy makes
    placeholder_hours: Fraction = Fraction(0)  # the placeholders' share of pod_hours


def summarize(trace: Trace, oracle: Trace) -> PolicySummary:
    short_slots = [slot.needed - slot.ready for slot in trace.slots if slot.ready < slot.needed]
    placeholder_ticks = sum(slot.placeholders for slot in trace.slots)
    pod_ticks = sum(slot.replicas for slot in trace.slots) + placeholder_ticks
    oracle_pod_ticks = sum(slot.replicas for slot in oracle.slots)
    return PolicySummary(
        policy=trace.policy,
        under_provisioned_minutes=Fraction(len(short_slots), _TICKS_PER_MINUTE),
        missing_pod_minutes=Fraction(sum(short_slots), _TICKS_PER_MINUTE),
        worst_shortfall_pods=max(short_slots, default=0),
        pod_hours=Fraction(pod_ticks, _TICKS_PER_HOUR),
        cost_vs_oracle=Fraction(pod_ticks, oracle_pod_ticks) if oracle_pod_ticks else None,
        replica_changes=sum(
            1 for before, after in itertools.pairwise(trace.slots) if before.replicas != after.replicas
        ),
        placeholder_hours=Fraction(placeholder_ticks, _TICKS_PER_HOUR),
    )


def summaries(simulation: Simulation) -> tuple[PolicySummary, ...]:
    """One summary per policy, then the oracle's."""
    traces = (*simulation.traces, simulation.oracle)
    return tuple(summarize(trace, simulation.oracle) for trace in traces)


def render_table(simulation: Simulation, console: Console) -> None:
    setup, curve = simulation.setup, simulation.curve
    zone = setup.spec.timezone
    console.print(f"Target {setup.target_label}: baseline {setup.baseline}, {simulation.floor.reason}")
    console.print(
        f"Traffic: {curve.source}, {len(curve.rps)} minutes from {local_time(curve.start, zone)} "
        f"({iso_utc(curve.start)}), peak {max(curve.rps, default=0):g} rps"
    )
    console.print(
        f"Capacity {setup.capacity_per_pod:g} rps per pod, pods Ready {format_duration(setup.pod_startup)} "
        f"after they are asked for, lead time {format_duration(setup.spec.lead_time)}"
    )
    if setup.node_startup is not None:
        console.print(
            f"Nodes: room for the baseline's pods at first; a new node is Ready "
            f"{format_duration(setup.node_startup)} after pods need it (placeholders included)"
        )
    for window in simulation.windows:
        console.print(f"Window: {local_time(window.start, zone)} -> {local_time(window.end, zone)}")
    table = Table(title="Replay, 15 s resolution")
    for header in (
        "Policy",
        "Under-provisioned min",
        "Missing pod-min",
        "Worst shortfall (pods)",
        "Pod-hours",
    ):
        table.add_column(header, justify="left" if header == "Policy" else "right")
    headroom = any(summary.placeholder_hours for summary in summaries(simulation))
    if headroom:
        table.add_column("of them placeholders", justify="right")
    table.add_column("Cost vs oracle", justify="right")
    table.add_column("Replica changes", justify="right")
    for summary in summaries(simulation):
        table.add_row(
            summary.policy,
            minutes_text(summary.under_provisioned_minutes),
            minutes_text(summary.missing_pod_minutes),
            str(summary.worst_shortfall_pods),
            _decimal(summary.pod_hours, 1),
            *([_decimal(summary.placeholder_hours, 1)] if headroom else []),
            "n/a" if summary.cost_vs_oracle is None else f"{_decimal(summary.cost_vs_oracle, 2)}x",
            str(summary.replica_changes),
        )
    console.print(table)


def to_json(simulation: Simulation) -> dict[str, Any]:
    setup, curve = simulation.setup, simulation.curve
    return {
        "target": setup.target_label,
        "baselineReplicas": setup.baseline,
        "floor": {
            "replicas": simulation.floor.replicas,
            "minReplicas": simulation.floor.min_replicas,
            "maxReplicas": simulation.floor.max_replicas,
            "reason": simulation.floor.reason,
        },
        "traffic": {"source": curve.source, "start": iso_utc(curve.start), "minutes": len(curve.rps)},
        "capacityPerPod": setup.capacity_per_pod,
        "podStartup": format_duration(setup.pod_startup),
        "nodeStartup": format_duration(setup.node_startup) if setup.node_startup is not None else None,
        "windows": [{"start": iso_utc(w.start), "end": iso_utc(w.end)} for w in simulation.windows],
        "policies": [
            {
                "policy": summary.policy,
                "underProvisionedMinutes": float(summary.under_provisioned_minutes),
                "missingPodMinutes": float(summary.missing_pod_minutes),
                "worstShortfallPods": summary.worst_shortfall_pods,
                "podHours": round(float(summary.pod_hours), 4),
                "placeholderPodHours": round(float(summary.placeholder_hours), 4),
                "costVsOracle": None
                if summary.cost_vs_oracle is None
                else round(float(summary.cost_vs_oracle), 4),
                "replicaChanges": summary.replica_changes,
            }
            for summary in summaries(simulation)
        ],
    }


def minutes_text(value: Fraction) -> str:
    """A count of (pod-)minutes at 15 s resolution: `383` when whole, else its quarters (`2.25`, `0.5`)."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.2f}".rstrip("0")


def _decimal(value: Fraction, places: int) -> str:
    return f"{float(value):.{places}f}"
