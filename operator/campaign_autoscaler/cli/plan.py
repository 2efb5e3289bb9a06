"""`campaign-autoscaler plan`: an event's timeline, with the baselines read from a cluster if asked."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from campaign_autoscaler.cli.arguments import _add_event_input_flags
from campaign_autoscaler.cli.console import _fail, _stdout_console
from campaign_autoscaler.cli.inputs import InputFileError, _read_text, _spec_of, load_api_client
from campaign_autoscaler.planning import SpecError, target_key

if TYPE_CHECKING:
    from campaign_autoscaler.adapters.kube import KubeAdapter
    from campaign_autoscaler.planning import CampaignSpec
    from campaign_autoscaler.planning.curve import History
    from campaign_autoscaler.planview import ClusterView, EventManifest, Workload


def _add_plan_parser(subparsers: argparse._SubParsersAction) -> None:
    plan = subparsers.add_parser(
        "plan",
        help="print an event's timeline: every transition and each target's replicas, no cluster needed",
    )
    _add_event_input_flags(plan)
    plan.add_argument("--kubeconfig", help="read the baselines (and selector matches) from this cluster")
    plan.add_argument("--context", help="kubeconfig context to use with --kubeconfig")
    plan.add_argument(
        "-n",
        "--namespace",
        help="namespace to read Deployments from with --kubeconfig (default: the event's)",
    )
    plan.add_argument(
        "--prometheus-url",
        help="read each curve target's last campaign (metric.forecast.mode curve) from this Prometheus and "
        "print the steps its curve plans",
    )


def _kube_adapter(kubeconfig: str, context: str | None) -> KubeAdapter:
    """The operator's Kubernetes adapter for this kubeconfig."""
    from campaign_autoscaler.adapters.kube import KubeAdapter

    return KubeAdapter(load_api_client(kubeconfig, context, in_cluster=False))


def read_cluster_view(kube: KubeAdapter, namespace: str, spec: CampaignSpec) -> ClusterView:
    """Each target workload's baseline replicas and what a claim on it writes, and what each selector
    matches, in `namespace`.

    The baseline is the one the operator recorded on the workload if it already claims it, else
    `spec.replicas`. A kind the cluster cannot scale is a SpecError naming `spec.targets[i].kind`.
    """
    from kubernetes.client.exceptions import ApiException

    from campaign_autoscaler.adapters.kube import planned_write
    from campaign_autoscaler.adapters.workloads import kind_problem
    from campaign_autoscaler.planview import ClusterView

    replicas: dict[str, int] = {}
    writes: dict[str, str] = {}
    selected: dict[int, tuple[str, ...]] = {}
    hpas = kube.list_hpas(namespace)
    requests: dict[str, Mapping[str, Decimal]] = {}
    limits: dict[str, Mapping[str, Decimal]] = {}
    for target in spec.targets:
        workload = kube.kinds.lookup(target.api_version, target.kind, datetime.now(UTC))
        problem = kind_problem(workload, target.api_version, target.kind)
        if workload is None or problem is not None:
            raise SpecError(target.field("kind"), problem or "")
        if target.name is not None:
            found = kube.get_deployment(namespace, target_key(target, target.name), workload)
            views = [found] if found is not None else []
        else:
            views = kube.list_deployments(namespace, target.label_selector(), workload)
            selected[target.index] = tuple(view.key for view in views)
        for view in views:
            if view.annotation_error is not None:
                raise ClusterReadError(view.annotation_error)
            replicas[view.key] = view.baseline_replicas
            writes[view.key] = planned_write(view, kube.hpa_for(view, hpas))
            requests[view.key], limits[view.key] = view.template.requests, view.template.limits
    capacity, problem = None, None
    try:
        capacity = kube.read_capacity(namespace)
    except ApiException as err:
        if err.status != 403:
            raise
        problem = (
            f"preflight skipped: these credentials may not list Nodes, Pods and ResourceQuotas ({err.reason})"
        )
    return ClusterView(
        namespace=namespace,
        replicas=replicas,
        selected=selected,
        writes=writes,
        requests=requests,
        limits=limits,
        capacity=capacity,
        capacity_problem=problem,
    )


class ClusterReadError(RuntimeError):
    """`--kubeconfig` was given but the Deployments could not be read."""


def _cluster_views(
    args: argparse.Namespace, events: Sequence[EventManifest], specs: Sequence[CampaignSpec]
) -> list[ClusterView | None]:
    if args.kubeconfig is None:
        return [None] * len(events)
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    try:
        kube = _kube_adapter(args.kubeconfig, args.context)
        return [
            read_cluster_view(kube, args.namespace or event.namespace or "default", spec)
            for event, spec in zip(events, specs, strict=True)
        ]
    except ApiException as err:
        raise ClusterReadError(f"--kubeconfig {args.kubeconfig}: {err.status} {err.reason}") from err
    except HTTPError as err:
        reason = getattr(err, "reason", None) or err  # a MaxRetryError carries the failure itself
        raise ClusterReadError(
            f"--kubeconfig {args.kubeconfig}: cannot reach the API server ({reason})"
        ) from err
    except (ConfigException, OSError) as err:
        raise ClusterReadError(f"--kubeconfig {args.kubeconfig}: {err}") from err


def run_plan(args: argparse.Namespace) -> int:
    import json

    from campaign_autoscaler import planview

    now = args.now or datetime.now(UTC)
    try:
        events = planview.load_event_manifests(_read_text(args.filename), args.filename)
        specs = [_spec_of(event, args.metrics_namespace_label) for event in events]
        baselines = planview.parse_baseline_flags(args.baselines)
        clusters = _cluster_views(args, events, specs)
        known = set().union(
            *(planview.known_baseline_names(s, c) for s, c in zip(specs, clusters, strict=True))
        )
        planview.check_baseline_names(baselines, known)
        plans = []
        for event, spec, cluster in zip(events, specs, clusters, strict=True):
            workloads, notes = planview.plan_workloads(spec, baselines, cluster, args.max_scale_factor)
            histories, read_notes = _read_histories(args.prometheus_url, spec, workloads, now)
            plans.append(
                planview.build_plan(
                    event,
                    spec,
                    workloads,
                    (*notes, *read_notes),
                    now,
                    histories,
                    args.max_scale_factor,
                    cluster=cluster,
                )
            )
    except (OSError, InputFileError, planview.PlanInputError, SpecError) as err:
        return _fail(err)
    except ClusterReadError as err:
        return _fail(err, code=1)
    if args.output == "json":
        print(json.dumps({"events": [planview.plan_to_json(plan) for plan in plans]}, indent=2))
        return 0
    console = _stdout_console()
    for index, plan in enumerate(plans):
        if index:
            console.print()
        planview.render_plan(plan, console)
    return 0


def _read_histories(
    prometheus_url: str | None, spec: CampaignSpec, workloads: Sequence[Workload], now: datetime
) -> tuple[dict[str, History] | None, list[str]]:
    """Each curve target's last campaign, read as the operator reads it (one 1-minute range query); a
    failure is a note, and the plan shows the plain floor the operator would fall back on. None without a
    Prometheus to ask."""
    from campaign_autoscaler.adapters.prometheus import (
        MetricsUnavailableError,
        PrometheusMetricsSource,
        PrometheusSettings,
    )
    from campaign_autoscaler.planning import resolve_window
    from campaign_autoscaler.planning.curve import CURVE_STEP, curve_range, history_from_points

    if prometheus_url is None:
        return None, []
    histories: dict[str, History] = {}
    notes: list[str] = []
    source = PrometheusMetricsSource(PrometheusSettings(prometheus_url))
    window = resolve_window(spec, now)
    for workload in workloads:
        metric = workload.target.metric
        if metric is None or metric.forecast is None or not metric.forecast.follows_curve:
            continue
        start, end = curve_range(spec, window, metric.forecast)
        try:
            points = source.series(metric.query, start, end, CURVE_STEP.total_seconds())
        except MetricsUnavailableError as err:
            notes.append(
                f"{workload.label}: the last campaign's curve could not be read ({err}); the timeline "
                "shows the plain floor the operator falls back on."
            )
            continue
        if not points:
            notes.append(
                f"{workload.label}: no data {metric.forecast.offset_text} ago in Prometheus; the timeline "
                "shows the plain floor the operator falls back on."
            )
            continue
        begin, finish = start + metric.forecast.offset, end + metric.forecast.offset
        histories[workload.label] = history_from_points(points, begin, finish, metric.forecast.offset)
    return histories, notes
