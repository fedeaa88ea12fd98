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

from suanli.controller.kubeapi import KubeApi, NotLeader


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []
    replies: dict[str, Any] = {}
    observed: list[tuple[str, str, int]] = []
    slept: list[float] = []

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append({"method": self.command, "path": self.path, "body": body,
                          "content_type": self.headers.get("Content-Type"),
                          "auth": self.headers.get("Authorization")})
        self.seen[-1]["user_agent"] = self.headers.get("User-Agent")
        scripted = self.replies.get(f"{self.command} {self.path}", (201, {"kind": "Status"}))
        if isinstance(scripted, list):  # one reply per attempt, the last one repeated
            scripted = scripted.pop(0) if len(scripted) > 1 else scripted[0]
        if scripted == "reset":
            self.connection.shutdown(2)  # the connection drops before any answer
            self.close_connection = True
            return
        status, reply, *extra = scripted
        data = json.dumps(reply).encode()
        self.send_response(status)
        for header, value in (extra[0] if extra else {}).items():
            self.send_header(header, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

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
    Recorder.slept = []
    kube = KubeApi(client.ApiClient(cfg), timeout=5, observe=lambda *call: Recorder.observed.append(call),
                   user_agent="suanli/replica-0", sleep=Recorder.slept.append)
    yield kube, Recorder
    server.shutdown()


def test_a_server_behind_a_path_gets_every_request_under_it(api: tuple[KubeApi, type[Recorder]]) -> None:
    """A kubeconfig may reach the API server through a proxy path (Rancher's /k8s/clusters/<id>)."""
    kube, seen = api
    cfg = client.Configuration(host=str(kube._config.host) + "/k8s/clusters/c-1")
    behind = KubeApi(client.ApiClient(cfg), timeout=5)
    behind.bind("ns", "p", "n1")
    assert seen.seen[-1]["path"] == "/k8s/clusters/c-1/api/v1/namespaces/ns/pods/p/binding"


def test_calls_go_where_the_typed_client_would_send_them(api: tuple[KubeApi, type[Recorder]]) -> None:
    kube, seen = api
    kube.create("team-a", "pods", {"metadata": {"name": "p"}})
    kube.bind("team-a", "p", "node-1")
    kube.replace_job_status("team-a", "job", {"phase": "Running"})
    kube.delete("team-a", "pods", "p", grace_seconds=0, uid="u1")
    kube.delete_job("team-a", "job")
    kube.merge_patch("team-a", "configmaps", "rt", {"data": {"a": "b"}})
    calls = [(c["method"], c["path"]) for c in seen.seen]
    assert calls == [
        ("POST", "/api/v1/namespaces/team-a/pods"),
        ("POST", "/api/v1/namespaces/team-a/pods/p/binding"),
        ("PUT", "/apis/suanli.io/v1alpha1/namespaces/team-a/aitrainingjobs/job/status"),
        ("DELETE", "/api/v1/namespaces/team-a/pods/p"),
        ("DELETE", "/apis/suanli.io/v1alpha1/namespaces/team-a/aitrainingjobs/job"),
        ("PATCH", "/api/v1/namespaces/team-a/configmaps/rt"),
    ]
    assert all(c["auth"] == "Bearer tok" for c in seen.seen), "the kubeconfig's bearer token is sent"
    binding = seen.seen[1]["body"]
    assert binding["kind"] == "Binding" and binding["target"] == {"apiVersion": "v1", "kind": "Node", "name": "node-1"}
    status = seen.seen[2]
    assert status["content_type"] == "application/json"
    assert status["body"] == {"apiVersion": "suanli.io/v1alpha1", "kind": "AITrainingJob",
                              "metadata": {"name": "job", "namespace": "team-a"},
                              "status": {"phase": "Running"}}, "the whole status, unconditionally without a version"
    assert seen.seen[3]["body"]["gracePeriodSeconds"] == 0
    assert seen.seen[3]["body"]["preconditions"] == {"uid": "u1"}, "only that incarnation of the name"
    assert seen.seen[4]["body"]["propagationPolicy"] == "Background"
    assert [o[:2] for o in seen.observed] == [("create", "pods"), ("create", "pods/binding"),
                                             ("update", "aitrainingjobs/status"), ("delete", "pods"),
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


def test_429_500_and_resets_are_retried_with_back_off_honouring_retry_after(
    api: tuple[KubeApi, type[Recorder]],
) -> None:
    kube, seen = api
    path = "POST /api/v1/namespaces/ns/pods/p/binding"
    seen.replies[path] = [(429, {}, {"Retry-After": "1"}), (500, {}), "reset", (503, {}), (201, {})]
    kube.bind("ns", "p", "n1")
    assert [o[2] for o in seen.observed] == [429, 500, 0, 503, 201]
    assert len(seen.slept) == 4 and seen.slept[0] >= 1.0, "Retry-After is honoured"
    assert all(0 <= s <= 2.0 for s in seen.slept[1:]), "jittered back-off, capped"


def test_retries_stop_after_the_last_attempt_and_client_errors_are_not_retried(
    api: tuple[KubeApi, type[Recorder]],
) -> None:
    kube, seen = api
    seen.replies["POST /api/v1/namespaces/ns/pods"] = [(503, {"message": "unavailable"})]
    with pytest.raises(ApiException) as err:
        kube.create("ns", "pods", {"metadata": {"name": "p"}})
    assert err.value.status == 503 and len(seen.seen) == 6
    seen.seen.clear()
    seen.replies["POST /api/v1/namespaces/ns/services"] = (422, {"message": "invalid"})
    with pytest.raises(ApiException) as err:
        kube.create("ns", "services", {"metadata": {"name": "s"}})
    assert err.value.status == 422 and len(seen.seen) == 1, "a refusal is final"


def test_the_fence_refuses_writes_once_leadership_lapses(api: tuple[KubeApi, type[Recorder]]) -> None:
    kube, seen = api
    leading = [True]
    kube.guard = lambda: leading[0]
    kube.create("ns", "pods", {"metadata": {"name": "p"}})
    leading[0] = False
    with pytest.raises(NotLeader):
        kube.create("ns", "pods", {"metadata": {"name": "q"}})
    assert kube.read("ns", "pods", "p") is not None, "reads need no leadership"
    assert [c["method"] for c in seen.seen] == ["POST", "GET"], "the refused write never reached the server"


def test_the_fence_is_checked_again_when_the_bytes_go_out(api: tuple[KubeApi, type[Recorder]]) -> None:
    """A replica that passed the first check and then froze (SIGSTOP) must not send once it has lapsed."""
    kube, seen = api
    answers = iter([True, False])  # allowed when deciding, lapsed by the time the request is sent
    kube.guard = lambda: next(answers, False)
    with pytest.raises(NotLeader):
        kube.create("ns", "pods", {"metadata": {"name": "p"}})
    assert seen.seen == []


def test_requests_say_which_replica_sent_them(api: tuple[KubeApi, type[Recorder]]) -> None:
    kube, seen = api
    kube.replace_job_status("ns", "j", {"phase": "Running"}, resource_version="42")
    assert seen.seen[0]["user_agent"] == "suanli/replica-0"
    assert seen.seen[0]["body"]["metadata"] == {"name": "j", "namespace": "ns", "resourceVersion": "42"}, \
        "optimistic concurrency"


def test_a_name_that_is_not_a_plain_segment_is_quoted(api: tuple[KubeApi, type[Recorder]]) -> None:
    """Names from the API are DNS labels and go as they are; anything else cannot escape its path segment."""
    kube, seen = api
    kube.read("team-a", "pods", "p-1.x")
    kube.read("team a", "pods", "../x?y=1#z")
    assert [s["path"] for s in seen.seen] == ["/api/v1/namespaces/team-a/pods/p-1.x",
                                              "/api/v1/namespaces/team%20a/pods/..%2Fx%3Fy%3D1%23z"]
