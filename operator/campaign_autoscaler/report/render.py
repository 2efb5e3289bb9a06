"""The report as one self-contained HTML page, as Markdown for a post-mortem, and as a short terminal summary.

All three show the same rows (`target_rows`, `transition_rows`); only the page carries the plots, embedded as
data URIs so that it needs no network to be viewed.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from campaign_autoscaler.planning import format_duration
from campaign_autoscaler.planning.numbers import format_sample
from campaign_autoscaler.planning.summary import headline

from .collect import ReportData, TargetReportData

TARGET_COLUMNS = (
    "target",
    "peak desired",
    "peak Ready",
    "peak metric",
    "short in window (s)",
    "Ready at start",
    "Ready after (s)",
    "pod-hours Ready / desired / demand",
    "recommendation",
)
TRANSITION_COLUMNS = ("due (UTC)", "step", "phase", "applied (UTC)", "lag (s)")


def title(data: ReportData) -> str:
    return f"Campaign report: {data.namespace}/{data.event}"


def report_headline(data: ReportData) -> str:
    if data.status_summary and data.status_summary.get("headline"):
        return str(data.status_summary["headline"])
    summaries = [target.summary for target in data.targets if target.summary is not None]
    line = headline(data.event, summaries)
    return line.replace(" completed:", " so far:") if data.live else line


def target_rows(data: ReportData) -> list[list[str]]:
    recorded = _recorded(data)
    rows = []
    for target in data.targets:
        summary = target.summary
        advice = recorded.get(target.name, {}).get("recommendation") or (
            summary.recommendation if summary else ""
        )
        if summary is None:
            rows.append(
                [target.name, *_recorded_cells(recorded.get(target.name)), _pod_hours(target), advice]
            )
            continue
        rows.append(
            [
                target.name,
                _text(summary.peak_desired),
                _text(summary.peak_ready),
                format_sample(summary.peak_metric) if summary.peak_metric is not None else "-",
                f"{summary.short_seconds:g}",
                _yes_no(summary.ready_at_start),
                f"{summary.observed_ready_seconds:g}"
                if summary.observed_ready_seconds is not None
                else "never",
                _pod_hours(target),
                advice,
            ]
        )
    return rows


def transition_rows(data: ReportData) -> list[list[str]]:
    return [
        [
            _clock(row.transition.at),
            row.transition.label,
            str(row.transition.phase),
            _clock(row.applied) if row.applied is not None else "no scale",
            f"{row.lag_seconds:g}" if row.lag_seconds is not None else "-",
        ]
        for row in data.transitions
    ]


def facts(data: ReportData) -> list[tuple[str, str]]:
    window = data.window
    return [
        ("phase", data.phase),
        ("window (UTC)", f"{_clock(window.start, True)} to {_clock(window.end, True)}"),
        ("lead time", format_duration(data.spec.lead_time)),
        ("covered (UTC)", f"{_clock(data.begin, True)} to {_clock(data.until, True)}"),
        ("sampled every", f"{data.step_seconds:g}s"),
        ("generated (UTC)", _clock(data.generated_at, True)),
    ]


# --- HTML --------------------------------------------------------------------------------------------------
STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
.headline { font-size: 1.1em; font-weight: bold; }
.problems { background: #fff4e0; border: 1px solid #e0a040; padding: 0.5em 1em; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #ddd; }
"""


def to_html(data: ReportData, plots: Mapping[str, str], plot_problem: str | None) -> str:
    """The page; `plots` maps a target's name to its PNG as a data URI."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title(data))}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title(data))}</h1>",
        f'<p class="headline" id="headline">{_e(report_headline(data))}</p>',
    ]
    problems = [*data.problems, *([plot_problem] if plot_problem else [])]
    if problems:
        items = "".join(f"<li>{_e(problem)}</li>" for problem in problems)
        parts.append(
            '<div class="problems" id="problems"><b>Could not be read or is partial:</b>'
            f"<ul>{items}</ul></div>"
        )
    parts.append(_html_table(("", ""), [list(row) for row in facts(data)], "facts", header=False))
    parts.append("<h2>Targets</h2>")
    parts.append(_html_table(TARGET_COLUMNS, target_rows(data), "targets"))
    for target in data.targets:
        parts.append(f'<h2 id="target-{_e(target.name)}">{_e(target.name)}</h2>')
        parts.append(_shortfall_list(target))
        if target.name in plots:
            alt = f"{target.name}: demand, desired and Ready replicas over the lifecycle"
            parts.append(f'<figure><img class="plot" src="{plots[target.name]}" alt="{_e(alt)}"></figure>')
    parts.append("<h2>Transitions</h2>")
    parts.append(_html_table(TRANSITION_COLUMNS, transition_rows(data), "transitions"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(columns: Sequence[str], rows: list[list[str]], ident: str, header: bool = True) -> str:
    head = "<tr>" + "".join(f"<th>{_e(column)}</th>" for column in columns) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{ident}">{head}{body}</table>'


def _shortfall_list(target: TargetReportData) -> str:
    if not target.shortfalls:
        return "<p>No shortfall in the window.</p>"
    items = "".join(
        f"<li>{_clock(start)} to {_clock(end)} ({(end - start).total_seconds():g}s)</li>"
        for start, end in target.shortfalls
    )
    return f"<p>Ready below the demand:</p><ul>{items}</ul>"


# --- Markdown ----------------------------------------------------------------------------------------------
def to_markdown(data: ReportData) -> str:
    lines = [f"# {title(data)}", "", f"**{report_headline(data)}**", ""]
    if data.problems:
        lines += ["Could not be read or is partial:", "", *(f"- {problem}" for problem in data.problems), ""]
    lines += [*(f"- {label}: {value}" for label, value in facts(data)), ""]
    lines += ["## Targets", "", *_markdown_table(TARGET_COLUMNS, target_rows(data)), ""]
    for target in data.targets:
        for start, end in target.shortfalls:
            lines.append(
                f"- {target.name} short {_clock(start)} to {_clock(end)} ({(end - start).total_seconds():g}s)"
            )
    lines += ["", "## Transitions", "", *_markdown_table(TRANSITION_COLUMNS, transition_rows(data)), ""]
    return "\n".join(lines)


def _markdown_table(columns: Sequence[str], rows: list[list[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(columns), line(["---"] * len(columns)), *(line(row) for row in rows)]


# --- terminal ----------------------------------------------------------------------------------------------
def print_summary(console: Console, data: ReportData) -> None:
    console.print(f"[bold]{report_headline(data)}[/bold]", highlight=False)
    table = Table(*TARGET_COLUMNS[:7], "recommendation")
    for row in target_rows(data):
        table.add_row(*row[:7], row[8])
    console.print(table)
    for problem in data.problems:
        console.print(f"[yellow]Partial:[/yellow] {problem}", highlight=False)


def _recorded_cells(entry: Mapping[str, object] | None) -> list[str]:
    """Without Prometheus series: the numbers status.summary holds, marked as such."""
    if entry is None:
        return ["n/a"] * 6
    keys = ("peakDesiredReplicas", "peakReadyReplicas", "peakMetricValue", "shortSeconds")
    cells = [f"{entry[key]} (status)" if key in entry else "-" for key in keys]
    ready_at_start = entry.get("readyAtStart")
    cells.append(_yes_no(ready_at_start if isinstance(ready_at_start, bool) else None))
    seconds = entry.get("observedReadySeconds")
    cells.append(f"{seconds} (status)" if seconds is not None else "never")
    return cells


def _recorded(data: ReportData) -> dict[str, Mapping[str, object]]:
    if not data.status_summary:
        return {}
    return {str(entry.get("name")): entry for entry in data.status_summary.get("targets") or []}


def _pod_hours(target: TargetReportData) -> str:
    hours = target.pod_hours
    return " / ".join(f"{hours[key]:g}" if key in hours else "-" for key in ("ready", "desired", "demand"))


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _clock(moment: datetime, with_date: bool = False) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def _e(text: str) -> str:
    return html.escape(text, quote=True)
