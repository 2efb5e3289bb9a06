"""What KubeAdapter makes of an answer: decoded where it is used, read and let go where it is not."""

from __future__ import annotations

import json
from typing import Any

from campaign_autoscaler.adapters.kube import KubeAdapter

DEPLOYMENT = {"kind": "Deployment", "metadata": {"name": "checkout"}, "spec": {"replicas": 4}}


class Answer:
    def __init__(self, data: bytes) -> None:
        self.status = 200
        self.data = data
        self.reads = 0

    def read(self) -> bytes:
        self.reads += 1
        return self.data


class Client:
    """The two calls of kubernetes.client.ApiClient that KubeAdapter makes; every answer is `data`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.answers: list[Answer] = []

    def param_serialize(self, **request: Any) -> tuple[Any, ...]:
        return request["method"], request["resource_path"], request["header_params"], request["body"], None

    def call_api(self, method: str, url: str, headers: Any, body: Any, post: Any, **_: Any) -> Answer:
        self.answers.append(Answer(self.data))
        return self.answers[-1]


def test_a_write_reads_the_answer_without_decoding_it() -> None:
    api = Client(b"{not json: the object as patched is never needed")
    kube = KubeAdapter(api)  # type: ignore[arg-type]
    kube._patch("/apis/apps/v1/namespaces/shop/deployments/checkout", [], "application/json-patch+json")
    kube.replace_event_status("shop", "sale", "u1", {"phase": "Active"})
    assert [answer.reads for answer in api.answers] == [1, 1]  # read: the connection goes back to the pool


def test_a_read_decodes_the_answer() -> None:
    kube = KubeAdapter(Client(json.dumps(DEPLOYMENT).encode()))  # type: ignore[arg-type]
    assert kube.get_event("shop", "sale") == DEPLOYMENT
