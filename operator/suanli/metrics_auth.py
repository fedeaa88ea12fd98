"""/metrics for authorised scrapers only, judged by the API server as controller-runtime's filter does.

The metrics name every tenant's namespace, so a scrape must carry a bearer token; the API server says who
holds it (TokenReview) and whether they may `get` the non-resource URL /metrics (SubjectAccessReview). The
chart's metrics-reader ClusterRole grants exactly that. Answers are cached for a short while, so a
Prometheus scraping every few seconds costs the API server two requests a minute, not two a scrape.
Rendering reads only the registry: a scrape never waits on the scheduler.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kubernetes.client import (
    ApiClient,
    AuthenticationV1Api,
    AuthorizationV1Api,
    V1NonResourceAttributes,
    V1SubjectAccessReview,
    V1SubjectAccessReviewSpec,
    V1TokenReview,
    V1TokenReviewSpec,
)
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
REQUEST_TIMEOUT = 5.0
"""Seconds a TokenReview or SubjectAccessReview may take; a scrape times out long before a minute."""


@dataclass(frozen=True)
class Verdict:
    """The answer to one scrape: an HTTP status and, when refused, why."""

    status: int
    reason: str = ""


class ScrapeAuthorizer:
    """May the holder of this bearer token read /metrics? Asked of the API server, remembered for `ttl`."""

    def __init__(
        self,
        api: ApiClient,
        ttl: float = 60.0,
        capacity: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authn = AuthenticationV1Api(api)
        self.authz = AuthorizationV1Api(api)
        self.ttl = ttl
        """Seconds an answer is reused: a revoked reader keeps reading for at most this long."""
        self.capacity = capacity
        """Answers kept; bounded so that a flood of made-up tokens cannot grow memory."""
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, Verdict]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, authorization: str | None) -> Verdict:
        """The verdict for an `Authorization` header: 401 without a valid token, 403 when not allowed."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Verdict(401, "a bearer token is required (Authorization: Bearer <token>)")
        key = hashlib.sha256(token.strip().encode()).hexdigest()
        now = self.clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
        verdict = self._ask(token.strip())
        if verdict.status != 503:  # an API server outage is not remembered as a refusal
            with self._lock:
                self._cache[key] = (now + self.ttl, verdict)
                self._cache.move_to_end(key)
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        return verdict

    def _ask(self, token: str) -> Verdict:
        try:
            review = self.authn.create_token_review(
                V1TokenReview(spec=V1TokenReviewSpec(token=token)), _request_timeout=REQUEST_TIMEOUT
            )
            status = review.status
            if status is None or not status.authenticated or status.user is None:
                return Verdict(401, "the token is not valid")
            user = status.user
            access = self.authz.create_subject_access_review(
                V1SubjectAccessReview(
                    spec=V1SubjectAccessReviewSpec(
                        user=user.username,
                        groups=user.groups,
                        uid=user.uid,
                        extra=user.extra,
                        non_resource_attributes=V1NonResourceAttributes(path=METRICS_PATH, verb="get"),
                    )
                ),
                _request_timeout=REQUEST_TIMEOUT,
            )
        except (ApiException, OSError) as exc:
            log.warning("cannot check a /metrics scrape with the API server: %s", exc)
            return Verdict(503, "the API server could not be asked; try again")
        if access.status is not None and access.status.allowed:
            return Verdict(200)
        return Verdict(403, f"{user.username} may not get {METRICS_PATH}: bind it to the chart's metrics-reader role")


class MetricsServer:
    """A threaded HTTP(S) server for one registry, behind a `ScrapeAuthorizer`."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @classmethod
    def start(
        cls,
        registry: CollectorRegistry,
        authorizer: ScrapeAuthorizer,
        port: int,
        addr: str = "0.0.0.0",
        tls: tuple[str, str] | None = None,
    ) -> MetricsServer:
        server = _Server((addr, port), _handler(registry, authorizer))
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(*tls)
            # The handshake happens on the connection's own thread (first read), so a client that never
            # completes one cannot stall the accept loop.
            server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        return cls(server, thread)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that drops the connection or fails the TLS handshake is no server error.
        log.debug("metrics: connection from %s failed", client_address, exc_info=True)


def _handler(registry: CollectorRegistry, authorizer: ScrapeAuthorizer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != METRICS_PATH:
                self._reply(404, b"not found: only /metrics is served here\n", "text/plain")
                return
            verdict = authorizer.check(self.headers.get("Authorization"))
            if verdict.status != 200:
                self._reply(verdict.status, f"{verdict.reason}\n".encode(), "text/plain")
                return
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, encoder(registry), content_type)

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="suanli-metrics"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("metrics: " + format, *args)

    return Handler
