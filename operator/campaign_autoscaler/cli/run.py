"""`campaign-autoscaler run`: the operator against a cluster (Kopf, logging, the admission webhook)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from campaign_autoscaler.cli.arguments import (
    _add_metrics_namespace_label,
    _positive_int,
    _positive_seconds,
    _scale_factor,
)
from campaign_autoscaler.cli.console import _fail
from campaign_autoscaler.cli.inputs import InputFileError, load_api_client
from campaign_autoscaler.planning import SpecError, parse_label_equalities
from campaign_autoscaler.planning.headroom import DEFAULT_PLACEHOLDER_IMAGE, DEFAULT_PRIORITY_CLASS

if TYPE_CHECKING:
    from campaign_autoscaler.handlers.admission import WebhookConfig


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


# Reconciles run in worker threads, and every one of them may hold an HTTP connection to the API server: a
# transition due for hundreds of targets in the same second must not queue behind a handful of either.
WORKER_THREADS = 32
# How long `run --peering` waits for Kopf's peering CRDs to be served (they may come in the same apply).
PEERING_CRD_WAIT = 60.0


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
    from campaign_autoscaler.adapters.arenas import limit_arenas

    limit_arenas()  # before any thread starts (adapters/arenas.py)
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
    lanes = PassLanes()  # bookkeeping waits its turn behind the urgent lane's passes
    runtime = Runtime(
        config=config,
        kube=kube,
        api_client=api_client,
        metrics=metrics,
        telemetry=telemetry,
        events=EventLane(kube, kept_apart=transition_record, priority=lanes.priority).start(),
        statuses=StatusLane(kube.replace_event_status, priority=lanes.priority).start(),
        lanes=lanes,
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
