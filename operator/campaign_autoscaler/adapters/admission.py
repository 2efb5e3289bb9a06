"""The admission webhook's outside world: its TLS certificate and its ValidatingWebhookConfiguration.

Kopf serves the webhook (`kopf.WebhookServer`); this module gives it a certificate and tells the API server
where it is. The configuration is written here rather than by Kopf's own manager because Kopf's always says
`timeoutSeconds: 30`: the operator's says `--webhook-timeout` (5 s by default) and `failurePolicy: Ignore`
by default, so that an operator outage delays or blocks no `kubectl apply`.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler import API_GROUP, API_VERSION, PLURAL

log = logging.getLogger("campaign_autoscaler.adapters.admission")

CERTIFICATE_VALIDITY = timedelta(days=365)


@dataclass(frozen=True)
class CertificateFiles:
    certfile: Path
    pkeyfile: Path

    def ca_bundle(self) -> bytes:
        """A self-signed certificate is its own CA."""
        return self.certfile.read_bytes()


def self_signed_certificate(hostnames: Sequence[str], directory: Path, now: datetime) -> CertificateFiles:
    """A fresh key and a self-signed certificate for `hostnames` (DNS names or IP addresses), as PEM files."""
    # Imported here: half a second of start-up that an operator without the webhook does not pay.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    names: list[x509.GeneralName] = []
    for hostname in dict.fromkeys(hostnames):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
        except ValueError:
            names.append(x509.DNSName(hostname))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CERTIFICATE_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = CertificateFiles(directory / "tls.crt", directory / "tls.key")
    files.certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.pkeyfile.touch(mode=0o600)
    files.pkeyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


@dataclass(frozen=True)
class WebhookSettings:
    """Where the API server reaches the webhook and how it treats it."""

    configuration_name: str
    port: int
    host: str  # the name or address the API server calls (and the certificate is for)
    path: str  # the handler's path on the server
    timeout_seconds: int = 5
    failure_policy: str = "Ignore"
    service: tuple[str, str] | None = None  # (namespace, name) of a Service in front of the operator
    namespace_labels: Mapping[str, str] | None = None  # only events in namespaces with these labels


def webhook_configuration(settings: WebhookSettings, ca_bundle: bytes) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration for CampaignEvent creations and updates."""
    client_config: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle).decode("ascii")}
    if settings.service is not None:
        namespace, name = settings.service
        client_config["service"] = {
            "namespace": namespace,
            "name": name,
            "port": settings.port,
            "path": settings.path,
        }
    else:
        client_config["url"] = f"https://{_url_host(settings.host)}:{settings.port}{settings.path}"
    webhook: dict[str, Any] = {
        "name": f"{PLURAL}.{API_GROUP}",
        "rules": [
            {
                "apiGroups": [API_GROUP],
                "apiVersions": [API_VERSION],
                "resources": [PLURAL],
                "operations": ["CREATE", "UPDATE"],
                "scope": "Namespaced",
            }
        ],
        "clientConfig": client_config,
        "failurePolicy": settings.failure_policy,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": settings.timeout_seconds,
        "admissionReviewVersions": ["v1", "v1beta1"],
    }
    if settings.namespace_labels:
        webhook["namespaceSelector"] = {"matchLabels": dict(settings.namespace_labels)}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {
            "name": settings.configuration_name,
            "labels": {"app.kubernetes.io/name": "campaign-autoscaler"},
        },
        "webhooks": [webhook],
    }


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def apply_webhook_configuration(api_client: client.ApiClient, body: Mapping[str, Any]) -> None:
    """Create the configuration, or replace the existing one (its CA, address and rules all change)."""
    api = client.AdmissionregistrationV1Api(api_client)
    name = body["metadata"]["name"]
    try:
        api.create_validating_webhook_configuration(body)
        log.info("Created ValidatingWebhookConfiguration %s", name)
        return
    except ApiException as err:
        if err.status != 409:
            raise
    existing = api.read_validating_webhook_configuration(name)
    replacement = {
        **body,
        "metadata": {**body["metadata"], "resourceVersion": existing.metadata.resource_version},
    }
    api.replace_validating_webhook_configuration(name, replacement)
    log.info("Replaced ValidatingWebhookConfiguration %s", name)
