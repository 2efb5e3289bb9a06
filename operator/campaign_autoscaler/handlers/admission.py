"""The validating admission webhook: `kubectl apply` (and `--dry-run=server`) of an invalid CampaignEvent
fails at once, with the same field-named message the Invalid phase would show, because both run the one
planning validation (`parse_spec`, with the same PromQL scope). The Invalid phase stays as the second line of
defence: with `failurePolicy: Ignore`, an event created while the operator is away is still judged by the
pass when it returns.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from campaign_autoscaler.adapters.admission import (
    WebhookSettings,
    apply_webhook_configuration,
    self_signed_certificate,
    webhook_configuration,
)
from campaign_autoscaler.planning import SpecError, parse_spec

from .runtime import Runtime

WEBHOOK_ID = "validate-campaignevent"


@dataclass(frozen=True)
class WebhookConfig:
    """The operator's webhook flags: where it listens, how the API server reaches it, whose certificate."""

    settings: WebhookSettings
    listen_address: str = "0.0.0.0"
    cert_dir: Path | None = None  # tls.crt and tls.key (cert-manager); None: a self-signed certificate
    manage_configuration: bool = True  # write the ValidatingWebhookConfiguration (off: the chart renders it)


def validate_event(
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    namespace: str,
    operation: str | None,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Refuse a spec the pass would find Invalid; let everything else through (metadata-only updates such as
    the finalizer's, and any change to an event being deleted, are never refused)."""
    runtime: Runtime = memo["runtime"]
    spec = body.get("spec") or {}
    if operation == "UPDATE" and old is not None and (old.get("spec") or {}) == spec:
        return
    if (body.get("metadata") or {}).get("deletionTimestamp"):
        return
    try:
        parse_spec(spec, runtime.config.metrics_scope(namespace))
    except SpecError as err:
        raise kopf.AdmissionError(str(err), code=422) from None


async def start_webhook(settings: kopf.OperatorSettings, memo: kopf.Memo, config: WebhookConfig) -> None:
    """Serve the webhook with Kopf's server, and tell the API server where it is."""
    runtime: Runtime = memo["runtime"]
    if config.cert_dir is not None:
        certfile, pkeyfile = config.cert_dir / "tls.crt", config.cert_dir / "tls.key"
        ca_bundle = (config.cert_dir / "ca.crt").read_bytes() if config.manage_configuration else b""
    else:
        directory = tempfile.TemporaryDirectory(prefix="campaign-autoscaler-webhook-")
        memo["webhook_cert_dir"] = directory  # removed with the memo at exit
        hostnames = [config.settings.host]
        if config.settings.service is not None:
            namespace, name = config.settings.service
            hostnames += [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
        files = self_signed_certificate(hostnames, Path(directory.name), runtime.clock())
        certfile, pkeyfile, ca_bundle = files.certfile, files.pkeyfile, files.ca_bundle()
    settings.admission.server = kopf.WebhookServer(
        addr=config.listen_address,
        port=config.settings.port,
        host=config.settings.host,
        certfile=str(certfile),
        pkeyfile=str(pkeyfile),
    )
    if config.manage_configuration:
        body = webhook_configuration(config.settings, ca_bundle)
        await asyncio.get_running_loop().run_in_executor(
            None, apply_webhook_configuration, runtime.api_client, body
        )


def register_webhook(
    registry: kopf.OperatorRegistry, resource: tuple[str, str, str], config: WebhookConfig
) -> None:
    async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        await start_webhook(settings, memo, config)

    kopf.on.startup(registry=registry, id="start-webhook")(on_startup)
    kopf.on.validate(
        *resource,
        registry=registry,
        id=WEBHOOK_ID,
        operations=["CREATE", "UPDATE"],
        ignore_failures=config.settings.failure_policy == "Ignore",
    )(validate_event)
