"""Transitions first: bookkeeping (Events, status writes) holds back while passes that move replicas run.

One thread at a time runs Python code. While a burst of transitions is written (every event of a sale opening
in the same second), each Event and status write the bookkeeping lanes send takes the interpreter from the
passes that write replicas, and each status write comes back as a watch event the operator handles too. The
urgent pass lane marks itself busy for as long as it holds passes (`TransitionsFirst.busy`); the bookkeeping
lanes call `wait_turn()` before each request, which returns once the busy spell it found has ended (even if
another began before the waiting thread got the interpreter back), or once that spell has lasted `patience`
seconds: a lane is never starved, and under urgent work that never stops, bookkeeping flows beside it as if
there were no priority. Only bookkeeping waits here, never a pass: a pass that waited for the urgent lane
could hold up the urgent pass of its own event behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# How long bookkeeping holds back behind one busy spell of the urgent lane, at most. In `python -m benchmarks
# lag` (300 transitions due in the same second) the spell lasts under 2 s; the status of a transition is
# written at most this much later.
PATIENCE_SECONDS = 2.0


class TransitionsFirst:
    """Whether urgent passes are in hand, and since when; bookkeeping waits its turn behind them."""

    def __init__(
        self, patience: float = PATIENCE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.patience = patience
        self._clock = clock
        self._changed = threading.Condition()
        self._urgent = 0
        self._since = 0.0  # when the busy spell began (the urgent lane went from idle to busy)
        self._spell = 0  # busy spells so far
        self.waits = 0  # requests that held back, for tests and benchmarks

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Around an urgent pass, from its hand-over to the lane to its end."""
        with self._changed:
            if self._urgent == 0:
                self._since = self._clock()
                self._spell += 1
            self._urgent += 1
        try:
            yield
        finally:
            with self._changed:
                self._urgent -= 1
                if self._urgent == 0:
                    self._changed.notify_all()

    def wait_turn(self) -> None:
        """Until the busy spell in hand now has ended or lasted `patience` seconds (at once when none is).
        Only that spell is waited out: one that begins while this thread waits for the interpreter after the
        wake-up would hold it back again, spell after spell, under a steady stream of urgent passes."""
        with self._changed:
            waited = False
            spell = self._spell
            while (
                self._urgent
                and self._spell == spell
                and (left := self._since + self.patience - self._clock()) > 0
            ):
                waited = True
                self._changed.wait(left)
            self.waits += waited
