"""The webhook's pieces without a cluster: its decision (the one planning validation), the configuration it
writes, its certificate, and the parsing of `--namespace-selector`."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from cryptography import x509

from campaign_autoscaler.adapters.admission import (
    WebhookSettings,
    self_signed_certificate,
    webhook_configuration,
)
from campaign_autoscaler.cli import build_parser, main
from campaign_autoscaler.handlers.admission import validate_event
from campaign_autoscaler.handlers.runtime import OperatorConfig, Runtime
from campaign_autoscaler.planning import SpecError, parse_label_equalities
from tests.unit.fakes import FakeKube
from tests.unit.test_plan_cli import SALE

NOW = datetime(2026, 9, 1, tzinfo=UTC)
SPEC = {"start": "2026-09-09T00:00:00Z", "end": "2026-09-10T00:00:00Z", "targets": [{"name": "checkout"}]}


def memo(label: str = "namespace") -> kopf.Memo:
    return kopf.Memo(runtime=Runtime(config=OperatorConfig(metrics_namespace_label=label), kube=FakeKube()))


def review(spec: dict[str, Any], operation: str = "CREATE", old: dict[str, Any] | None = None, **meta: Any):
    body = {"metadata": {"name": "sale", **meta}, "spec": spec}
    return validate_event(body=body, old=old, namespace="shop", operation=operation, memo=memo())


def test_a_valid_event_is_admitted():
    assert review(SPEC) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end": "2026-09-08T00:00:00Z"}, "spec.end: must be after spec.start"),
        ({"timezone": "Mars/Base"}, "spec.timezone: unknown timezone"),
        (
            {
                "targets": [
                    {"name": "x", "metric": {"query": 'up{namespace="payments"}', "targetPerReplica": 1}}
                ]
            },
            "spec.targets[0].metric.query: selector",
        ),
    ],
)
def test_an_invalid_event_is_refused_with_the_passs_message(change: dict[str, Any], message: str):
    with pytest.raises(kopf.AdmissionError) as raised:
        review({**SPEC, **change})
    assert str(raised.value).startswith(message)
    assert raised.value.code == 422


def test_a_metadata_only_update_of_an_invalid_event_is_admitted():
    invalid = {**SPEC, "end": "2026-09-08T00:00:00Z"}
    assert review(invalid, "UPDATE", old={"spec": invalid}) is None  # e.g. the finalizer, a label
    assert review(invalid, "UPDATE", old={"spec": SPEC}, deletionTimestamp="2026-09-01T00:00:00Z") is None
    with pytest.raises(kopf.AdmissionError):
        review(invalid, "UPDATE", old={"spec": SPEC})


def test_the_configuration_asks_for_ignore_and_five_seconds(tmp_path: Path):
    settings = WebhookSettings("ca", port=9443, host="::1", path="/validate-campaignevent")
    body = webhook_configuration(settings, b"PEM")
    (webhook,) = body["webhooks"]
    assert (webhook["failurePolicy"], webhook["timeoutSeconds"]) == ("Ignore", 5)
    assert webhook["clientConfig"] == {
        "caBundle": base64.b64encode(b"PEM").decode(),
        "url": "https://[::1]:9443/validate-campaignevent",
    }
    assert webhook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert "namespaceSelector" not in webhook

    in_cluster = WebhookSettings(
        "ca", 9443, "svc", "/v", service=("system", "svc"), namespace_labels={"campaigns.dev/enabled": "true"}
    )
    (webhook,) = webhook_configuration(in_cluster, b"PEM")["webhooks"]
    assert webhook["clientConfig"]["service"] == {
        "namespace": "system",
        "name": "svc",
        "port": 9443,
        "path": "/v",
    }
    assert webhook["namespaceSelector"] == {"matchLabels": {"campaigns.dev/enabled": "true"}}


def test_the_certificate_names_every_host(tmp_path: Path):
    files = self_signed_certificate(["127.0.0.1", "hook.system.svc"], tmp_path, NOW)
    certificate = x509.load_pem_x509_certificate(files.ca_bundle())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["hook.system.svc"]
    assert certificate.not_valid_before_utc < NOW < certificate.not_valid_after_utc
    assert files.pkeyfile.stat().st_mode & 0o077 == 0


def test_label_equalities():
    assert dict(parse_label_equalities("campaigns.dev/enabled=true, team==shop", "f")) == {
        "campaigns.dev/enabled": "true",
        "team": "shop",
    }
    for bad in ("enabled", "a b=c", "k=v!", "=v"):
        with pytest.raises(SpecError) as raised:
            parse_label_equalities(bad, "--namespace-selector")
        assert raised.value.field == "--namespace-selector"


@pytest.mark.parametrize(
    "argv",
    [
        ["--metrics-namespace-label", "kubernetes-namespace"],
        ["--namespace-selector", "enabled"],
        ["--webhook-port", "9443", "--webhook-timeout", "31"],
        ["--webhook-port", "9443", "--webhook-service", "no-slash"],
        ["--webhook-port", "9443", "--webhook-failure-policy", "Retry"],
    ],
)
def test_bad_security_flags_are_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["run", *argv])
    assert raised.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and argv[-2] in error_lines[0]


def planned_event() -> str:
    """test_plan_cli's sale in `shop`, with a query that names another namespace."""
    event = yaml.safe_load(SALE)
    query = 'sum(rate(http_requests_total{namespace="payments"}[2m]))'
    event["spec"]["targets"] = [{"name": "checkout", "metric": {"query": query, "targetPerReplica": 10}}]
    return yaml.safe_dump(event)


def test_plan_validates_queries_as_the_operator_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "event.yaml"
    path.write_text(planned_event())
    argv = ["plan", "-f", str(path), "--now", "2026-09-01T00:00:00Z", "--baseline", "checkout=4"]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: spec.targets[0].metric.query: selector ") and "shop/sale" in line
    assert main([*argv, "--metrics-namespace-label", ""]) == 0
