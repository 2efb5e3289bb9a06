"""`campaign-autoscaler simulate`: replay a traffic curve against the policies."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from campaign_autoscaler.cli.arguments import (
    _add_event_input_flags,
    _non_negative_duration,
    _positive_number,
)
from campaign_autoscaler.cli.console import _fail, _stdout_console
from campaign_autoscaler.cli.inputs import InputFileError, _read_text, _spec_of
from campaign_autoscaler.planning import SpecError

if TYPE_CHECKING:
    from campaign_autoscaler.planview import EventManifest
    from campaign_autoscaler.simulation import SimulationSetup, TrafficCurve


def _add_simulate_parser(subparsers: argparse._SubParsersAction) -> None:
    simulate = subparsers.add_parser(
        "simulate",
        help="replay traffic against static, reactive HPA, cron-at-start and this operator (its multiplier "
        "floor, its last campaign's curve, and with --with-hpa both on the target's HPA)",
    )
    _add_event_input_flags(simulate)
    simulate.add_argument(
        "--traffic",
        required=True,
        metavar="{9.9,FILE.csv}",
        help="9.9 (a built-in synthetic 9.9 day) or a CSV of minute_offset_or_timestamp,rps "
        "(offsets in minutes from the window opening)",
    )
    simulate.add_argument(
        "--history",
        metavar="FILE.csv",
        help="the last campaign's traffic, same CSV format (minute offsets from that campaign's opening, or "
        "its timestamps; metric.forecast.offset ago, default 365d): adds this operator following that "
        "curve (forecast mode curve). With --traffic 9.9 a synthetic previous year is the default",
    )
    simulate.add_argument("--event", help="the CampaignEvent's metadata.name when the file holds several")
    simulate.add_argument(
        "--target", help="target to replay: a Deployment name or targets[i] (default: the first)"
    )
    simulate.add_argument(
        "--pod-startup",
        type=_non_negative_duration,
        default=timedelta(seconds=90),
        help="from scale-up to Ready (default 90s)",
    )
    simulate.add_argument(
        "--node-startup",
        type=_non_negative_duration,
        default=None,
        help="a new node is Ready this long after pods need it; the nodes start with room for the baseline "
        "only (default: nodes always have room)",
    )
    simulate.add_argument(
        "--with-hpa",
        action="store_true",
        help="the target is scaled by an HPA (the reactive HPA row's, minReplicas the baseline): adds this "
        "operator's rows on it (`... + HPA`: the claim raises the HPA's minReplicas, the HPA keeps scaling)",
    )
    simulate.add_argument(
        "--capacity-per-pod",
        type=_positive_number,
        help="requests/s one pod serves (default: normal peak demand / baseline replicas)",
    )
    simulate.add_argument("--plot", metavar="OUT.png", help="also write a PNG of demand and Ready capacity")


def run_simulate(args: argparse.Namespace) -> int:
    import json

    from campaign_autoscaler import planview, simulation
    from campaign_autoscaler.simulation.plot import PlotUnavailableError, write_plot

    now = args.now or datetime.now(UTC)
    try:
        setup, curve, notes = _simulation_inputs(args, now)
        result = simulation.simulate(setup, curve)
        if args.plot:
            write_plot(result, args.plot)
            notes.append(f"Wrote {args.plot}.")
    except (
        OSError,
        InputFileError,
        planview.PlanInputError,
        SpecError,
        simulation.TrafficError,
        simulation.CapacityError,
    ) as err:
        return _fail(err)
    except PlotUnavailableError as err:
        return _fail(err, code=1)
    if args.output == "json":
        print(json.dumps({**simulation.to_json(result), "notes": notes}, indent=2))
        return 0
    console = _stdout_console()
    simulation.render_table(result, console)
    for note in notes:
        console.print(f"Note: {note}", markup=False)
    return 0


def _simulation_inputs(
    args: argparse.Namespace, now: datetime
) -> tuple[SimulationSetup, TrafficCurve, list[str]]:
    from campaign_autoscaler import planview, simulation
    from campaign_autoscaler.planning import lifecycle_end, lifecycle_start, resolve_window

    events = planview.load_event_manifests(_read_text(args.filename), args.filename)
    event = _pick_event(events, args.event, args.filename)
    spec = _spec_of(event, args.metrics_namespace_label)
    target = planview.target_for_ref(spec, args.target) if args.target else spec.targets[0]
    if target is None:
        known = ", ".join(planview.target_ref(t) for t in spec.targets)
        raise planview.PlanInputError(f"--target {args.target}: not a target of {event.ref} (known: {known})")
    baselines = planview.parse_baseline_flags(args.baselines)
    planview.check_baseline_names(baselines, planview.known_baseline_names(spec, None))
    notes: list[str] = []
    baseline = baselines.get(planview.target_ref(target), baselines.get(f"targets[{target.index}]"))
    if baseline is None:
        baseline = planview.ASSUMED_BASELINE
        notes.append(f"Baseline {baseline} assumed for {target.display}: pass --baseline NAME=N.")
    window = resolve_window(spec, now)
    offset = simulation.history_offset(target)
    history = None
    if args.traffic == "9.9":
        curve = simulation.synthetic_9_9(
            window.start,
            window.end,
            spec.timezone,
            covers_from=lifecycle_start(spec, window),
            covers_until=lifecycle_end(spec, window),
        )
        notes.append("The 9.9 traffic is SYNTHETIC: a diurnal day with a 2.5x surge at the opening.")
        if args.history is None:
            history = simulation.synthetic_previous_9_9(
                window.start,
                window.end,
                spec.timezone,
                offset=offset,
                covers_from=lifecycle_start(spec, window),
                covers_until=lifecycle_end(spec, window),
            )
            notes.append(
                "The previous campaign's curve is SYNTHETIC too: the same model one year earlier, so the "
                "curve policy's forecast is exactly right; pass --history to replay a real one."
            )
    else:
        if not os.path.lexists(args.traffic):
            raise InputFileError(
                f"--traffic {args.traffic}: not a file; the only built-in curve is 9.9, anything else is "
                "the path of a CSV of minute_offset_or_timestamp,rps"
            )
        curve = simulation.parse_traffic_csv(
            _read_text(args.traffic, "traffic file"),
            args.traffic,
            zero=window.start,
            timezone=spec.timezone,
        )
    if args.history is not None:
        previous = simulation.parse_traffic_csv(
            _read_text(args.history, "history file"),
            args.history,
            zero=window.start - offset,
            timezone=spec.timezone,
        )
        history = simulation.shifted(previous, offset)
    elif history is None:
        notes.append("No --history: the curve policy (metric.forecast.mode curve) is not replayed.")
    capacity = args.capacity_per_pod or simulation.default_capacity_per_pod(curve, spec, baseline)
    setup = simulation.SimulationSetup(
        spec=spec,
        target=target,
        target_label=f"{event.ref} {target.display}",
        baseline=baseline,
        capacity_per_pod=capacity,
        pod_startup=args.pod_startup,
        max_scale_factor=args.max_scale_factor,
        history=history,
        node_startup=args.node_startup,
        with_hpa=args.with_hpa,
    )
    return setup, curve, notes


def _pick_event(events: Sequence[EventManifest], name: str | None, source: str) -> EventManifest:
    from campaign_autoscaler.planview import PlanInputError

    if name is None:
        return events[0]
    for event in events:
        if event.name == name:
            return event
    known = ", ".join(event.name for event in events)
    raise PlanInputError(f"{source}: --event {name}: no such CampaignEvent (found {known})")
