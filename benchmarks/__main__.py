"""`python -m benchmarks [lag|lag-hanging|lag-floor|drift|scale|prometheus|requests|curve|headroom ...]`: run
the named benchmarks (all when none is named) and print their results as Markdown, headed by the machine, the
command and the date, each followed by its duration and the machine's load average before and after it, ready
for RESULTS.md."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from benchmarks import curve, drift, headroom, lag, lag_floor, prometheus_load, requests, scale
from benchmarks.common import BenchmarkResult, source_state, this_machine

BENCHMARKS: dict[str, Callable[[], BenchmarkResult]] = {
    "lag": lag.run,
    "lag-hanging": lag.run_hanging,
    "lag-floor": lag_floor.run,
    "drift": drift.run,
    "scale": scale.run,
    "prometheus": prometheus_load.run,
    "requests": requests.run,
    "curve": curve.run,
    "headroom": headroom.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="{" + ",".join(BENCHMARKS) + "}", help="default: all")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    logging.basicConfig(level=logging.WARNING)
    names = args.names or list(BENCHMARKS)
    command = " ".join([".venv/bin/python -m benchmarks", *(args.names or [])])
    print(f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `{command}`\n")
    print(f"Machine: {this_machine().describe()}. Operator: {source_state()}.\n")
    for name in names:
        began, load_before = time.monotonic(), _load_average()
        result = BENCHMARKS[name]()
        print(result.markdown())
        print(
            f"({name} took {time.monotonic() - began:.0f} s; load average (1, 5, 15 min) before "
            f"{load_before}, after {_load_average()})\n",
            flush=True,
        )
    return 0


def _load_average() -> str:
    return " / ".join(f"{load:.2f}" for load in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
