"""The CampaignEvent CRD, checked without a cluster: structure, documentation, patterns, and the example.

The same valid and invalid objects are sent to the real API server in tests/integration/test_environment.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from campaign_autoscaler import API_GROUP, API_VERSION, KIND, PLURAL
from campaign_autoscaler.planning.durations import GO_DURATION_PATTERN, PROMETHEUS_DURATION_PATTERN

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "campaignevents.autoscaling.campaigns.dev.yaml"
EXAMPLE_PATH = REPO / "examples" / "sale-9-9.yaml"

COMBINATORS = ("oneOf", "anyOf", "allOf", "not")

# Every spec field of the contract, window form. Stored by the API server exactly as sent.
FULL_SPEC: dict[str, Any] = {
    "timezone": "Asia/Jakarta",
    "start": "2026-09-09T00:00:00",
    "end": "2026-09-10T02:00:00+07:00",
    "leadTime": "1h30m",
    "rampUp": {"steps": 3},
    "rampDown": {"duration": "1.5h", "steps": 4},
    "trafficMultiplier": 2.5,
    "targets": [
        {"name": "order-tracking"},
        {
            "selector": {
                "matchLabels": {"campaign.tier": "checkout"},
                "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable", "canary"]}],
            },
            "multiplier": 3,
            "replicas": 20,
            "minReplicas": 4,
            "maxReplicas": 60,
            "metric": {
                "query": 'sum(rate(http_requests_total{app="checkout"}[2m]))',
                "targetPerReplica": 80,
                "forecast": {"offset": "365d", "growth": 1.2},
            },
        },
    ],
    "nodeHeadroom": {"leadTime": "10m"},
    "dryRun": False,
}
SCHEDULED_SPEC: dict[str, Any] = {
    **{key: value for key, value in FULL_SPEC.items() if key not in ("start", "end")},
    "schedule": {"cron": "0 0 9 9 *", "duration": "26h"},
}
# Every status field of the contract, as the operator writes it.
FULL_STATUS: dict[str, Any] = {
    "phase": "Active",
    "window": {"start": "2026-09-08T17:00:00Z", "end": "2026-09-09T19:00:00Z"},
    "nextTransition": "2026-09-09T19:00:00Z",
    "observedGeneration": 3,
    "targets": [
        {
            "name": "checkout",
            "via": "HorizontalPodAutoscaler/checkout",
            "baselineReplicas": 4,
            "desiredReplicas": 20,
            "readyReplicas": 18,
            "pendingReplicas": 2,
            "notReadyReason": "Unschedulable",
            "forecastReplicas": 12,
            "forecastPeak": "812.5",
            "metricValue": "NaN",
            "reason": "floor 20 = replicas 20",
            "observedReadySeconds": 95.5,
        }
    ],
    "conditions": [
        {
            "type": "MetricsAvailable",
            "status": "False",
            "reason": "QueryReturnedNaN",
            "message": "metric.query returned NaN; kept 20 replicas",
            "lastTransitionTime": "2026-09-09T01:00:00Z",
            "observedGeneration": 3,
        }
    ],
}

_TARGET = {"name": "checkout"}
_WINDOW = {"start": "2026-09-09T00:00:00", "end": "2026-09-10T02:00:00"}


@dataclass(frozen=True)
class InvalidSpec:
    """A spec the API server must refuse, and the field its error names (array indices left out)."""

    id: str
    spec: dict[str, Any]
    field: str


INVALID_SPECS = (
    InvalidSpec("no-targets", {**_WINDOW}, "spec.targets"),
    InvalidSpec("empty-targets", {**_WINDOW, "targets": []}, "spec.targets"),
    InvalidSpec(
        "string-multiplier",
        {**_WINDOW, "targets": [_TARGET], "trafficMultiplier": "2.5"},
        "spec.trafficMultiplier",
    ),
    InvalidSpec(
        "zero-ramp-up-steps", {**_WINDOW, "targets": [_TARGET], "rampUp": {"steps": 0}}, "spec.rampUp.steps"
    ),
    InvalidSpec(
        "non-duration-lead-time",
        {**_WINDOW, "targets": [_TARGET], "leadTime": "half an hour"},
        "spec.leadTime",
    ),
    InvalidSpec(
        "day-unit-in-go-duration",
        {**_WINDOW, "targets": [_TARGET], "rampDown": {"duration": "1d"}},
        "spec.rampDown.duration",
    ),
    InvalidSpec(
        "negative-replicas",
        {**_WINDOW, "targets": [{"name": "checkout", "replicas": -1}]},
        "spec.targets.replicas",
    ),
    InvalidSpec(
        "zero-target-per-replica",
        {**_WINDOW, "targets": [{"name": "checkout", "metric": {"query": "up", "targetPerReplica": 0}}]},
        "spec.targets.metric.targetPerReplica",
    ),
    InvalidSpec(
        "go-style-forecast-offset",
        {
            **_WINDOW,
            "targets": [
                {
                    "name": "checkout",
                    "metric": {"query": "up", "targetPerReplica": 1, "forecast": {"offset": "1.5h"}},
                }
            ],
        },
        "spec.targets.metric.forecast.offset",
    ),
    InvalidSpec(
        "schedule-without-cron", {"schedule": {"duration": "26h"}, "targets": [_TARGET]}, "spec.schedule.cron"
    ),
    InvalidSpec("target-without-name-or-selector", {**_WINDOW, "targets": [{"replicas": 3}]}, "spec.targets"),
    InvalidSpec(
        "target-with-name-and-selector",
        {**_WINDOW, "targets": [{"name": "checkout", "selector": {"matchLabels": {"app": "checkout"}}}]},
        "spec.targets",
    ),
)


def load_crd() -> dict[str, Any]:
    return dict(yaml.safe_load(CRD_PATH.read_text()))


def load_example() -> dict[str, Any]:
    return dict(yaml.safe_load(EXAMPLE_PATH.read_text()))


def openapi_schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node that describes a value, with a dotted path (`[]` for items, `{}` for map values)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from schema_nodes(child, f"{path}.{name}" if path else name)
    if "items" in node:
        yield from schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_nodes(node["additionalProperties"], f"{path}{{}}")


def node_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    return dict(schema_nodes(schema))[path]


def pruning_validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    """A draft-4 validator that also refuses the fields the API server would silently prune.

    The CRD dialect is draft-4 (exclusiveMinimum is a boolean); unknown fields are dropped by the server
    rather than refused, so a misspelled field would vanish. additionalProperties: false makes that visible.
    """
    strict = copy.deepcopy(schema)
    for _, node in schema_nodes(strict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
    strict["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft4Validator(strict)


def error_field(error: jsonschema.ValidationError) -> str:
    """The field an error is about, in the API server's notation (no array indices)."""
    path = [str(part) for part in error.absolute_path if not isinstance(part, int)]
    if error.validator == "required":
        path += [name for name in error.validator_value if name not in error.instance][:1]
    return ".".join(path)


def campaign_event(spec: dict[str, Any], name: str = "sale") -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


# -- the CRD itself ------------------------------------------------------------------------------------------


def test_crd_names_group_version_and_scope():
    crd = load_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{PLURAL}.{API_GROUP}"
    spec = crd["spec"]
    assert spec["group"] == API_GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == KIND
    assert spec["names"]["plural"] == PLURAL
    assert spec["names"]["singular"] == "campaignevent"
    assert spec["names"]["shortNames"] == ["ce", "campaign"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (API_VERSION, True, True)
    assert version["subresources"] == {"status": {}}


def test_schema_is_structural_and_every_field_is_described():
    for path, node in schema_nodes(openapi_schema(load_crd())):
        assert "type" in node, f"{path or '<root>'} has no type"
        assert len(node.get("description", "").split()) >= 3, f"{path or '<root>'} lacks a useful description"
        for combinator in COMBINATORS:
            for branch in node.get(combinator, []):
                assert set(branch) == {"required"}, f"{path}.{combinator} may only list required fields"


def test_schema_sets_no_defaults_and_needs_no_unknown_fields_or_cel():
    text = CRD_PATH.read_text()
    for forbidden in ("default:", "x-kubernetes-validations", "x-kubernetes-preserve-unknown-fields"):
        assert forbidden not in text


def test_spec_and_status_cover_every_field_of_the_contract():
    schema = openapi_schema(load_crd())
    validator = pruning_validator(schema)
    for spec in (FULL_SPEC, SCHEDULED_SPEC):
        validator.validate({**campaign_event(spec), "status": FULL_STATUS})
    phases = node_at(schema, "status.phase")["enum"]
    assert phases == ["Pending", "PreScaling", "Active", "RampingDown", "Completed", "Invalid"]


def test_required_fields():
    schema = openapi_schema(load_crd())
    assert node_at(schema, "spec")["required"] == ["targets"]
    assert node_at(schema, "spec.schedule")["required"] == ["cron", "duration"]
    assert node_at(schema, "spec.targets[]")["oneOf"] == [{"required": ["name"]}, {"required": ["selector"]}]
    assert node_at(schema, "spec.targets[].metric")["required"] == ["query", "targetPerReplica"]
    assert node_at(schema, "spec.targets")["minItems"] == 1


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("spec.leadTime", GO_DURATION_PATTERN),
        ("spec.rampDown.duration", GO_DURATION_PATTERN),
        ("spec.schedule.duration", GO_DURATION_PATTERN),
        ("spec.targets[].metric.forecast.offset", PROMETHEUS_DURATION_PATTERN),
    ],
)
def test_duration_patterns_are_the_planning_ones(path, pattern):
    node = node_at(openapi_schema(load_crd()), path)
    assert (node["type"], node["pattern"]) == ("string", pattern)


@pytest.mark.parametrize(
    "path",
    [
        "spec.trafficMultiplier",
        "spec.targets[].multiplier",
        "spec.targets[].metric.targetPerReplica",
        "spec.targets[].metric.forecast.growth",
    ],
)
def test_ratios_are_numbers_above_zero(path):
    node = node_at(openapi_schema(load_crd()), path)
    assert (node["type"], node["minimum"], node["exclusiveMinimum"]) == ("number", 0, True)


@pytest.mark.parametrize(
    ("path", "minimum"),
    [
        ("spec.rampUp.steps", 1),
        ("spec.rampDown.steps", 1),
        ("spec.targets[].replicas", 0),
        ("spec.targets[].minReplicas", 0),
        ("spec.targets[].maxReplicas", 0),
    ],
)
def test_counts_are_integers_with_a_minimum(path, minimum):
    node = node_at(openapi_schema(load_crd()), path)
    assert (node["type"], node["minimum"]) == ("integer", minimum)


def test_printer_columns_point_at_status_fields():
    (version,) = load_crd()["spec"]["versions"]
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    assert list(columns) == ["Phase", "Start", "End", "Next", "Age"]
    schema = openapi_schema(load_crd())
    for name in ("Phase", "Start", "End", "Next"):
        field_path = columns[name]["jsonPath"].removeprefix(".")
        assert node_at(schema, field_path)["type"] == "string"
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


# -- objects against the schema ------------------------------------------------------------------------------


def test_the_9_9_example_validates_against_the_crd():
    example = load_example()
    pruning_validator(openapi_schema(load_crd())).validate(example)
    assert (example["apiVersion"], example["kind"]) == (f"{API_GROUP}/{API_VERSION}", KIND)
    assert example["metadata"] == {"name": "sale-9-9", "namespace": "shop"}


def test_the_9_9_example_is_the_contract_sale():
    spec = load_example()["spec"]
    assert spec["timezone"] == "Asia/Jakarta"
    # Every year on 9 September, 00:00 to 02:00 the next night: never a window already in the past.
    assert spec["schedule"] == {"cron": "0 0 9 9 *", "duration": "26h"}
    assert "start" not in spec and "end" not in spec
    assert (spec["leadTime"], spec["rampUp"], spec["rampDown"]) == (
        "30m",
        {"steps": 3},
        {"duration": "1h", "steps": 4},
    )
    assert spec["trafficMultiplier"] == 2.5
    by_name, by_selector = spec["targets"]
    assert by_name == {"name": "order-tracking"}
    assert by_selector["selector"] == {"matchLabels": {"campaign.tier": "checkout"}}
    assert by_selector["minReplicas"] <= by_selector["maxReplicas"]


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda case: case.id)
def test_invalid_specs_are_refused_naming_the_field(case):
    errors = list(pruning_validator(openapi_schema(load_crd())).iter_errors(campaign_event(case.spec)))
    assert errors, f"{case.id} was accepted"
    assert case.field in {error_field(error) for error in errors}
