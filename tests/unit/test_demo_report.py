"""The demo's campaign report, without a cluster: what it waits for, what it says besides the summary, and
how the operator is started so that Prometheus can scrape it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException
from rich.console import Console

from campaign_autoscaler.demo.campaign_report import (
    CampaignReport,
    print_campaign_report,
    unsaid,
    wait_for_summary,
)
from campaign_autoscaler.demo.environment import operator_argv
from campaign_autoscaler.demo.scenario import SHORT_TIMELINE


class SummaryAfter:
    """A reader whose event has no status.summary for the first `reads` reads (the first one failing)."""

    def __init__(self, reads: int) -> None:
        self.reads = reads
        self.calls = 0

    def summary(self) -> dict[str, Any] | None:
        self.calls += 1
        if self.calls == 1:
            raise ApiException(status=503, reason="Service Unavailable")
        return {"headline": "done"} if self.calls > self.reads else None


def test_the_wait_ends_when_the_summary_appears_and_an_unanswered_read_is_tried_again():
    reader = SummaryAfter(reads=2)
    assert wait_for_summary(reader, timeout=60)  # type: ignore[arg-type]
    assert reader.calls == 3


def test_the_wait_is_bounded_and_says_the_summary_did_not_appear():
    reader = SummaryAfter(reads=10**6)
    assert not wait_for_summary(reader, timeout=0)  # type: ignore[arg-type]
    assert reader.calls == 1


def test_only_the_problems_the_summary_does_not_print_are_added_once_each():
    said = ["checkout: its metric query: no samples"]
    problems = [*said, "plots need matplotlib", "plots need matplotlib"]
    assert unsaid(problems, said) == ("plots need matplotlib",)
    assert unsaid(said, said) == ()


def test_a_report_that_could_not_be_made_is_one_line_after_the_notes():
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    report = CampaignReport(
        None, None, ("status.summary did not appear within 30s",), "CampaignEvent shop/sale-9-9 not found"
    )
    print_campaign_report(console, report)
    assert out.getvalue().splitlines() == [
        "! status.summary did not appear within 30s",
        "! No report: CampaignEvent shop/sale-9-9 not found",
    ]


def test_the_operator_serves_its_metrics_only_when_asked():
    argv = operator_argv(Path("/k"), SHORT_TIMELINE, "http://127.0.0.1:9090", "shop", metrics_port=18080)
    assert argv[argv.index("--metrics-port") + 1] == "18080"
    assert "--metrics-port" not in operator_argv(Path("/k"), SHORT_TIMELINE, None, "shop")
