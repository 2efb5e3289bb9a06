"""Status writes in a lane of their own, so that no pass (and no replica write) waits behind one.

A daemon hands the status its pass decided to `StatusLane.submit` and goes on; a few threads of the lane write
it. Only the latest status of an event counts: one handed over while an earlier one of the same event still
waits replaces it (both callers get the same future), so the lane holds at most one write per event. An
event's status is written by one thread at a time: one handed over while the event's previous status is being
written waits until that write is over, so an older status never lands after a newer one. The
future tells the daemon how the write went: a failed one is written again by the event's next pass. With
`priority`, a write waits its turn behind urgent passes (adapters/priority.py) before it takes the latest
status of an event: a burst of transitions is written first, and each event's status once, after it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .priority import TransitionsFirst

STATUS_WORKERS = 2

StatusWriter = Callable[[str, str, str, Mapping[str, Any]], None]  # (namespace, name, uid, status)


@dataclass
class _Pending:
    uid: str
    status: Mapping[str, Any]
    done: Future[None]


class StatusLane:
    """Writes statuses through `writer` (the uid-guarded `replace_event_status`) on `workers` threads."""

    def __init__(
        self, writer: StatusWriter, workers: int = STATUS_WORKERS, priority: TransitionsFirst | None = None
    ) -> None:
        self._writer = writer
        self._priority = priority
        self._pending: OrderedDict[tuple[str, str], _Pending] = OrderedDict()
        self._writing: set[tuple[str, str]] = set()  # events whose status a thread is writing now
        self._ready = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"status-{n}", daemon=True) for n in range(workers)
        ]
        self.superseded = 0  # statuses replaced by a later one before they were written

    def start(self) -> StatusLane:
        for thread in self._threads:
            thread.start()
        return self

    def submit(self, namespace: str, name: str, uid: str, status: Mapping[str, Any]) -> Future[None]:
        """Queue the event's status (replacing one still waiting); the future ends with the write."""
        with self._ready:
            waiting = self._pending.get((namespace, name))
            if waiting is not None:
                waiting.uid, waiting.status = uid, dict(status)
                self.superseded += 1
                return waiting.done
            pending = _Pending(uid, dict(status), Future())
            self._pending[(namespace, name)] = pending
            self._ready.notify()
            return pending.done

    def waiting(self) -> int:
        with self._ready:
            return len(self._pending)

    def _next(self) -> tuple[tuple[str, str], _Pending] | None:
        """The oldest waiting status of an event no thread is writing now (call with the lock held)."""
        return next(((key, p) for key, p in self._pending.items() if key not in self._writing), None)

    def _work(self) -> None:
        while True:
            with self._ready:
                while self._next() is None:
                    self._ready.wait()
            if self._priority is not None:
                self._priority.wait_turn()
            with self._ready:
                found = self._next()
                if found is None:  # another worker took it meanwhile
                    continue
                key, pending = found
                del self._pending[key]
                self._writing.add(key)
            try:
                if pending.done.set_running_or_notify_cancel():
                    self._write(key, pending)
            finally:
                with self._ready:
                    self._writing.discard(key)
                    self._ready.notify_all()  # a status of this event may wait for this write

    def _write(self, key: tuple[str, str], pending: _Pending) -> None:
        namespace, name = key
        try:
            self._writer(namespace, name, pending.uid, pending.status)
        except BaseException as err:  # the daemon judges it (gone, or retry on the next pass)
            pending.done.set_exception(err)
        else:
            pending.done.set_result(None)
