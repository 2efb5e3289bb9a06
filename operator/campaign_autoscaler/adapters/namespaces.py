"""Namespaces the operator may act in (`--namespace-selector`): wake the CampaignEvents of one that just
became selected, so that Kopf evaluates its filters again and starts handling them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from kubernetes import client

from campaign_autoscaler import API_GROUP, API_VERSION, PLURAL

SELECTED_ANNOTATION = f"{API_GROUP}/namespace-selected-at"


def touch_campaign_events(api_client: client.ApiClient, namespace: str, now: datetime) -> int:
    """Annotate every CampaignEvent of `namespace` with the moment its namespace was selected (a metadata-only
    change: the spec and its generation stay); returns how many there were."""
    custom = client.CustomObjectsApi(api_client)
    events = custom.list_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL)["items"]
    patch = {"metadata": {"annotations": {SELECTED_ANNOTATION: now.isoformat()}}}
    for event in events:
        custom.patch_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, event["metadata"]["name"], patch
        )
    return len(events)


def selected_namespaces(api_client: client.ApiClient, selector: Mapping[str, str]) -> set[str]:
    """The names of the namespaces whose labels match `selector` now."""
    label_selector = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
    listed = client.CoreV1Api(api_client).list_namespace(label_selector=label_selector)
    return {item.metadata.name for item in listed.items}
