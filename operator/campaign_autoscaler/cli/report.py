"""`campaign-autoscaler report`: a campaign's report from Prometheus and the cluster."""

from __future__ import annotations

import argparse
import os

from campaign_autoscaler.cli.arguments import _add_metrics_namespace_label, _positive_seconds
from campaign_autoscaler.cli.console import _fail, _stdout_console
from campaign_autoscaler.cli.inputs import InputFileError, load_api_client


def _add_report_parser(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report",
        help="after (or during) a sale: was capacity enough, where was it short, what to set next time",
    )
    report.add_argument("event", help="the CampaignEvent's name")
    report.add_argument("-n", "--namespace", required=True, help="the CampaignEvent's namespace")
    report.add_argument(
        "--prometheus-url",
        default=os.environ.get("PROMETHEUS_URL"),
        help="the Prometheus that scrapes the operator's /metrics (default $PROMETHEUS_URL)",
    )
    report.add_argument(
        "--prometheus-timeout", type=_positive_seconds, default=10.0, help="per query (default 10s)"
    )
    report.add_argument(
        "--out", metavar="PATH", help="where to write it (default ./EVENT-report.html or .md)"
    )
    report.add_argument("--format", choices=("html", "markdown"), default="html", help="page format")
    _add_metrics_namespace_label(report)
    report.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    report.add_argument("--context", help="kubeconfig context to use")


def run_report(args: argparse.Namespace) -> int:
    from campaign_autoscaler.report import ReportInputError, ReportReadError, print_summary, write_report

    out = args.out or f"{args.event}-report.{'md' if args.format == 'markdown' else 'html'}"
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        return _fail(f"--out {out}: {folder} is not a writable folder")
    if not args.prometheus_url:
        return _fail("--prometheus-url (or $PROMETHEUS_URL) is required: the figures come from Prometheus")
    try:
        api_client = load_api_client(args.kubeconfig, args.context, in_cluster=False)
        result = write_report(
            api_client,
            args.namespace,
            args.event,
            args.prometheus_url,
            out,
            output_format=args.format,
            prometheus_timeout=args.prometheus_timeout,
            metrics_namespace_label=args.metrics_namespace_label,
        )
    except (InputFileError, ReportInputError) as err:
        return _fail(err)
    except ReportReadError as err:
        return _fail(err, code=1)
    console = _stdout_console()
    print_summary(console, result.data)
    console.print(f"Wrote {result.path}", highlight=False)
    if result.data.prometheus_unreachable:
        return _fail(f"Prometheus at {args.prometheus_url} could not be read: the report is partial", code=1)
    return 0
