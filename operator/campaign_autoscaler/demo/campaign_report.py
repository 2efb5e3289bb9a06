"""The campaign report the demo ends with: once the operator has written `status.summary`, the same page
`campaign-autoscaler report` writes, for the compressed sale, before anything is cleaned up."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from rich.console import Console
from urllib3.exceptions import HTTPError

from campaign_autoscaler.report import (
    ReportData,
    ReportInputError,
    ReportReadError,
    print_summary,
    write_report,
)

from .observe import ClusterReader
from .scenario import EVENT_NAME

DEFAULT_REPORT_PATH = "campaign-report.html"
SUMMARY_TIMEOUT_SECONDS = 30.0  # the Completed pass writes it; passes run every 2 s in the demo
SUMMARY_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class CampaignReport:
    """What came of the report: its path and contents, or why there is none; `notes` are what the summary
    table does not already say (one line each)."""

    path: Path | None
    data: ReportData | None
    notes: tuple[str, ...]
    failure: str | None = None


def wait_for_summary(reader: ClusterReader, timeout: float) -> bool:
    """Whether `status.summary` appeared within `timeout` seconds (an unanswered read is tried again)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ApiException, HTTPError, OSError):
            if reader.summary() is not None:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(SUMMARY_POLL_SECONDS)


def unsaid(problems: Sequence[str], said: Sequence[str]) -> tuple[str, ...]:
    """The problems not already among those `said` (the summary prints the report data's own)."""
    return tuple(problem for problem in dict.fromkeys(problems) if problem not in said)


def write_campaign_report(
    api_client: client.ApiClient,
    namespace: str,
    reader: ClusterReader,
    prometheus_url: str | None,
    path: Path,
    now: datetime | None = None,
    summary_timeout: float = SUMMARY_TIMEOUT_SECONDS,
) -> CampaignReport:
    """Wait (bounded) for `status.summary`, then write the report to `path` (absolute). Never raises for a
    report that cannot be made: the demo says why in one line and goes on."""
    notes: list[str] = []
    if not wait_for_summary(reader, summary_timeout):
        notes.append(
            f"status.summary did not appear within {summary_timeout:g}s: the report has no recorded summary"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        result = write_report(api_client, namespace, EVENT_NAME, prometheus_url, path, now=now)
    except (ReportInputError, ReportReadError) as err:
        return CampaignReport(None, None, tuple(notes), str(err))
    except OSError as err:
        return CampaignReport(None, None, tuple(notes), f"could not write {path}: {err}")
    return CampaignReport(result.path, result.data, (*notes, *unsaid(result.problems, result.data.problems)))


def print_campaign_report(console: Console, report: CampaignReport) -> None:
    """The report's short summary, what it could not do, and where it is."""
    if report.data is not None:
        print_summary(console, report.data)
    for note in report.notes:
        console.print(f"[yellow]![/] {note}", highlight=False)
    if report.path is not None:
        console.print(f"[green]✓[/] Report: {report.path}", highlight=False)
    else:
        console.print(f"[yellow]![/] No report: {report.failure}", highlight=False)
