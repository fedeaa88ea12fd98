"""The /metrics gate without a cluster: token and access reviews faked, the HTTP server real.

The same gate against a real API server (real tokens, the chart's metrics-reader role) is in
tests/integration/test_security.py.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, Counter

from suanli.metrics_auth import MetricsServer, ScrapeAuthorizer, Verdict


class FakeReviews:
    """Stands in for the TokenReview and SubjectAccessReview APIs; counts the calls."""

    def __init__(self, users: dict[str, str], readers: set[str]) -> None:
        self.users, self.readers = users, readers
        self.token_reviews = self.access_reviews = 0
        self.down = False

    def create_token_review(self, body: Any, **_: Any) -> Any:
        self.token_reviews += 1
        if self.down:
            raise ApiException(status=500, reason="etcd is down")
        user = self.users.get(body.spec.token)
        return SimpleNamespace(status=SimpleNamespace(
            authenticated=user is not None,
            user=SimpleNamespace(username=user, groups=["g"], uid="u", extra=None) if user else None))

    def create_subject_access_review(self, body: Any, **_: Any) -> Any:
        self.access_reviews += 1
        attrs = body.spec.non_resource_attributes
        assert (attrs.path, attrs.verb) == ("/metrics", "get")
        return SimpleNamespace(status=SimpleNamespace(allowed=body.spec.user in self.readers))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reviews() -> FakeReviews:
    return FakeReviews({"prom-token": "system:serviceaccount:monitoring:prometheus",
                        "alice-token": "system:serviceaccount:team-a:alice"},
                       {"system:serviceaccount:monitoring:prometheus"})


def authorizer(reviews: FakeReviews, clock: Clock, capacity: int = 256) -> ScrapeAuthorizer:
    gate = ScrapeAuthorizer(ApiClient(), ttl=60, capacity=capacity, clock=clock)
    gate.authn = reviews  # type: ignore[assignment]
    gate.authz = reviews  # type: ignore[assignment]
    return gate


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwdw==", "Bearer ", "Bearer    "])
def test_no_bearer_token_is_401_without_asking(reviews: FakeReviews, header: str | None) -> None:
    verdict = authorizer(reviews, Clock()).check(header)
    assert verdict.status == 401 and "bearer token" in verdict.reason
    assert reviews.token_reviews == 0


def test_reader_allowed_stranger_refused_bad_token_unauthenticated(reviews: FakeReviews) -> None:
    gate = authorizer(reviews, Clock())
    assert gate.check("Bearer prom-token") == Verdict(200)
    refused = gate.check("Bearer alice-token")
    assert refused.status == 403 and "system:serviceaccount:team-a:alice" in refused.reason
    assert gate.check("bearer made-up").status == 401


def test_answers_are_cached_for_ttl_then_asked_again(reviews: FakeReviews) -> None:
    clock = Clock()
    gate = authorizer(reviews, clock)
    for _ in range(5):
        assert gate.check("Bearer prom-token").status == 200
    assert (reviews.token_reviews, reviews.access_reviews) == (1, 1)
    reviews.readers.clear()  # the binding is removed: refused once the cached answer expires
    clock.now = 61
    assert gate.check("Bearer prom-token").status == 403
    assert reviews.token_reviews == 2


def test_an_api_outage_is_503_and_not_remembered(reviews: FakeReviews) -> None:
    gate = authorizer(reviews, Clock())
    reviews.down = True
    assert gate.check("Bearer prom-token").status == 503
    reviews.down = False
    assert gate.check("Bearer prom-token").status == 200


def test_the_cache_is_bounded(reviews: FakeReviews) -> None:
    gate = authorizer(reviews, Clock(), capacity=3)
    for i in range(50):
        gate.check(f"Bearer junk-{i}")
    assert len(gate._cache) == 3


@pytest.fixture
def server(reviews: FakeReviews) -> Iterator[MetricsServer]:
    registry = CollectorRegistry()
    Counter("suanli_demo_total", "A demo counter.", ["namespace"], registry=registry).labels("team-a").inc()
    running = MetricsServer.start(registry, authorizer(reviews, Clock()), 0, "127.0.0.1")
    yield running
    running.stop()


def get(server: MetricsServer, path: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_http_serves_metrics_to_readers_only(server: MetricsServer) -> None:
    status, body = get(server, "/metrics", "prom-token")
    assert status == 200 and 'suanli_demo_total{namespace="team-a"} 1.0' in body
    for token, code in ((None, 401), ("alice-token", 403), ("made-up", 401)):
        status, body = get(server, "/metrics", token)
        assert status == code and "team-a" not in body.replace("team-a:alice", ""), (token, body)
    assert get(server, "/", "prom-token")[0] == 404


def test_https_when_given_a_certificate(reviews: FakeReviews, tmp_path: Path) -> None:
    """Bearer tokens need not cross the pod network in the clear: `tls=(cert, key)` serves HTTPS."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=suanli-metrics", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    running = MetricsServer.start(CollectorRegistry(), authorizer(reviews, Clock()), 0, "127.0.0.1",
                                  (str(cert), str(key)))
    try:
        stalled = socket.create_connection(("127.0.0.1", running.port))  # never starts its handshake
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        request = urllib.request.Request(f"https://127.0.0.1:{running.port}/metrics",
                                         headers={"Authorization": "Bearer prom-token"})
        with urllib.request.urlopen(request, timeout=5, context=context) as resp:
            assert resp.status == 200
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP is not answered
            urllib.request.urlopen(f"http://127.0.0.1:{running.port}/metrics", timeout=5)
        stalled.close()
    finally:
        running.stop()
