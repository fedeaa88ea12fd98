"""The engine's API calls as plain JSON, with per-request retries and a leadership fence.

Plain JSON: the generated client (kubernetes 37) validates every call's arguments with pydantic and builds
typed models from every response — at 1,600 pods the largest share of the operator's CPU. These calls
need none of it, nor urllib3's per-request machinery: requests go over the kept-alive connections of
:mod:`.transport` (urllib3 only behind a proxy). The same configuration, TLS, client certificates, proxy and
bearer-token refresh apply; errors are the client's ApiException, so callers and fault-injection fakes see
what the typed client raises.

Retries: one 429, 5xx, reset connection or timeout among a gang's 2N calls must not roll the whole gang
back, so each request is retried with capped, jittered exponential back-off, honouring Retry-After, as
client-go does. Callers see only what is left after the retries.

Fence: every request first asks `guard` (the Lease elector) whether this replica may still write, and asks
it again right before the request's first byte goes out on the socket — after any wait for a pooled
connection or the GIL — so a replica frozen (SIGSTOP, a long GC pause) after deciding to write cannot send
that write once its leadership has lapsed.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ..api.aitrainingjob import PLURAL
from ..api.base import API_VERSION, GROUP, VERSION
from .transport import Reply, TransportError, transport_for

Body = dict[str, Any]
Guard = Callable[[], bool]
_AUTH_TTL_S = 1.0
"""How long auth headers are reused: refresh hooks (exec plugins, rotated in-cluster tokens) still run
every second, not on every call."""
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_VERBS = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "GET": "get", "PUT": "update"}


class NotLeader(RuntimeError):
    """This replica's leadership lapsed: the write was not sent, and nothing else may be written."""


def _nothing() -> None:
    return None


def _check_fence_of(guard: Guard | None) -> None:
    if guard is not None and not guard():
        raise NotLeader("leadership lapsed before the request was sent")


_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9._-]*")
"""What an object's name or namespace is (DNS-1123): nothing in it needs quoting."""


def _q(segment: str) -> str:
    return segment if _PLAIN_SEGMENT.fullmatch(segment) else quote(segment, safe="")


def _resource(path: str) -> str:
    """`pods`, `pods/binding`, `aitrainingjobs/status` ... from a namespaced path."""
    parts = path.split("/namespaces/", 1)[-1].split("/")[1:]
    return parts[0] + (f"/{parts[2]}" if len(parts) > 2 else "")


def _retry_after(reply: Reply) -> float | None:
    value = reply.headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from the API server; fall back to our own back-off


class KubeApi:
    """Create, bind, patch and delete what the engine owns; one instance per operator."""

    def __init__(
        self,
        api: client.ApiClient,
        timeout: float,
        observe: Callable[[str, str, int], None] | None = None,
        *,
        guard: Guard | None = None,
        user_agent: str | None = None,
        attempts: int = 6,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = api.configuration
        # Connections of our own (same TLS, proxy and credentials), checking the fence as the bytes go out.
        self._transport = transport_for(self._config)
        self._base_headers = {**api.default_headers, "Accept": "application/json"}
        if user_agent:
            self._base_headers["User-Agent"] = user_agent
        self._timeout = timeout
        self._observe = observe
        """Called with (verb, resource, HTTP code or 0) after every attempt: the API-request metric."""
        self.guard = guard
        self._attempts = attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._sleep = sleep
        self._auth_lock = threading.Lock()
        self._auth: tuple[float, dict[str, str]] = (float("-inf"), {})

    # -- transport ---------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        now = time.monotonic()
        with self._auth_lock:
            stamp, headers = self._auth
            if now - stamp >= _AUTH_TTL_S:
                headers = {
                    str(a["key"]): str(a["value"])
                    for a in self._config.auth_settings().values()
                    if a.get("in") == "header" and a.get("value")
                }
                self._auth = (now, headers)
            return headers

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential back-off, at least Retry-After when the server names one."""
        backoff = random.uniform(0, min(self._backoff_cap, self._backoff_base * 2**attempt))
        return max(backoff, min(retry_after, 10.0)) if retry_after is not None else backoff

    def request(
        self,
        method: str,
        path: str,
        body: Body | None = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Body | None:
        """One call, retried on 429/5xx/reset/timeout; the decoded response body (None if empty).

        Raises ApiException with the last status on a non-2xx answer (status 0 when no answer came back
        after every attempt), or NotLeader when the fence refuses the write.
        """
        target = path + ("?" + urlencode(query) if query else "")
        data = orjson.dumps(body) if body is not None else None
        verb, resource = _VERBS.get(method, method.lower()), _resource(path)
        fenced = method != "GET"
        before_send = self._fence_at_send if fenced else _nothing
        for attempt in range(self._attempts):
            if fenced:
                _check_fence_of(self.guard)
            headers = {**self._base_headers, **self._auth_headers()}
            if data is not None:
                headers["Content-Type"] = content_type
            code, retry_after = 0, None
            try:
                reply = self._transport.send(method, target, data, headers, timeout or self._timeout, before_send)
                code = reply.status
            except TransportError as exc:
                error: ApiException = ApiException(status=0, reason=str(exc))
            else:
                if 200 <= code < 300:
                    decoded: Body | None = orjson.loads(reply.data) if reply.data else None
                    return decoded
                error = ApiException(status=code, reason=reply.reason, body=reply.data.decode(errors="replace"))
                retry_after = _retry_after(reply)
            finally:
                if self._observe is not None:
                    self._observe(verb, resource, code)
            if code not in RETRYABLE_STATUS and code != 0:
                raise error
            if attempt + 1 < self._attempts:
                self._sleep(self._delay(attempt, retry_after))
        raise error

    def _fence_at_send(self) -> None:
        _check_fence_of(self.guard)

    # -- the calls the engine makes ----------------------------------------------------------------

    def create(self, ns: str, plural: str, body: Body) -> Body:
        """POST a core/v1 object (pods, services, configmaps, events); returns the stored object."""
        return self.request("POST", f"/api/v1/namespaces/{_q(ns)}/{plural}", body) or {}

    def bind(self, ns: str, pod: str, node: str) -> None:
        self.request(
            "POST",
            f"/api/v1/namespaces/{_q(ns)}/pods/{_q(pod)}/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            },
        )

    def read(self, ns: str, plural: str, name: str) -> Body:
        return self.request("GET", f"/api/v1/namespaces/{_q(ns)}/{plural}/{_q(name)}") or {}

    def merge_patch(self, ns: str, plural: str, name: str, patch: Body) -> Body:
        return (
            self.request(
                "PATCH",
                f"/api/v1/namespaces/{_q(ns)}/{plural}/{_q(name)}",
                patch,
                content_type="application/merge-patch+json",
            )
            or {}
        )

    def delete(self, ns: str, plural: str, name: str, grace_seconds: int | None = None,
               uid: str | None = None) -> None:
        """Delete a core/v1 object; `grace_seconds` None keeps the pod's own terminationGracePeriodSeconds,
        and `uid` makes the delete apply only to that incarnation of the name."""
        options: Body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        if uid:
            options["preconditions"] = {"uid": uid}
        self.request("DELETE", f"/api/v1/namespaces/{_q(ns)}/{plural}/{_q(name)}", options)

    def read_job(self, ns: str, name: str) -> Body:
        return self.request("GET", f"/apis/{GROUP}/{VERSION}/namespaces/{_q(ns)}/{PLURAL}/{_q(name)}") or {}

    def replace_job_status(self, ns: str, name: str, status: Body, resource_version: str | None = None) -> Body:
        """Replace the job's status subresource (PUT); returns the stored job (its new resourceVersion).

        The whole status is sent: a field left out is cleared, and None values must be left out (null is not a
        valid value of a typed field). The API server takes only `status` from the body on this subresource.
        With `resource_version`, it writes only over that version of the job (409 Conflict otherwise):
        optimistic concurrency. Why a PUT and not a merge patch: the patch makes the API server serialise the
        stored job, merge, and decode the result again — about 0.7 ms more of its CPU per write (measured:
        bench/status_write.py, docs/benchmarks.md issue 12's fifth round), on the write every gang makes.
        """
        metadata: Body = {"name": name, "namespace": ns}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return (
            self.request(
                "PUT",
                f"/apis/{GROUP}/{VERSION}/namespaces/{_q(ns)}/{PLURAL}/{_q(name)}/status",
                {"apiVersion": API_VERSION, "kind": "AITrainingJob", "metadata": metadata, "status": status},
            )
            or {}
        )

    def delete_job(self, ns: str, name: str, uid: str | None = None) -> None:
        """Delete with background propagation: the garbage collector removes the owned pods and Service."""
        options: Body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid:
            options["preconditions"] = {"uid": uid}
        self.request("DELETE", f"/apis/{GROUP}/{VERSION}/namespaces/{_q(ns)}/{PLURAL}/{_q(name)}", options)
