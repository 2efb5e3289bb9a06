"""`campaign-autoscaler report`: after (or during) a sale, was capacity enough and what to set next time.

`write_report` is the one entry point, for the command and for the demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from kubernetes import client

from campaign_autoscaler.adapters.prometheus import PrometheusMetricsSource, PrometheusSettings
from campaign_autoscaler.planning import MetricsScope

from .collect import ReportData, ReportInputError, ReportReadError, collect
from .figures import PLOTS_NEED, plots_available, png_data_uri, target_png
from .render import print_summary, to_html, to_markdown

Format = Literal["html", "markdown"]


@dataclass(frozen=True)
class ReportResult:
    path: Path
    data: ReportData
    problems: list[str]  # what could not be read or drawn; empty for a complete report

    @property
    def complete(self) -> bool:
        return not self.problems


def write_report(
    api_client: client.ApiClient,
    namespace: str,
    event: str,
    prometheus_url: str | None,
    out_path: str | Path,
    *,
    output_format: Format = "html",
    prometheus_timeout: float = 10.0,
    metrics_namespace_label: str = "namespace",
    now: datetime | None = None,
) -> ReportResult:
    """Read the event and Prometheus, write the report to `out_path`, and return what it holds.

    ReportInputError: no report can be made of this event (unknown, invalid, never ran). ReportReadError: the
    API server could not be read. An unreachable Prometheus is no error here: the report is written from the
    status alone and `problems` says so (`data.prometheus_unreachable`). A target's own query is asked as
    the operator asks it: held to the event's namespace by `metrics_namespace_label` (empty: as written).
    """
    metrics = None
    if prometheus_url:
        metrics = PrometheusMetricsSource(PrometheusSettings(url=prometheus_url, timeout=prometheus_timeout))
    scope = MetricsScope(metrics_namespace_label, namespace) if metrics_namespace_label else None
    data = collect(api_client, namespace, event, metrics, now or datetime.now(UTC), scope)
    problems = list(data.problems)
    path = Path(out_path)
    if output_format == "markdown":
        text = to_markdown(data)
    else:
        plots: dict[str, str] = {}
        plot_problem = None
        drawable = [target for target in data.targets if target.desired or target.ready]
        if drawable and not plots_available():
            plot_problem = PLOTS_NEED
            problems.append(plot_problem)
        elif drawable:
            plots = {target.name: png_data_uri(target_png(data, target)) for target in drawable}
        text = to_html(data, plots, plot_problem)
    path.write_text(text, encoding="utf-8")
    return ReportResult(path, data, problems)


__all__ = [
    "ReportData",
    "ReportInputError",
    "ReportReadError",
    "ReportResult",
    "print_summary",
    "write_report",
]
