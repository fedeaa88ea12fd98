"""A plain list+watch feed of raw API objects, for the high-volume kinds (pods, nodes).

Every pod event in the cluster reaches the inventory, and kopf's per-event machinery (cause detection,
diff-base deep copies, handler bookkeeping) cost the operator a large share of its CPU for work that is a
dictionary update. This is the "equivalent" of a kopf index: list once, then watch from the list's
resourceVersion with bookmarks, re-list on 410 Gone, and report objects deleted while disconnected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger("suanli.informer")

Handler = Callable[[str | None, dict[str, Any]], None]


def _stub(obj: dict[str, Any]) -> dict[str, Any]:
    """What a DELETED event for an object needs: its identity and labels, not the whole object."""
    meta = obj.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "labels") if k in meta}}


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name")))


class Informer:
    """Feeds `handler(event_type, object)` from `list_fn` (a cluster-wide list call of the typed client)."""

    def __init__(self, kind: str, list_fn: Callable[..., Any], handler: Handler,
                 watch_timeout_seconds: int = 300, observe_lag: Callable[[float], None] | None = None) -> None:
        self.kind = kind
        self.observe_lag = observe_lag
        """Called with the seconds from each watch event's arrival to its handler returning."""
        self.list_fn = list_fn
        self.handler = handler
        self.watch_timeout = watch_timeout_seconds
        self.synced = threading.Event()
        """Set once the first list has been fed: plans made before it would see half a cluster."""
        self._stop = threading.Event()
        self._known: dict[tuple[str, str], dict[str, Any]] = {}
        self._thread = threading.Thread(target=self._run, name=f"suanli-watch-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version: str | None = self._list()
                self.synced.set()
                while not self._stop.is_set() and version is not None:
                    version = self._watch(version)
            except Exception as exc:
                log.warning("%s feed failed, re-listing in 1 s: %s", self.kind, exc)
                time.sleep(1)

    def _list(self) -> str:
        resp = self.list_fn(_preload_content=False, _request_timeout=120)
        body = orjson.loads(resp.data)
        items = {_key(item): item for item in body["items"]}
        for key, old in list(self._known.items()):
            if key not in items:  # deleted while we were not watching
                self.handler("DELETED", old)
                del self._known[key]
        for key, item in items.items():
            self.handler("ADDED" if key not in self._known else "MODIFIED", item)
            self._known[key] = _stub(item)
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str | None:
        """Watch from `version`; return where to resume, or None to re-list (410 Gone)."""
        try:
            resp = self.list_fn(
                watch=True, resource_version=version, allow_watch_bookmarks=True,
                timeout_seconds=self.watch_timeout, _preload_content=False,
                _request_timeout=self.watch_timeout + 30,
            )
        except ApiException as exc:
            if exc.status == 410:
                return None
            raise
        try:
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    return version
                arrived = time.monotonic()
                event = orjson.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    self._known.pop(_key(obj), None)
                else:
                    self._known[_key(obj)] = _stub(obj)
                self.handler(kind, obj)
                if self.observe_lag is not None:
                    self.observe_lag(time.monotonic() - arrived)
        finally:
            resp.release_conn()
        return version
