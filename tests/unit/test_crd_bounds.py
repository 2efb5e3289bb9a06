"""The CRD bounds what a user may store: every string of the spec has a maximum length, every list a maximum
number of items, every count is an int32; and the planning validation refuses the same (the webhook, `plan`
and the pass use it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_autoscaler.planning import SpecError, parse_spec
from campaign_autoscaler.planning.spec import MAX_QUERY_LENGTH, MAX_REPLICAS, MAX_STEPS, MAX_TARGETS

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "campaignevents.autoscaling.campaigns.dev.yaml"
INT32_MAX = 2**31 - 1


def spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_PATH.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def walk(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")


FIELDS = list(walk(spec_schema(), "spec"))


@pytest.mark.parametrize(("path", "schema"), FIELDS, ids=[path for path, _ in FIELDS])
def test_every_spec_field_is_bounded(path: str, schema: dict[str, Any]):
    kind = schema["type"]
    if kind == "string":
        assert "maxLength" in schema or "enum" in schema, path
    elif kind == "array":
        assert "maxItems" in schema, path
    elif kind == "integer":
        assert schema.get("format") == "int32", path
        assert schema["minimum"] >= 0 and schema["maximum"] <= INT32_MAX, path
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        assert "maxProperties" in schema, path


def test_the_crd_and_the_planning_validation_agree():
    fields = dict(FIELDS)
    assert fields["spec.targets"]["maxItems"] == MAX_TARGETS == 50
    assert fields["spec.targets[].metric.query"]["maxLength"] == MAX_QUERY_LENGTH == 2000
    assert fields["spec.targets[].replicas"]["maximum"] == MAX_REPLICAS == INT32_MAX
    assert fields["spec.rampUp.steps"]["maximum"] == fields["spec.rampDown.steps"]["maximum"] == MAX_STEPS


WINDOW = {"start": "2026-09-09T00:00:00Z", "end": "2026-09-10T00:00:00Z"}


def test_planning_refuses_51_targets():
    targets = [{"name": f"web-{index}"} for index in range(MAX_TARGETS + 1)]
    with pytest.raises(SpecError, match="at most 50 targets, got 51") as raised:
        parse_spec({**WINDOW, "targets": targets})
    assert raised.value.field == "spec.targets"
    assert len(parse_spec({**WINDOW, "targets": targets[:MAX_TARGETS]}).targets) == MAX_TARGETS


def test_planning_refuses_an_oversized_query():
    query = "sum(" + "+".join(["up"] * 700) + ")"
    assert len(query) > MAX_QUERY_LENGTH
    target = {"name": "web", "metric": {"query": query, "targetPerReplica": 1}}
    with pytest.raises(SpecError, match="at most 2000 characters") as raised:
        parse_spec({**WINDOW, "targets": [target]})
    assert raised.value.field == "spec.targets[0].metric.query"


def test_planning_refuses_replicas_beyond_int32():
    with pytest.raises(SpecError) as raised:
        parse_spec({**WINDOW, "targets": [{"name": "web", "replicas": 2**31}]})
    assert raised.value.field == "spec.targets[0].replicas"
