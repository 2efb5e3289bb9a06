"""The operator's wiring: start-up and clean-up, Kopf's login, and the handler registry."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import aiohttp
import kopf

from campaign_autoscaler import API_GROUP, API_VERSION, PLURAL
from campaign_autoscaler.adapters.informer import DriftAlarms, WorkloadCache
from campaign_autoscaler.adapters.podcache import PodCache
from campaign_autoscaler.adapters.sampler import MetricSampler
from campaign_autoscaler.adapters.session import bounded_session, connection_info

from .admission import WebhookConfig, register_webhook
from .collector import EventDirectory, run_collector
from .context import log
from .daemon import campaign_daemon, on_event_deleted, on_event_seen
from .kinds import watch_target_kinds
from .namespaces import NamespaceGate, in_selected_namespace, on_namespace, start_gate
from .runtime import RETRY_FIRST_SECONDS, Runtime

FINALIZER = f"{API_GROUP}/finalizer"
# Kopf's requests in flight at once (patches of CampaignEvents, peering), not counting its watch streams.
KOPF_CONCURRENT_REQUESTS = 8
# How long a graceful stop waits for the writes in flight before it leaves anyway.
DRAIN_SECONDS = 10.0
# The collector looks twice per resync interval, so that an orphan claim is gone within one.
COLLECTOR_ROUNDS_PER_RESYNC = 2


def stop_gracefully(runtime: Runtime, stop: asyncio.Event, tasks: set[asyncio.Task[None]]) -> None:
    """SIGTERM (a rolling update, a drain): stop writing first, then leave. Kopf drops this replica from
    the peering as it exits, and a standby resumes at once; by then no write of this one is in flight."""

    async def drain() -> None:
        log.info("Stopping: no new writes; waiting for those in flight")
        drained = await asyncio.to_thread(runtime.gate.close, DRAIN_SECONDS)
        if not drained:
            log.warning("Stopping with writes still in flight after %.0f s", DRAIN_SECONDS)
        stop.set()

    task = asyncio.ensure_future(drain())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep Kopf's bookkeeping out of status (the daemon is its only writer) and under our own names; and
    start watching the Deployments and HPAs the events may target, before any event is reconciled; and the
    Prometheus samplers beside the passes."""
    runtime: Runtime = memo["runtime"]
    stop: asyncio.Event | None = memo.get("stop")
    if stop is not None:  # in place of Kopf's own SIGTERM handler, which leaves the peering at once
        drains: set[asyncio.Task[None]] = set()
        memo["drains"] = drains
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop_gracefully, runtime, stop, drains)
    await start_gate(memo, dict(runtime.config.namespace_selector) or None)
    gate: NamespaceGate = memo["namespace_gate"]
    # How long a silent peer counts as alive: a standby takes over this long after the active one died.
    settings.peering.lifetime = max(1, round(runtime.config.peering_lifetime))
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.enabled = False  # our own Events carry the object names; Kopf's would duplicate them
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10]
    info = connection_info(runtime.api_client.configuration)
    session = bounded_session(info, KOPF_CONCURRENT_REQUESTS)
    configuration = runtime.api_client.configuration
    sampler = MetricSampler(
        runtime.metrics,
        runtime.clock,
        runtime.config.metrics_interval,
        concurrency=runtime.config.metrics_concurrency,
    )
    sampler.start()
    memo["sampler"] = sampler
    alarms = DriftAlarms()
    memo["drift_alarms"] = alarms
    workloads = WorkloadCache(
        session,
        info.server,
        runtime.config.namespaces or None,
        headers=lambda: connection_info(configuration).as_http_headers(),
        alarms=alarms,
        # With a selector, only the selected namespaces, each watched on its own; on_namespace follows it.
        selected=set(gate.selected) if gate.selector is not None else None,
    )
    memo["workloads"] = workloads
    memo["workloads_session"] = session
    memo["workloads_task"] = asyncio.create_task(workloads.run(), name="workloads")
    await workloads.wait_synced()
    # After the first listings, so that a kind RBAC does not allow holds up nothing: it is only logged.
    await watch_target_kinds(runtime, workloads)
    pods = PodCache(
        session,
        info.server,
        lambda: claimed_namespaces(workloads),
        headers=lambda: connection_info(configuration).as_http_headers(),
        changed=lambda namespace, deployment: alarms.ring(
            workloads.claims_of(namespace, deployment), urgent=False
        ),
    )
    memo["pods"] = pods
    memo["pods_task"] = asyncio.create_task(pods.run(), name="pods")
    directory = EventDirectory()
    memo["directory"] = directory
    memo["collector_task"] = asyncio.create_task(
        run_collector(
            runtime,
            directory,
            lambda: [
                workloads.snapshot(namespace)
                for namespace in workloads.namespaces()
                if gate.allows(namespace)
            ],
            runtime.config.resync_interval / COLLECTOR_ROUNDS_PER_RESYNC,
        ),
        name="orphan-claims-collector",
    )


def claimed_namespaces(workloads: WorkloadCache) -> list[str]:
    """The namespaces where a Deployment carries a claim: whose Pods are watched."""
    return [
        namespace
        for namespace in workloads.namespaces()
        if any(view.claims for view in workloads.deployments.views(namespace))
    ]


async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    for name in ("collector_task", "pods_task", "workloads_task"):
        task: asyncio.Task[None] | None = memo.get(name)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    sampler: MetricSampler | None = memo.get("sampler")
    if sampler is not None:
        await sampler.stop()
    session: aiohttp.ClientSession | None = memo.get("workloads_session")
    if session is not None:
        await session.close()


async def on_login(memo: kopf.Memo, **_: Any) -> kopf.AiohttpSession:
    """Kopf talks to the same cluster as the adapters, through a session that bounds its requests in flight.

    Kopf closes the session itself when it forgets the credentials (at exit or on a new login).
    """
    info = connection_info(memo["runtime"].api_client.configuration)
    return kopf.AiohttpSession(
        server=info.server, aiohttp_session=bounded_session(info, KOPF_CONCURRENT_REQUESTS)
    )


def build_registry(
    webhook: WebhookConfig | None = None, namespace_selector: bool = False
) -> kopf.OperatorRegistry:
    """A fresh registry with the handlers above (no module-level registry: tests run several operators), the
    validating admission webhook when configured, and the watch on Namespaces with `--namespace-selector`.
    Every CampaignEvent handler acts only in the selected namespaces (all of them without a selector)."""
    registry = kopf.OperatorRegistry()
    resource = (API_GROUP, API_VERSION, PLURAL)
    kopf.on.startup(registry=registry)(on_startup)
    kopf.on.login(registry=registry)(on_login)
    kopf.on.cleanup(registry=registry)(on_cleanup)
    # A failure is retried after a second, not Kopf's default minute: a release is due "at once".
    selected = in_selected_namespace
    kopf.daemon(
        *resource, registry=registry, cancellation_timeout=10.0, backoff=RETRY_FIRST_SECONDS, when=selected
    )(campaign_daemon)
    kopf.on.event(*resource, registry=registry, when=selected)(on_event_seen)
    kopf.on.delete(*resource, registry=registry, backoff=RETRY_FIRST_SECONDS, when=selected)(on_event_deleted)
    if namespace_selector:
        kopf.on.event("", "v1", "namespaces", registry=registry)(on_namespace)
    if webhook is not None:
        register_webhook(registry, resource, webhook)
    return registry
