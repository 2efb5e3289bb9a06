"""Two lanes of worker threads for passes, so that a transition never queues behind routine passes.

A pass runs in a worker thread (it writes through the blocking kubernetes client). Most passes are routine:
a resync, a new metric sample, a change of Ready replicas, a spec edit. A few carry something due now: a
transition (a ramp step, the window's start or end), a target pushed below its floor, an event's first pass
after a start, a retry. With one pool, hundreds of routine passes that fall due together (every event of a
big campaign following its pods' readiness) queued the due ones behind them: in `python -m benchmarks scale`
(500 events, 2,000 Deployments) ramp steps landed up to 22 s late. Urgent passes get a lane of their own;
the routine lane is small, so that routine work also competes less for the interpreter. While the urgent
lane holds passes, the bookkeeping lanes (Events, status writes) wait their turn (adapters/priority.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from campaign_autoscaler.adapters.priority import TransitionsFirst

T = TypeVar("T")

URGENT_WORKERS = 24  # a transition due for many events in the same second runs for all of them at once
ROUTINE_WORKERS = 6


class PassLanes:
    """An urgent and a routine thread pool. Shut them down with `shutdown()`."""

    def __init__(
        self,
        urgent_workers: int = URGENT_WORKERS,
        routine_workers: int = ROUTINE_WORKERS,
        priority: TransitionsFirst | None = None,
    ) -> None:
        """`priority`: marked busy while urgent passes are in hand, so that bookkeeping waits its turn."""
        self.priority = priority or TransitionsFirst()
        self._urgent = ThreadPoolExecutor(max_workers=urgent_workers, thread_name_prefix="pass-urgent")
        self._routine = ThreadPoolExecutor(max_workers=routine_workers, thread_name_prefix="pass-routine")

    async def run(self, urgent: bool, call: Callable[..., T], *args: object) -> T:
        """`call(*args)` in a thread of the chosen lane."""
        loop = asyncio.get_running_loop()
        if not urgent:
            return await loop.run_in_executor(self._routine, call, *args)
        with self.priority.busy():
            return await loop.run_in_executor(self._urgent, call, *args)

    def shutdown(self) -> None:
        self._urgent.shutdown(wait=False, cancel_futures=True)
        self._routine.shutdown(wait=False, cancel_futures=True)
