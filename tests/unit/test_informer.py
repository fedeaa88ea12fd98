"""The list+watch feed: resumes from the list's version, re-lists on 410 Gone, reports missed deletions."""

from __future__ import annotations

import json
from typing import Any

from suanli.controller.informer import Informer


class Response:
    def __init__(self, data: Any = None, lines: list[dict[str, Any]] | None = None) -> None:
        self.data = json.dumps(data).encode() if data is not None else b""
        self.lines = lines or []

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        for line in self.lines:
            yield (json.dumps(line) + "\n").encode()

    def release_conn(self) -> None: ...


def pod(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version, "labels": {"a": "b"}}}


def test_list_then_watch_then_relist_on_gone() -> None:
    calls: list[dict[str, Any]] = []
    lists = [
        {"metadata": {"resourceVersion": "10"}, "items": [pod("a", "5"), pod("b", "6")]},
        {"metadata": {"resourceVersion": "30"}, "items": [pod("b", "25")]},  # "a" went while we were away
    ]
    watches = [
        [{"type": "MODIFIED", "object": pod("b", "11")},
         {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}],
        [{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}],
    ]

    def list_fn(**kwargs: Any) -> Response:
        calls.append(kwargs)
        if kwargs.get("watch"):
            return Response(lines=watches.pop(0))
        return Response(data=lists.pop(0))

    seen: list[tuple[str | None, str]] = []
    feed = Informer("pods", list_fn, lambda kind, obj: seen.append((kind, obj["metadata"]["name"])))
    version = feed._list()
    assert version == "10" and seen == [("ADDED", "a"), ("ADDED", "b")]
    version = feed._watch(version)
    assert version == "15", "resumes after the bookmark"
    assert calls[-1]["resource_version"] == "10" and calls[-1]["allow_watch_bookmarks"] is True
    assert feed._watch(version) is None, "410 Gone asks for a re-list"
    seen.clear()
    assert feed._list() == "30"
    assert ("DELETED", "a") in seen and ("MODIFIED", "b") in seen
