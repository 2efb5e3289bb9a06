"""Replay of a traffic curve against scaling policies: static, reactive HPA, cron-at-start and this operator.

Imports only `campaign_autoscaler.planning` from this project; matplotlib is imported lazily by `plot`.
"""

from .policies import (
    TICK,
    CampaignAutoscaler,
    CronAtStart,
    HpaState,
    Observation,
    Policy,
    ReactiveHpa,
    StaticBaseline,
    ceil_ratio,
    pods_needed,
)
from .replay import (
    CapacityError,
    PodPool,
    Simulation,
    SimulationSetup,
    Slot,
    Trace,
    baseline_demand,
    campaign_windows,
    default_capacity_per_pod,
    oracle_trace,
    policies_for,
    replay,
    simulate,
)
from .report import PolicySummary, render_table, summaries, summarize, to_json
from .traffic import CSV_HEADER, TrafficCurve, TrafficError, parse_traffic_csv, synthetic_9_9

__all__ = [
    "CSV_HEADER",
    "TICK",
    "CampaignAutoscaler",
    "CapacityError",
    "CronAtStart",
    "HpaState",
    "Observation",
    "PodPool",
    "Policy",
    "PolicySummary",
    "ReactiveHpa",
    "Simulation",
    "SimulationSetup",
    "Slot",
    "StaticBaseline",
    "Trace",
    "TrafficCurve",
    "TrafficError",
    "baseline_demand",
    "campaign_windows",
    "ceil_ratio",
    "default_capacity_per_pod",
    "oracle_trace",
    "parse_traffic_csv",
    "pods_needed",
    "policies_for",
    "render_table",
    "replay",
    "simulate",
    "summaries",
    "summarize",
    "synthetic_9_9",
    "to_json",
]
