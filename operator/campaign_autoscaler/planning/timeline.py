"""The timeline of one window: phases, the ramp-up and ramp-down steps, and the replicas each step claims.

A transition's `fraction` is the share of `floor - baseline` claimed from that instant on; fractions are
exact (`fractions.Fraction`) so that `ceil` rounds the same way everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

from .spec import CampaignSpec
from .windows import Window, lifecycle_end, lifecycle_start, next_window, resolve_window


class Phase(StrEnum):
    PENDING = "Pending"
    PRE_SCALING = "PreScaling"
    ACTIVE = "Active"
    RAMPING_DOWN = "RampingDown"
    COMPLETED = "Completed"
    INVALID = "Invalid"


@dataclass(frozen=True)
class Transition:
    at: datetime
    phase: Phase
    label: str
    fraction: Fraction


def transitions(spec: CampaignSpec, window: Window) -> list[Transition]:
    """Every step of the window in time order; of several steps at one instant only the last one stays."""
    planned = [*_ramp_up(spec, window), Transition(window.start, Phase.ACTIVE, "window opens", Fraction(1))]
    planned.append(Transition(window.end, Phase.RAMPING_DOWN, "window closes", Fraction(1)))
    planned += _ramp_down(spec, window)
    timeline: list[Transition] = []
    for transition in planned:
        if timeline and timeline[-1].at == transition.at:
            timeline[-1] = transition  # e.g. leadTime 0: the ramp-up coincides with the opening
        else:
            timeline.append(transition)
    return timeline


def _ramp_up(spec: CampaignSpec, window: Window) -> list[Transition]:
    steps, begin = spec.ramp_up_steps, lifecycle_start(spec, window)
    return [
        Transition(
            at=begin + spec.lead_time * index / steps,
            phase=Phase.PRE_SCALING,
            label=f"ramp-up {index + 1}/{steps}",
            fraction=Fraction(index + 1, steps),
        )
        for index in range(steps)
    ]


def _ramp_down(spec: CampaignSpec, window: Window) -> list[Transition]:
    steps = spec.ramp_down_steps
    ramp_down = [
        Transition(
            at=window.end + spec.ramp_down_duration * step / steps,
            phase=Phase.RAMPING_DOWN,
            label=f"ramp-down {step}/{steps}",
            fraction=Fraction(steps - step, steps),
        )
        for step in range(1, steps)
    ]
    ramp_down.append(Transition(lifecycle_end(spec, window), Phase.COMPLETED, "completed", Fraction(0)))
    return ramp_down


def phase_at(spec: CampaignSpec, window: Window, now: datetime) -> Phase:
    """The phase of `window` at `now` (a recurring event's caller resolves the window first)."""
    if now < lifecycle_start(spec, window):
        return Phase.PENDING
    if now < window.start:
        return Phase.PRE_SCALING
    if now < window.end:
        return Phase.ACTIVE
    if now < lifecycle_end(spec, window):
        return Phase.RAMPING_DOWN
    return Phase.COMPLETED


def claim_fraction(spec: CampaignSpec, window: Window, now: datetime) -> Fraction | None:
    """The share of `floor - baseline` claimed at `now`; None when nothing is claimed (Pending, Completed)."""
    if phase_at(spec, window, now) in (Phase.PENDING, Phase.COMPLETED):
        return None
    fraction = None
    for transition in transitions(spec, window):
        if transition.at > now:
            break
        fraction = transition.fraction
    return fraction


def ramp_replicas(baseline: int, floor: int, fraction: Fraction) -> int:
    """`baseline + ceil((floor - baseline) * fraction)`; a floor at or below the baseline claims it."""
    if floor <= baseline:
        return baseline
    return baseline + math.ceil((floor - baseline) * fraction)


def next_transition(spec: CampaignSpec, window: Window, now: datetime) -> datetime | None:
    """The first transition strictly after `now`.

    Past the window's lifecycle a recurring event continues with its next window; a completed one-off
    event has none.
    """
    candidate: Window | None = window
    if spec.recurring and now >= lifecycle_end(spec, window):
        candidate = resolve_window(spec, now)
    while candidate is not None:
        for transition in transitions(spec, candidate):
            if transition.at > now:
                return transition.at
        candidate = next_window(spec, candidate)
    return None
