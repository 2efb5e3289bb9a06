"""Nodes in a replay: room for pods that a cluster autoscaler adds only after a node start-up time.

The room is counted in pod slots, each Ready at an instant. The cluster starts with room for the baseline's
pods and nothing more. Whenever the pods asked for (a policy's replicas, and node headroom's placeholders)
need more slots than there are, the autoscaler adds them, Ready `node_startup` later; a real pod takes the
earliest-Ready slot free (it preempts a placeholder), so it is Ready `pod_startup` after both it was asked for
and its slot is there. Slots unneeded for `UNNEEDED_AFTER` (the cluster autoscaler's default
--scale-down-unneeded-time) are removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

UNNEEDED_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class NodeRoom:
    ready_at: tuple[datetime, ...]  # one per pod slot, in increasing order
    unneeded_since: datetime | None = None

    @classmethod
    def of(cls, slots: int, at: datetime) -> NodeRoom:
        return cls((at,) * slots)

    def fit(self, pods: int, now: datetime, node_startup: timedelta) -> NodeRoom:
        """The room once the autoscaler has seen `pods` pods asked for at `now`."""
        slots = len(self.ready_at)
        if pods > slots:
            return NodeRoom(self.ready_at + (now + node_startup,) * (pods - slots))
        if pods == slots:
            return NodeRoom(self.ready_at)
        since = self.unneeded_since or now
        if now - since >= UNNEEDED_AFTER:
            return NodeRoom(self.ready_at[:pods])
        return NodeRoom(self.ready_at, since)
