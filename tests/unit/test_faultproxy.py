"""The fault proxy of the integration tests, against a local TLS stub of the API server.

The fault tests trust the proxy to inject exactly what it says and to leave watches alone; a proxy that
silently forwarded everything would make them pass for the wrong reason, so each fault kind is checked
here: what the client gets, whether the server saw the request, and what the counters say.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.faultproxy import FaultProxy, Faults, Record


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str]] = []

    def log_message(self, *_: object) -> None:
        pass

    def _json(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path))
        if "watch=true" in self.path:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                line = json.dumps({"type": "ADDED", "n": i}).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
                time.sleep(0.3)
            self.wfile.write(b"0\r\n\r\n")
            return
        self._json(200, {"kind": "PodList", "items": []})

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.seen.append(("POST", self.path))
        self._json(201, body)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("pki")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=stub",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def stub(tls: tuple[Path, Path]) -> Iterator[str]:
    _Stub.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*tls)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(stub: str, tls: tuple[Path, Path]) -> Iterator[FaultProxy]:
    with FaultProxy(stub, tls[0]) as p:
        yield p


def _conn(proxy: FaultProxy) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)


def _post(conn: http.client.HTTPConnection, body: object) -> http.client.HTTPResponse:
    conn.request("POST", "/api/v1/namespaces/n/pods", json.dumps(body),
                 {"Content-Type": "application/json", "User-Agent": "suanli/test-0"})
    return conn.getresponse()


def test_forwards_requests_on_one_kept_alive_connection(proxy: FaultProxy) -> None:
    conn = _conn(proxy)
    for i in range(3):
        resp = _post(conn, {"i": i})
        assert resp.status == 201 and json.loads(resp.read()) == {"i": i}
    conn.request("GET", "/api/v1/namespaces/n/pods")
    assert json.loads(conn.getresponse().read())["kind"] == "PodList"
    assert [m for m, _ in _Stub.seen] == ["POST"] * 3 + ["GET"]
    stats = proxy.stats()
    assert stats["requests"] == 4 and stats["injected_total"] == 0
    assert stats["forwarded"] == {"POST pods": 3, "GET pods": 1}
    assert {r.user_agent for r in proxy.records() if r.method == "POST"} == {"suanli/test-0"}


@pytest.mark.parametrize("code", [429, 500, 503])
def test_answers_status_faults_without_reaching_the_server(proxy: FaultProxy, code: int) -> None:
    proxy.configure(fraction=1.0, kinds=(str(code),), retry_after=2)
    conn = _conn(proxy)
    resp = _post(conn, {"x": 1})
    body = json.loads(resp.read())
    assert resp.status == code and body["kind"] == "Status" and body["code"] == code
    assert (resp.getheader("Retry-After") == "2") is (code in (429, 503))
    assert _Stub.seen == []
    # Reads pass (mutating verbs only), on the same connection the fault was answered on.
    conn.request("GET", "/api/v1/namespaces/n/pods")
    assert conn.getresponse().status == 200
    assert proxy.stats()["injected"] == {str(code): 1}


def test_reset_drops_the_connection_before_forwarding(proxy: FaultProxy) -> None:
    proxy.configure(fraction=1.0, kinds=("reset",))
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        _post(_conn(proxy), {"x": 1})
    assert _Stub.seen == []
    assert [r.fault for r in proxy.records()] == ["reset"]


def test_reset_after_lets_the_request_take_effect_and_loses_the_answer(proxy: FaultProxy) -> None:
    proxy.configure(fraction=1.0, kinds=("reset-after",))
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        _post(_conn(proxy), {"x": 1})
    assert _Stub.seen == [("POST", "/api/v1/namespaces/n/pods")]


def test_stall_holds_the_request_then_resets(proxy: FaultProxy) -> None:
    proxy.configure(fraction=1.0, kinds=("stall",), stall_seconds=0.5)
    t0 = time.monotonic()
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        _post(_conn(proxy), {"x": 1})
    assert time.monotonic() - t0 >= 0.45 and _Stub.seen == []


def test_fraction_and_path_filter_choose_which_requests_fail(proxy: FaultProxy) -> None:
    proxy.configure(fraction=0.5, kinds=("500",), seed=7, paths=r"/pods$")
    conn = _conn(proxy)
    failed = 0
    for i in range(200):
        resp = _post(conn, {"i": i})
        resp.read()
        failed += resp.status == 500
    assert 60 < failed < 140, failed
    conn.request("POST", "/api/v1/namespaces/n/services", "{}", {"Content-Type": "application/json"})
    assert conn.getresponse().status == 201, "paths outside the filter are never faulted"
    assert proxy.stats()["injected"] == {"500": failed}


def test_latency_is_added_to_eligible_requests_only(proxy: FaultProxy) -> None:
    proxy.configure(latency=(0.3, 0.3))
    conn = _conn(proxy)
    t0 = time.monotonic()
    conn.request("GET", "/api/v1/namespaces/n/pods")
    conn.getresponse().read()
    t1 = time.monotonic()
    _post(conn, {"x": 1}).read()
    t2 = time.monotonic()
    assert t1 - t0 < 0.25 <= t2 - t1


def test_watches_stream_through_untouched(proxy: FaultProxy) -> None:
    proxy.configure(fraction=1.0, kinds=("500",), methods=frozenset({"GET", "POST"}))
    conn = _conn(proxy)
    t0 = time.monotonic()
    conn.request("GET", "/api/v1/namespaces/n/pods?watch=true&resourceVersion=1")
    resp = conn.getresponse()
    assert resp.status == 200
    first = resp.readline()
    assert json.loads(first)["n"] == 0
    assert time.monotonic() - t0 < 0.5, "the first event arrives before the stream ends (it streams)"
    rest = resp.read().splitlines()
    assert [json.loads(line)["n"] for line in rest] == [1, 2]
    records = proxy.records()
    assert records == [Record(records[0].at, "GET", "/api/v1/namespaces/n/pods", True, "", 200, records[0].user_agent)]
    proxy.configure(watch_reset=1.0)
    conn = _conn(proxy)
    conn.request("GET", "/api/v1/namespaces/n/pods?watch=1")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        conn.getresponse()


def test_records_name_the_resource() -> None:
    def resource(path: str) -> str:
        return Record(0, "POST", path, False, "", 0).resource

    assert resource("/api/v1/namespaces/a/pods/x/binding") == "pods/binding"
    assert resource("/api/v1/namespaces/a/pods") == "pods"
    assert resource("/apis/suanli.io/v1alpha1/namespaces/a/aitrainingjobs/j/status") == "aitrainingjobs/status"
    assert resource("/apis/coordination.k8s.io/v1/namespaces/default/leases/x") == "leases"
    assert resource("/api/v1/nodes") == "nodes"
    assert resource("/api/v1/namespaces/a") == "namespaces"


def test_rejects_unknown_faults() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Faults(kinds=("418",))
    with pytest.raises(ValueError, match="probabilit"):
        Faults(fraction=2)
