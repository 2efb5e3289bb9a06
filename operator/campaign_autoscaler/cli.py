"""`campaign-autoscaler run | plan | simulate | demo | report`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import secrets
import stat
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from campaign_autoscaler import __version__
from campaign_autoscaler.planning import SpecError, parse_duration, parse_label_equalities, target_key
from campaign_autoscaler.planning.headroom import DEFAULT_PLACEHOLDER_IMAGE, DEFAULT_PRIORITY_CLASS

if TYPE_CHECKING:
    from rich.console import Console

    from campaign_autoscaler.adapters.kube import KubeAdapter
    from campaign_autoscaler.handlers.admission import WebhookConfig
    from campaign_autoscaler.planning import CampaignSpec
    from campaign_autoscaler.planning.curve import History
    from campaign_autoscaler.planview import ClusterView, EventManifest, Workload
    from campaign_autoscaler.simulation import SimulationSetup, TrafficCurve

# Prometheus' label names (its data model, not PromQL).
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _positive_seconds(text: str) -> float:
    """A duration flag: Go-style (`15s`, `1m30s`) or plain seconds (`15`, `0.5`)."""
    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_duration(text, "flag").total_seconds()
        except SpecError as err:
            raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 15s, 1m, 0.5)") from err
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _scale_factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _prometheus_label_name(text: str) -> str:
    """A Prometheus label name, or empty (no namespace scoping)."""
    if text and not _LABEL_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a Prometheus label name: {text!r} (letters, digits, _)")
    return text


DEFAULT_TARGET_KINDS = (
    "deployments.apps",
    "statefulsets.apps",
    "horizontalpodautoscalers.autoscaling",
    "scaledobjects.keda.sh",
)
_RESOURCE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _target_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(item.strip() for item in text.split(",") if item.strip())
    for kind in kinds:
        if not _RESOURCE.fullmatch(kind):
            raise argparse.ArgumentTypeError(f"not a <plural>.<group> resource name: {kind!r}")
    return kinds


def _namespace_selector(text: str) -> dict[str, str]:
    try:
        return dict(parse_label_equalities(text, "--namespace-selector"))
    except SpecError as err:
        raise argparse.ArgumentTypeError(err.message) from None


def _add_run_parser(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run the operator against a cluster")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=[],
        help="watch this namespace (repeatable; glob patterns allowed)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    run.add_argument(
        "--namespace-selector",
        type=_namespace_selector,
        default=None,
        help="act only in namespaces with these labels, e.g. campaigns.dev/enabled=true (key=value, comma "
        "separated); others are never touched",
    )
    run.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config, else $KUBECONFIG)")
    run.add_argument("--context", help="kubeconfig context to use")
    run.add_argument(
        "--target-kinds",
        type=_target_kinds,
        default=DEFAULT_TARGET_KINDS,
        help="workload kinds the RBAC allows, as <plural>.<group>, comma separated (the chart's "
        "targetKinds); the scalable ones are watched from the start (default: "
        f"{','.join(DEFAULT_TARGET_KINDS)})",
    )
    run.add_argument(
        "--resync-interval",
        type=_positive_seconds,
        default=15.0,
        help="re-assert floors against drift at least this often (default 15s)",
    )
    run.add_argument(
        "--max-scale-factor",
        type=_scale_factor,
        default=10.0,
        help="default maxReplicas = max(replicas, baseline x this) (default 10)",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="plan and report in status and Events; patch nothing"
    )
    run.add_argument(
        "--liveness-port",
        type=int,
        default=None,
        help="serve Kopf's liveness probe on http://0.0.0.0:PORT/healthz",
    )
    run.add_argument(
        "--peering",
        default=None,
        help="name of the Kopf peering object for HA (default: standalone, a single replica)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve the operator's Prometheus metrics on http://0.0.0.0:PORT/metrics",
    )
    run.add_argument(
        "--prometheus-url",
        default=os.environ.get("PROMETHEUS_URL"),
        help="Prometheus to query for targets' metric.query (default $PROMETHEUS_URL)",
    )
    run.add_argument("--prometheus-bearer-token-file", help="bearer token file for Prometheus")
    run.add_argument("--prometheus-ca-file", help="CA bundle to verify Prometheus' TLS certificate")
    run.add_argument(
        "--prometheus-timeout",
        type=_positive_seconds,
        default=5.0,
        help="timeout of one Prometheus query (default 5s)",
    )
    _add_metrics_namespace_label(run)
    run.add_argument(
        "--metrics-interval",
        type=_positive_seconds,
        default=15.0,
        help="query each target's metric this often while it is scaled (default 15s)",
    )
    run.add_argument(
        "--metrics-concurrency",
        type=_positive_int,
        default=4,
        help="Prometheus requests in flight at once, each distinct query sampled once (default 4)",
    )
    run.add_argument(
        "--curve-step",
        type=_positive_seconds,
        default=60.0,
        help="resolution the last campaign's curve is read at (metric.forecast.mode curve; default 1m); "
        "shorter only to replay a campaign compressed in time",
    )
    run.add_argument(
        "--scale-down-stabilization",
        type=_positive_seconds,
        default=300.0,
        help="a metric-driven scale-down waits for the highest value over this window (default 5m)",
    )
    run.add_argument(
        "--peering-lifetime",
        type=_positive_seconds,
        default=10.0,
        help="a standby replica takes over this long after the active one went silent (default 10s)",
    )
    run.add_argument(
        "--priority",
        type=int,
        default=None,
        help="Kopf peering priority (default with --peering: random, so replicas differ)",
    )
    run.add_argument(
        "--placeholder-image",
        default=DEFAULT_PLACEHOLDER_IMAGE,
        help=f"image of the node headroom placeholders, a pause image (default {DEFAULT_PLACEHOLDER_IMAGE})",
    )
    run.add_argument(
        "--placeholder-priority-class",
        default=DEFAULT_PRIORITY_CLASS,
        help=f"PriorityClass of the placeholder pods, from the chart (default {DEFAULT_PRIORITY_CLASS})",
    )
    _add_webhook_arguments(run)
    run.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _webhook_timeout(text: str) -> int:
    try:
        value = int(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if not 1 <= value <= 30:  # the API server's own bounds
        raise argparse.ArgumentTypeError(f"must be between 1 and 30 seconds, got {text!r}")
    return value


def _service_ref(text: str) -> tuple[str, str]:
    namespace, _, name = text.partition("/")
    if not namespace or not name:
        raise argparse.ArgumentTypeError(f"not NAMESPACE/NAME: {text!r}")
    return namespace, name


def _add_webhook_arguments(run: argparse.ArgumentParser) -> None:
    webhook = run.add_argument_group(
        "admission webhook", "refuse invalid CampaignEvents at `kubectl apply` (off unless --webhook-port)"
    )
    webhook.add_argument("--webhook-port", type=int, default=None, help="serve the webhook (HTTPS) on PORT")
    webhook.add_argument(
        "--webhook-host",
        default="127.0.0.1",
        help="the name or address the API server calls the webhook at (default 127.0.0.1)",
    )
    webhook.add_argument(
        "--webhook-service",
        type=_service_ref,
        default=None,
        help="NAMESPACE/NAME of the Service in front of the operator: the API server calls it (in a cluster)",
    )
    webhook.add_argument("--webhook-listen-address", default="0.0.0.0", help="address to listen on")
    webhook.add_argument(
        "--webhook-timeout",
        type=_webhook_timeout,
        default=5,
        help="how long the API server waits for the webhook, 1-30 s (default 5)",
    )
    webhook.add_argument(
        "--webhook-failure-policy",
        choices=("Ignore", "Fail"),
        default="Ignore",
        help="what the API server does when the webhook does not answer (default Ignore: the apply goes "
        "through and the event turns Invalid later if it is)",
    )
    webhook.add_argument(
        "--webhook-cert-dir",
        default=None,
        help="directory with tls.crt, tls.key (and ca.crt) to serve with, e.g. from cert-manager "
        "(default: a self-signed certificate made at start-up)",
    )
    webhook.add_argument(
        "--webhook-configuration-name",
        default="campaign-autoscaler",
        help="name of the ValidatingWebhookConfiguration the operator writes (default campaign-autoscaler)",
    )
    webhook.add_argument(
        "--no-webhook-configuration",
        dest="webhook_configuration",
        action="store_false",
        help="do not write the ValidatingWebhookConfiguration (the chart renders it, with cert-manager)",
    )


def _webhook_config(args: argparse.Namespace) -> WebhookConfig | None:
    from campaign_autoscaler.adapters.admission import WebhookSettings
    from campaign_autoscaler.handlers.admission import WEBHOOK_ID, WebhookConfig

    if args.webhook_port is None:
        return None
    settings = WebhookSettings(
        configuration_name=args.webhook_configuration_name,
        port=args.webhook_port,
        host=args.webhook_host,
        path=f"/{WEBHOOK_ID}",
        timeout_seconds=args.webhook_timeout,
        failure_policy=args.webhook_failure_policy,
        service=args.webhook_service,
        namespace_labels=args.namespace_selector,
    )
    return WebhookConfig(
        settings=settings,
        listen_address=args.webhook_listen_address,
        cert_dir=Path(args.webhook_cert_dir) if args.webhook_cert_dir else None,
        manage_configuration=args.webhook_configuration,
    )


# --- plan and simulate ------------------------------------------------------------------------------------
def _instant(text: str) -> datetime:
    """`--now`: an RFC 3339 instant with its offset (`2026-09-08T16:00:00Z`)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 date-time: {text!r}") from err
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset or Z: {text!r}")
    return moment.astimezone(UTC)


def _non_negative_duration(text: str) -> timedelta:
    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"must be a duration >= 0, got {text!r} (use e.g. 90s, 2m)")
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        pass
    try:
        return parse_duration(text, "flag")
    except SpecError as err:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90s, 2m)") from err


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from err
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from err
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _add_event_input_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        help="CampaignEvent manifest (YAML, several documents allowed; - for stdin)",
    )
    parser.add_argument(
        "--baseline",
        action="append",
        dest="baselines",
        default=[],
        metavar="NAME=N",
        help="baseline replicas of a Deployment (or targets[i] for a selector target); repeatable",
    )
    parser.add_argument(
        "--max-scale-factor",
        type=_scale_factor,
        default=10.0,
        help="default maxReplicas = max(replicas, baseline x this), as the operator's flag (10)",
    )
    _add_metrics_namespace_label(parser)
    parser.add_argument(
        "--now", type=_instant, help="plan as of this RFC 3339 instant (default: the current time)"
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")


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


def _fail(message: object, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


class InputFileError(ValueError):
    """A file given on the command line cannot be read as text."""


def _read_text(path: str, what: str = "file", missing_hint: str = "") -> str:
    """The UTF-8 text of `path` (`-`: standard input); InputFileError naming the path and the problem."""
    if path == "-":
        binary = getattr(sys.stdin, "buffer", None)  # absent when stdin was replaced by a text stream
        return _decoded(binary.read(), "standard input") if binary is not None else sys.stdin.read()
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such {what}{missing_hint}") from None
    except OSError as err:
        raise InputFileError(f"{path}: cannot be read ({err.strerror})") from None
    if stat.S_ISDIR(mode):
        raise InputFileError(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(mode):
        # A FIFO or a device would block the read or never end it.
        raise InputFileError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as stream:
            return _decoded(stream.read(), path)
    except OSError as err:
        raise InputFileError(f"{path}: cannot be read ({err.strerror})") from None


def _decoded(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(
            f"{source}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None


def _stdout_console() -> Console:
    from rich.console import Console

    # Piped output is not wrapped at 80 columns: the tables stay whole for grep and diff.
    return Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else 250)


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


def _spec_of(event: EventManifest, metrics_namespace_label: str) -> CampaignSpec:
    """The parsed spec, validated as the operator does (its queries held to the event's namespace, or
    `default` for an event that names none); a SpecError also names the event and its file."""
    from campaign_autoscaler.planning import MetricsScope, parse_spec

    namespace = event.namespace or "default"
    scope = MetricsScope(metrics_namespace_label, namespace) if metrics_namespace_label else None
    try:
        return parse_spec(event.raw_spec, scope)
    except SpecError as err:
        raise SpecError(err.field, f"{err.message} (CampaignEvent {event.ref} in {event.source})") from None


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


def _add_metrics_namespace_label(parser: argparse.ArgumentParser) -> None:
    """The operator's tenancy flag; `plan`, `simulate` and `report` take it too, to ask what it asks."""
    parser.add_argument(
        "--metrics-namespace-label",
        type=_prometheus_label_name,
        default="namespace",
        help="the Prometheus label holding a series' namespace: every metric.query is held to its event's "
        'namespace with LABEL="<namespace>" (default namespace; empty: queries see every namespace)',
    )


def _add_report_parser(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report",
        help="after (or during) a sale: was capacity enough, where was it short, what to set next time",
    )
    report.add_argument("event", help="the CampaignEvent's name")
    report.add_argument("-n", "--namespace", required=True, help="the CampaignEvent's namespace")
    report.add_argument(
        "--prometheus-url",
        default=os.environ.get("PROMETHEUS_URL"),
        help="the Prometheus that scrapes the operator's /metrics (default $PROMETHEUS_URL)",
    )
    report.add_argument(
        "--prometheus-timeout", type=_positive_seconds, default=10.0, help="per query (default 10s)"
    )
    report.add_argument(
        "--out", metavar="PATH", help="where to write it (default ./EVENT-report.html or .md)"
    )
    report.add_argument("--format", choices=("html", "markdown"), default="html", help="page format")
    _add_metrics_namespace_label(report)
    report.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    report.add_argument("--context", help="kubeconfig context to use")


def run_report(args: argparse.Namespace) -> int:
    from campaign_autoscaler.report import ReportInputError, ReportReadError, print_summary, write_report

    out = args.out or f"{args.event}-report.{'md' if args.format == 'markdown' else 'html'}"
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        return _fail(f"--out {out}: {folder} is not a writable folder")
    if not args.prometheus_url:
        return _fail("--prometheus-url (or $PROMETHEUS_URL) is required: the figures come from Prometheus")
    try:
        api_client = load_api_client(args.kubeconfig, args.context, in_cluster=False)
        result = write_report(
            api_client,
            args.namespace,
            args.event,
            args.prometheus_url,
            out,
            output_format=args.format,
            prometheus_timeout=args.prometheus_timeout,
            metrics_namespace_label=args.metrics_namespace_label,
        )
    except (InputFileError, ReportInputError) as err:
        return _fail(err)
    except ReportReadError as err:
        return _fail(err, code=1)
    console = _stdout_console()
    print_summary(console, result.data)
    console.print(f"Wrote {result.path}", highlight=False)
    if result.data.prometheus_unreachable:
        return _fail(f"Prometheus at {args.prometheus_url} could not be read: the report is partial", code=1)
    return 0


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


# Reconciles run in worker threads, and every one of them may hold an HTTP connection to the API server: a
# transition due for hundreds of targets in the same second must not queue behind a handful of either.
WORKER_THREADS = 32
# How long `run --peering` waits for Kopf's peering CRDs to be served (they may come in the same apply).
PEERING_CRD_WAIT = 60.0


def load_api_client(
    kubeconfig: str | None, context: str | None, *, in_cluster: bool = True, pool_size: int | None = None
) -> Any:
    """A kubernetes ApiClient: in a pod its service account (unless a kubeconfig is given), else the
    kubeconfig (`--kubeconfig`, else $KUBECONFIG or ~/.kube/config). InputFileError when none can be loaded,
    in one line naming the file and the problem."""
    import yaml
    from kubernetes import client, config

    configuration = client.Configuration()
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
    if in_cluster and kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        except config.ConfigException:
            pass  # not in a pod: the kubeconfig
    path = (
        kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION)
    )
    if kubeconfig is None and not os.path.exists(path.split(os.pathsep)[0]):
        raise InputFileError(
            "no cluster configuration: not running in a pod, and no kubeconfig "
            f"(--kubeconfig FILE, $KUBECONFIG or {path})"
        )
    if kubeconfig is not None:
        _read_text(kubeconfig, "kubeconfig")  # a missing, unreadable or binary file, named as such
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except (config.ConfigException, yaml.YAMLError) as err:
        detail = " ".join(str(err).split())
        raise InputFileError(f"{kubeconfig or path}: not a usable kubeconfig ({detail})") from None
    except (TypeError, ValueError, AttributeError, KeyError):
        # The client reads the document without checking its shape.
        raise InputFileError(
            f"{kubeconfig or path}: not a usable kubeconfig (expected a YAML mapping of clusters, users, "
            "contexts and current-context)"
        ) from None
    return client.ApiClient(configuration)


def _configure_logging(log_format: str, verbose: bool) -> None:
    import kopf

    kopf.configure(
        debug=verbose,
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="object",
    )
    logging.getLogger("campaign_autoscaler").setLevel(logging.DEBUG if verbose else logging.INFO)


def _peering_priority(args: argparse.Namespace) -> int:
    """Replicas of one Deployment share their arguments, and Kopf pauses every peer of equal priority: a
    random priority per process lets exactly one of them be active."""
    if args.priority is not None:
        return args.priority
    return secrets.randbelow(1_000_000) if args.peering else 0


def run_operator(args: argparse.Namespace) -> int:
    import kopf

    from campaign_autoscaler.adapters.eventlane import EventLane
    from campaign_autoscaler.adapters.kube import KubeAdapter
    from campaign_autoscaler.adapters.peering import PeeringSetupError, ensure_peering
    from campaign_autoscaler.adapters.prometheus import PrometheusMetricsSource, PrometheusSettings
    from campaign_autoscaler.adapters.statuslane import StatusLane
    from campaign_autoscaler.adapters.telemetry import Telemetry
    from campaign_autoscaler.handlers import OperatorConfig, Runtime, build_registry
    from campaign_autoscaler.handlers.lanes import PassLanes
    from campaign_autoscaler.report.collect import transition_record

    _configure_logging(args.log_format, args.verbose)
    try:
        api_client = load_api_client(args.kubeconfig, args.context, pool_size=WORKER_THREADS)
    except InputFileError as err:
        return _fail(err)
    if args.peering:
        try:
            ensure_peering(api_client, args.peering, args.namespaces or (), wait=PEERING_CRD_WAIT)
        except PeeringSetupError as err:
            return _fail(f"Kopf peering: {err}", code=1)
    telemetry = Telemetry()
    metrics = None
    if args.prometheus_url:
        settings = PrometheusSettings(
            url=args.prometheus_url,
            bearer_token_file=args.prometheus_bearer_token_file,
            ca_file=args.prometheus_ca_file,
            timeout=args.prometheus_timeout,
        )
        metrics = PrometheusMetricsSource(settings, observe=telemetry.observe_query)
    if args.metrics_port:
        telemetry.serve(args.metrics_port)
    config = OperatorConfig(
        resync_interval=args.resync_interval,
        max_scale_factor=args.max_scale_factor,
        dry_run=args.dry_run,
        metrics_interval=args.metrics_interval,
        metrics_concurrency=args.metrics_concurrency,
        prometheus_timeout=args.prometheus_timeout,
        scale_down_stabilization=args.scale_down_stabilization,
        curve_step=args.curve_step,
        peering_lifetime=args.peering_lifetime,
        namespaces=tuple(args.namespaces or ()),
        metrics_namespace_label=args.metrics_namespace_label,
        namespace_selector=tuple(sorted((args.namespace_selector or {}).items())),
        target_kinds=args.target_kinds,
    )
    kube = KubeAdapter(api_client)
    runtime = Runtime(
        config=config,
        kube=kube,
        api_client=api_client,
        metrics=metrics,
        telemetry=telemetry,
        events=EventLane(kube, kept_apart=transition_record).start(),
        statuses=StatusLane(kube.replace_event_status).start(),
        lanes=PassLanes(),
        headroom=kube.placeholders(args.placeholder_image, args.placeholder_priority_class),
    )
    liveness = f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None

    async def serve() -> None:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="reconcile")
        )
        stop = asyncio.Event()  # set on SIGTERM once no write is in flight (see handlers/wiring.py)
        await kopf.operator(
            registry=build_registry(_webhook_config(args), namespace_selector=bool(args.namespace_selector)),
            memo=kopf.Memo(runtime=runtime, stop=stop),
            stop_flag=stop,
            clusterwide=not args.namespaces,
            namespaces=args.namespaces,
            standalone=args.peering is None,
            peering_name=args.peering,
            priority=_peering_priority(args),
            liveness_endpoint=liveness,
        )

    asyncio.run(serve())
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
