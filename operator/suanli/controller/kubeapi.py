"""The engine's API calls as plain JSON over the official client's connection pool.

The generated client (kubernetes 37) validates every call's arguments with pydantic, walks the body to
sanitise it and builds typed models from every response. For a gang that is a few milliseconds of CPU per
pod create, bind, status patch and event — at 1,600 pods the largest share of the operator's CPU, taken
from the API server it shares a control-plane node with. These calls need none of it: the engine already
holds plain dicts and reads nothing back but the status code. The same configuration, TLS, client
certificates, proxy and bearer-token refresh apply; errors are the client's ApiException, so callers and
fault-injection fakes see what the typed client would raise.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ..api.aitrainingjob import PLURAL
from ..api.base import GROUP, VERSION

Body = dict[str, Any]
_AUTH_TTL_S = 1.0
"""How long auth headers are reused: refresh hooks (exec plugins, rotated in-cluster tokens) still run
every second, not on every call."""


_VERBS = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "GET": "get"}


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _resource(path: str) -> str:
    """`pods`, `pods/binding`, `aitrainingjobs/status` ... from a namespaced path."""
    parts = path.split("/namespaces/", 1)[-1].split("/")[1:]
    return parts[0] + (f"/{parts[2]}" if len(parts) > 2 else "")


class KubeApi:
    """Create, bind, patch and delete what the engine owns; one instance per operator."""

    def __init__(
        self, api: client.ApiClient, timeout: float, observe: Callable[[str, str, int], None] | None = None
    ) -> None:
        self._config = api.configuration
        self._pool = api.rest_client.pool_manager
        self._host = str(self._config.host).rstrip("/")
        self._base_headers = {**api.default_headers, "Accept": "application/json"}
        self._timeout = timeout
        self._observe = observe
        """Called with (verb, resource, HTTP code or 0) after every request: the API-request metric."""
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
        """One call; the decoded response for GET, None otherwise. Raises ApiException on any non-2xx."""
        url = self._host + path + ("?" + urlencode(query) if query else "")
        headers = {**self._base_headers, **self._auth_headers()}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body, separators=(",", ":")).encode()
        code = 0
        try:
            resp = self._pool.request(
                method,
                url,
                body=data,
                headers=headers,
                timeout=urllib3.Timeout(total=timeout or self._timeout),
                preload_content=True,
            )
            code = resp.status
        finally:
            if self._observe is not None:
                self._observe(_VERBS.get(method, method.lower()), _resource(path), code)
        if not 200 <= resp.status < 300:
            raise ApiException(status=resp.status, reason=resp.reason, body=resp.data.decode(errors="replace"))
        if method == "GET":
            decoded: Body = json.loads(resp.data)
            return decoded
        return None

    # -- the calls the engine makes ----------------------------------------------------------------

    def create(self, ns: str, plural: str, body: Body) -> None:
        """POST a core/v1 object (pods, services, configmaps, events)."""
        self.request("POST", f"/api/v1/namespaces/{_q(ns)}/{plural}", body)

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
        found = self.request("GET", f"/api/v1/namespaces/{_q(ns)}/{plural}/{_q(name)}")
        assert found is not None
        return found

    def merge_patch(self, ns: str, plural: str, name: str, patch: Body) -> None:
        self.request(
            "PATCH",
            f"/api/v1/namespaces/{_q(ns)}/{plural}/{_q(name)}",
            patch,
            content_type="application/merge-patch+json",
        )

    def delete_pod(self, ns: str, name: str) -> None:
        """Delete now (grace 0): a gang being rolled back or restarted must free its cards at once."""
        self.request(
            "DELETE",
            f"/api/v1/namespaces/{_q(ns)}/pods/{_q(name)}",
            {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0},
        )

    def patch_job_status(self, ns: str, name: str, status: Body) -> None:
        """A merge patch of the status subresource: None fields are sent as null and so cleared."""
        self.request(
            "PATCH",
            f"/apis/{GROUP}/{VERSION}/namespaces/{_q(ns)}/{PLURAL}/{_q(name)}/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )

    def delete_job(self, ns: str, name: str) -> None:
        """Delete with background propagation: the garbage collector removes the owned pods and Service."""
        self.request(
            "DELETE",
            f"/apis/{GROUP}/{VERSION}/namespaces/{_q(ns)}/{PLURAL}/{_q(name)}",
            {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"},
        )
