"""The engine's plain-JSON calls: right method, path, content type and auth; errors as the client's ApiException."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suanli.controller.kubeapi import KubeApi


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []
    replies: dict[str, tuple[int, dict[str, Any]]] = {}
    observed: list[tuple[str, str, int]] = []

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append({"method": self.command, "path": self.path, "body": body,
                          "content_type": self.headers.get("Content-Type"),
                          "auth": self.headers.get("Authorization")})
        status, reply = self.replies.get(f"{self.command} {self.path}", (201, {"kind": "Status"}))
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _handle

    def log_message(self, *args: Any) -> None: ...


@pytest.fixture
def api() -> Iterator[tuple[KubeApi, type[Recorder]]]:
    Recorder.seen, Recorder.replies, Recorder.observed = [], {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cfg = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    cfg.api_key = {"authorization": "tok"}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    yield KubeApi(client.ApiClient(cfg), timeout=5, observe=lambda *call: Recorder.observed.append(call)), Recorder
    server.shutdown()


def test_calls_go_where_the_typed_client_would_send_them(api: tuple[KubeApi, type[Recorder]]) -> None:
    kube, seen = api
    kube.create("team-a", "pods", {"metadata": {"name": "p"}})
    kube.bind("team-a", "p", "node-1")
    kube.patch_job_status("team-a", "job", {"phase": "Running", "message": None})
    kube.delete_pod("team-a", "p")
    kube.delete_job("team-a", "job")
    kube.merge_patch("team-a", "configmaps", "rt", {"data": {"a": "b"}})
    calls = [(c["method"], c["path"]) for c in seen.seen]
    assert calls == [
        ("POST", "/api/v1/namespaces/team-a/pods"),
        ("POST", "/api/v1/namespaces/team-a/pods/p/binding"),
        ("PATCH", "/apis/suanli.io/v1alpha1/namespaces/team-a/aitrainingjobs/job/status"),
        ("DELETE", "/api/v1/namespaces/team-a/pods/p"),
        ("DELETE", "/apis/suanli.io/v1alpha1/namespaces/team-a/aitrainingjobs/job"),
        ("PATCH", "/api/v1/namespaces/team-a/configmaps/rt"),
    ]
    assert all(c["auth"] == "Bearer tok" for c in seen.seen), "the kubeconfig's bearer token is sent"
    binding = seen.seen[1]["body"]
    assert binding["kind"] == "Binding" and binding["target"] == {"apiVersion": "v1", "kind": "Node", "name": "node-1"}
    status = seen.seen[2]
    assert status["content_type"] == "application/merge-patch+json"
    assert status["body"] == {"status": {"phase": "Running", "message": None}}, "None clears the field"
    assert seen.seen[3]["body"]["gracePeriodSeconds"] == 0
    assert seen.seen[4]["body"]["propagationPolicy"] == "Background"
    assert [o[:2] for o in seen.observed] == [("create", "pods"), ("create", "pods/binding"),
                                             ("patch", "aitrainingjobs/status"), ("delete", "pods"),
                                             ("delete", "aitrainingjobs"), ("patch", "configmaps")]


def test_errors_are_api_exceptions_with_the_status_and_reads_decode(api: tuple[KubeApi, type[Recorder]]) -> None:
    kube, seen = api
    seen.replies["POST /api/v1/namespaces/ns/pods"] = (409, {"reason": "AlreadyExists"})
    seen.replies["GET /api/v1/namespaces/ns/pods/p"] = (200, {"spec": {"nodeName": "n1"}})
    with pytest.raises(ApiException) as err:
        kube.create("ns", "pods", {"metadata": {"name": "p"}})
    assert err.value.status == 409 and "AlreadyExists" in str(err.value.body)
    assert kube.read("ns", "pods", "p") == {"spec": {"nodeName": "n1"}}
    assert seen.observed == [("create", "pods", 409), ("get", "pods", 200)], "failures are counted with their code"
