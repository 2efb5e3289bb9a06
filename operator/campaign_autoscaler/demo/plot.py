"""The plot: replicas and Ready per Deployment, the traffic and checkout's Ready capacity, phases shaded."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .observe import ClusterSample, DeploymentState
from .scenario import EVENT_NAME, METRIC_TARGET, TARGET_PER_REPLICA, DemoPlan, DemoTimeline

PLOT_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple")


def write_demo_plot(
    plan: DemoPlan,
    samples: Sequence[ClusterSample],
    path: Path,
    timeline: DemoTimeline,
    live_metric: bool,
    namespace: str,
) -> None:
    """A PNG: replicas and Ready per Deployment, and the traffic, over time, with the phases shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 8), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg backend, without touching pyplot's global state
    replicas_axes, traffic_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    seconds = [(sample.at - plan.window.start).total_seconds() for sample in samples]
    _draw_replicas(replicas_axes, plan, samples, seconds)
    _draw_traffic(traffic_axes, samples, seconds, live_metric)
    for axes in (replicas_axes, traffic_axes):
        _shade_phases(axes, plan)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", fontsize="small")
    traffic_axes.set_xlabel("seconds from the window opening")
    figure.suptitle(
        f"campaign-autoscaler demo: CampaignEvent {namespace}/{EVENT_NAME}, the 9.9 sale compressed "
        f"({timeline.pace()})"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100, metadata={"Software": None})


def _series(
    samples: Sequence[ClusterSample], name: str, read: Callable[[DeploymentState], int]
) -> list[float]:
    return [read(s.deployments[name]) if name in s.deployments else math.nan for s in samples]


def _draw_replicas(axes: Any, plan: DemoPlan, samples: Sequence[ClusterSample], seconds: list[float]) -> None:
    for color, name in zip(PLOT_COLORS, plan.names, strict=False):
        spec = _series(samples, name, lambda state: state.spec_replicas)
        ready = _series(samples, name, lambda state: state.ready_replicas)
        axes.step(seconds, spec, where="post", color=color, linewidth=2, label=f"{name}: spec.replicas")
        axes.step(seconds, ready, where="post", color=color, linestyle="--", label=f"{name}: Ready")
        axes.axhline(plan.baselines[name], color=color, linestyle=":", linewidth=1, alpha=0.6)
    axes.set_ylabel("replicas")
    axes.set_ylim(bottom=0)
    axes.set_title("Replicas per Deployment (dotted: baseline)", loc="left", fontsize="medium")


def _draw_traffic(
    axes: Any, samples: Sequence[ClusterSample], seconds: list[float], live_metric: bool
) -> None:
    traffic = [sample.traffic_rps for sample in samples]
    axes.step(seconds, traffic, where="post", color="black", label="checkout traffic (synthetic 9.9)")
    capacity = [
        rps * TARGET_PER_REPLICA for rps in _series(samples, METRIC_TARGET, lambda s: s.ready_replicas)
    ]
    axes.step(
        seconds,
        capacity,
        where="post",
        color="tab:green",
        label=f"checkout Ready capacity (Ready x {TARGET_PER_REPLICA:g} req/s)",
    )
    if live_metric:
        seen = [
            (x, float(s.targets[METRIC_TARGET].metric_value or "nan"))
            for x, s in zip(seconds, samples, strict=True)
            if METRIC_TARGET in s.targets
        ]
        axes.plot(
            [x for x, _ in seen],
            [v for _, v in seen],
            ".",
            color="tab:orange",
            markersize=3,
            label="metric value the operator read",
        )
    axes.set_ylabel("requests/s")
    axes.set_ylim(bottom=0)
    axes.set_title("Traffic and checkout capacity", loc="left", fontsize="medium")


def _shade_phases(axes: Any, plan: DemoPlan) -> None:
    spans = (
        (plan.scaling_starts_at, plan.window.start, "tab:green", "lead time (PreScaling)"),
        (plan.window.start, plan.window.end, "tab:blue", "window (Active)"),
        (plan.window.end, plan.completes_at, "tab:orange", "ramp-down"),
    )
    for start, end, color, label in spans:
        axes.axvspan(
            (start - plan.window.start).total_seconds(),
            (end - plan.window.start).total_seconds(),
            color=color,
            alpha=0.08,
            label=label,
        )
    for step in plan.steps:
        axes.axvline(
            (step.transition.at - plan.window.start).total_seconds(),
            color="gray",
            linestyle=":",
            linewidth=0.8,
        )
