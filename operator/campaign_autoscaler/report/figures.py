"""The report's plots (matplotlib, the `demo` extra): one PNG per target, embedded in the page as base64.

Demand (in replicas: ceil(metric / targetPerReplica)) and the operator's desired and Ready replicas over the
lifecycle, with the lead time and the window shaded, every shortfall stretch marked and every transition
drawn as a line.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from campaign_autoscaler.planning import format_duration

from .collect import ReportData, TargetReportData

PLOTS_NEED = "plots need matplotlib: pip install 'campaign-autoscaler[demo]'"


def plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def target_png(data: ReportData, target: TargetReportData) -> bytes:
    from matplotlib import dates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg backend, without touching pyplot's global state
    axes = figure.subplots()
    _shade(axes, data, target)
    if target.demand:
        _step(axes, target.demand, color="black", linewidth=1.2, linestyle="--", label="demand (metric)")
    _step(axes, target.desired, color="tab:blue", linewidth=1.6, label="desired")
    _step(axes, target.ready, color="tab:green", linewidth=2.0, label="Ready")
    axes.set_xlim(data.begin, data.until)
    axes.set_ylim(bottom=0)
    axes.xaxis.set_major_formatter(dates.DateFormatter("%H:%M:%S"))
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("replicas")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", fontsize="small", ncols=3)
    axes.set_title(f"{data.namespace}/{target.name}: demand and Ready capacity")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _step(axes: Any, points: list[tuple[Any, float]], **style: Any) -> None:
    if points:
        axes.step([at for at, _ in points], [value for _, value in points], where="post", **style)


def _shade(axes: Any, data: ReportData, target: TargetReportData) -> None:
    window = data.window
    lead = format_duration(data.spec.lead_time)
    axes.axvspan(data.begin, window.start, color="tab:cyan", alpha=0.12, label=f"lead time ({lead})")
    axes.axvspan(window.start, min(window.end, data.until), color="tab:blue", alpha=0.07, label="window")
    for index, (start, end) in enumerate(target.shortfalls):
        axes.axvspan(start, end, color="tab:red", alpha=0.3, label="short" if index == 0 else None)
    for row in data.transitions:
        axes.axvline(row.transition.at, color="gray", linestyle=":", linewidth=0.8)
