"""`campaign-autoscaler run | plan | simulate | demo | report`.

The parser and `main`; each command in a module of its own, sharing `arguments`, `inputs` and `console`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from campaign_autoscaler import __version__
from campaign_autoscaler.cli.demo import _add_demo_parser, run_demo
from campaign_autoscaler.cli.plan import _add_plan_parser, run_plan
from campaign_autoscaler.cli.report import _add_report_parser, run_report
from campaign_autoscaler.cli.run import _add_run_parser, run_operator
from campaign_autoscaler.cli.simulate import _add_simulate_parser, run_simulate


class _Parser(argparse.ArgumentParser):
    """Bad flags get one line naming the problem (and where help is), exit code 2; no usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _values_joined(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """`--pod-startup -5s` as `--pod-startup=-5s`: argparse takes a value starting with `-` and a digit for
    a flag and reports a missing argument; joined, the value reaches the flag's own check."""
    takes_value = {
        option
        for action in _all_actions(parser)
        if action.option_strings and action.nargs is None and isinstance(action, argparse._StoreAction)
        for option in action.option_strings
    }
    joined: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token in takes_value:
            value = next(tokens, None)
            if value is not None and len(value) > 1 and value[0] == "-" and value[1].isdigit():
                joined.append(f"{token}={value}")
                continue
            joined.append(token)
            if value is not None:
                joined.append(value)
            continue
        joined.append(token)
    return joined


def _all_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    actions = list(parser._actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                actions += _all_actions(subparser)
    return actions


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="campaign-autoscaler",
        description="Scale Deployments ahead of known sales campaigns and restore them afterwards.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_run_parser(subparsers)
    _add_plan_parser(subparsers)
    _add_simulate_parser(subparsers)
    _add_demo_parser(subparsers)
    _add_report_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_values_joined(sys.argv[1:] if argv is None else argv, parser))
    if args.command == "run":
        return run_operator(args)
    if args.command == "plan":
        return run_plan(args)
    if args.command == "simulate":
        return run_simulate(args)
    if args.command == "report":
        return run_report(args)
    if args.command == "demo":
        return run_demo(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects unknown commands
