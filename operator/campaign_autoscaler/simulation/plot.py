"""A PNG of a replay: demand and each policy's Ready capacity over time (matplotlib, the `demo` extra)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from campaign_autoscaler.planning import format_duration, lifecycle_start

from .replay import Simulation, Trace

ZOOM_BEFORE = timedelta(minutes=30)  # the lower panel: from this long before the pre-scale ...
ZOOM_AFTER = timedelta(hours=1)  # ... to this long after the window opens
_POLICY_STYLES = {
    "static baseline": {"color": "tab:gray", "linestyle": ":"},
    "reactive HPA": {"color": "tab:orange"},
    "cron at start": {"color": "tab:purple"},
    "campaign-autoscaler": {"color": "tab:green", "linewidth": 2.0},
    "campaign-autoscaler curve": {"color": "tab:blue", "linewidth": 2.0},
}
# This operator's other run (with or without node headroom), when nodes take time to come.
_VARIANT_STYLE = {"color": "tab:olive", "linewidth": 1.5, "linestyle": "--"}


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def write_plot(simulation: Simulation, path: str) -> None:
    """Write the replay as a PNG: the whole curve on top, the opening of the first window below."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise PlotUnavailableError(
            "--plot needs matplotlib: pip install 'campaign-autoscaler[demo]'"
        ) from err
    figure = Figure(figsize=(13, 9), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg backend, without touching pyplot's global state
    whole, zoom = figure.subplots(2, 1)
    _draw(whole, simulation, None)
    if simulation.windows:
        opening = simulation.windows[0]
        pre_scale = lifecycle_start(simulation.setup.spec, opening)
        _draw(zoom, simulation, (pre_scale - ZOOM_BEFORE, opening.start + ZOOM_AFTER))
        zoom.set_title("Around the first opening")
    else:
        zoom.set_visible(False)
    setup = simulation.setup
    handles, labels = whole.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=4, fontsize="small")
    nodes = (
        f"\nnew nodes Ready {format_duration(setup.node_startup)} after pods need them; the nodes hold the "
        "baseline's pods at first"
        if setup.node_startup is not None
        else ""
    )
    figure.suptitle(
        f"{setup.target_label}: demand vs Ready capacity ({simulation.floor.reason}, "
        f"pods Ready {format_duration(setup.pod_startup)} after the scale-up{nodes})"
    )
    figure.savefig(path, format="png", dpi=100, metadata={"Software": None})


def _draw(axes: Any, simulation: Simulation, span: tuple[datetime, datetime] | None) -> None:
    from matplotlib import dates

    zone = simulation.setup.spec.timezone
    capacity = simulation.setup.capacity_per_pod
    times = [slot.at for slot in simulation.oracle.slots]
    demand = [slot.demand_rps for slot in simulation.oracle.slots]
    axes.step(times, demand, where="post", color="black", linewidth=1.5, label="demand")
    for trace in simulation.traces:
        variant = trace.policy.startswith("campaign-autoscaler ")
        style = _VARIANT_STYLE if variant else _POLICY_STYLES.get(trace.policy, {})
        axes.step(times, _ready_rps(trace, capacity), where="post", label=f"Ready: {trace.policy}", **style)
    _mark_windows(axes, simulation)
    if span is not None:
        axes.set_xlim(*span)
    axes.set_ylim(bottom=0)
    axes.xaxis.set_major_formatter(dates.DateFormatter("%m-%d %H:%M", tz=zone))
    axes.set_xlabel(f"time ({simulation.setup.spec.timezone_name})")
    axes.set_ylabel("requests/s")
    axes.grid(True, alpha=0.3)


def _mark_windows(axes: Any, simulation: Simulation) -> None:
    spec = simulation.setup.spec
    lead = format_duration(spec.lead_time)
    for index, window in enumerate(simulation.windows):
        first = index == 0
        pre_scale = lifecycle_start(spec, window)
        axes.axvspan(
            pre_scale,
            window.start,
            color="tab:green",
            alpha=0.12,
            label=f"lead time ({lead})" if first else None,
        )
        axes.axvline(pre_scale, color="tab:green", linestyle="--", linewidth=1)
        axes.axvspan(
            window.start, window.end, color="tab:blue", alpha=0.08, label="event window" if first else None
        )


def _ready_rps(trace: Trace, capacity_per_pod: float) -> list[float]:
    return [slot.ready * capacity_per_pod for slot in trace.slots]
