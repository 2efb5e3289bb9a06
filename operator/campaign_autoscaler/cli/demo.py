"""`campaign-autoscaler demo`: the compressed 9.9 sale on a throw-away cluster."""

from __future__ import annotations

import argparse

from campaign_autoscaler.cli.console import _fail
from campaign_autoscaler.cli.inputs import InputFileError, load_api_client


def _add_demo_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="watch the operator scale for a compressed 9.9 sale on a throw-away local cluster (~2 minutes)",
    )
    demo.add_argument(
        "--short", action="store_true", help="a shorter compressed timeline (under a minute), e.g. for CI"
    )
    demo.add_argument(
        "--plot",
        default="campaign-demo.png",
        metavar="PATH",
        help="write the PNG of replicas, Ready and traffic here (default ./campaign-demo.png)",
    )
    demo.add_argument(
        "--report",
        default="campaign-report.html",
        metavar="PATH",
        help="write the campaign report (HTML, as `report` writes it) here at the end "
        "(default ./campaign-report.html)",
    )
    demo.add_argument(
        "--no-prometheus",
        action="store_true",
        help="run without Prometheus and the live metric: checkout holds its plain floor",
    )
    demo.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="run in a throw-away namespace of this existing cluster instead of a local control plane "
        "(the CRD is applied if missing; everything the demo created is deleted at the end)",
    )
    demo.add_argument("--context", help="kubeconfig context to use with --kubeconfig")


def run_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from campaign_autoscaler.demo.environment import ExistingCluster
    from campaign_autoscaler.demo.run import run_demo_command

    cluster = None
    if args.context is not None and args.kubeconfig is None:
        return _fail("--context needs --kubeconfig FILE (the demo's own control plane has one context)")
    if args.kubeconfig is not None:
        try:
            api_client = load_api_client(args.kubeconfig, args.context, in_cluster=False)
        except InputFileError as err:
            return _fail(err)
        cluster = ExistingCluster(Path(args.kubeconfig).resolve(), args.context, api_client)
    return run_demo_command(args.short, args.plot, args.no_prometheus, cluster, args.report)
