"""The agent's only contact with the API server: read the Node and its record, write what changed.

Every call carries a request timeout so a stalled API server delays a cycle instead of hanging the
agent. Writes are minimal: labels are merge-patched key by key (only ours), the taint list is
replaced under the Node's resourceVersion so a concurrent taint by someone else is never lost, and
nothing is sent when nothing changed (each Node update wakes every watcher in the cluster).

RBAC the agent needs: nodes get/patch; acceleratornodes.suanli.io get/create/patch;
acceleratornodes/status patch; events create (namespace ``default``, where node events live).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from suanli.api import AcceleratorNodeStatus, SpecError, parse_node

from .labels import TAINT_KEY, desired_labels, label_patch, taint_update, wants_taint
from .report import NodeReport
from .status import (
    GROUP,
    PLURAL,
    VERSION,
    accelerator_node,
    probe_failed_status,
    report_status,
    status_patch,
    validated,
)
from .throughput import Measurement
from .transitions import Transition, health_transitions

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
BENCH_REQUEST = "suanli.io/bench-request"
"""Annotation on an AcceleratorNode: set it to a new value (a timestamp) to have the node re-benched."""
BENCH_REQUEST_DONE = "suanli.io/bench-request-done"
"""The agent's answer: the request value it last ran a bench for."""
EVENT_NAMESPACE = "default"
"""Where the kubelet records Node events; ``kubectl describe node`` shows ours next to its own."""
_CONFLICT_RETRIES = 5


class NodeNotFoundError(RuntimeError):
    """The Node the agent was told to describe does not exist (wrong --node-name / NODE_NAME)."""


@dataclass(frozen=True)
class Published:
    """What one cycle changed, for logs and tests."""

    labels: dict[str, str | None]
    """The label patch sent (empty when the labels were already right)."""
    taint: bool | None
    """True when the taint was added, False when removed, None when untouched."""
    events: tuple[Transition, ...]
    status: AcceleratorNodeStatus


def connect() -> client.ApiClient:
    """An API client: the pod's service account inside a cluster, else $KUBECONFIG / ~/.kube/config."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def _body(obj: dict[str, Any]) -> Any:
    """The client sends plain dicts as they are; its type hints only know its generated classes."""
    return obj


class Publisher:
    """Writes one node's labels, taint, AcceleratorNode and Events."""

    def __init__(self, api: client.ApiClient, node_name: str, request_timeout: float = 10.0) -> None:
        self.node_name = node_name
        self.timeout = request_timeout
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self._record: dict[str, Any] | None = None
        self._record_fresh = False

    # --- reads ---

    def _json(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        # Raw JSON, not the generated classes: the pure core works on dicts as the API sends them.
        resp = call(*args, **kwargs, _preload_content=False, _request_timeout=self.timeout)
        data: dict[str, Any] = json.loads(resp.data)
        return data

    def read_node(self) -> dict[str, Any]:
        try:
            return self._json(self.core.read_node, self.node_name)
        except ApiException as exc:
            if exc.status == 404:
                raise NodeNotFoundError(
                    f"node {self.node_name!r} not found: pass the node's name with --node-name or set "
                    "NODE_NAME from the downward API (fieldRef spec.nodeName)"
                ) from None
            raise

    def read_record(self) -> dict[str, Any] | None:
        try:
            return self._json(self.custom.get_cluster_custom_object, GROUP, VERSION, PLURAL, self.node_name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _read_record_once(self) -> dict[str, Any] | None:
        """The record, read at most once per cycle (bench_request reads it, publish reuses it)."""
        if not self._record_fresh:
            self._record, self._record_fresh = self.read_record(), True
        return self._record

    def last_status(self) -> AcceleratorNodeStatus | None:
        """The status the last agent published (None when there is none or it is invalid)."""
        return self.previous_status(self._read_record_once())

    def bench_request(self) -> str | None:
        """A bench request not answered yet: the ``suanli.io/bench-request`` value, else None."""
        meta = (self._read_record_once() or {}).get("metadata") or {}
        annotations = meta.get("annotations") or {}
        wanted = annotations.get(BENCH_REQUEST)
        return str(wanted) if wanted and wanted != annotations.get(BENCH_REQUEST_DONE) else None

    def ack_bench_request(self, token: str) -> None:
        """Record that the bench asked for with ``token`` ran, so it is not run again."""
        self.custom.patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, self.node_name, _body({"metadata": {"annotations": {BENCH_REQUEST_DONE: token}}}),
            _content_type=MERGE_PATCH, _request_timeout=self.timeout,
        )

    @staticmethod
    def previous_status(record: dict[str, Any] | None) -> AcceleratorNodeStatus | None:
        """The last published status, or None when absent or unreadable (then written afresh)."""
        if record is None:
            return None
        try:
            return parse_node(record).status
        except SpecError as exc:
            log.warning("existing AcceleratorNode %s is invalid, rewriting it: %s", record["metadata"]["name"], exc)
            return None

    # --- one cycle ---

    def publish(
        self,
        report: NodeReport | None,
        measurement: Measurement | None,
        bench_note: str,
        now: datetime,
        probe_error: str | None = None,
    ) -> Published:
        """Write the outcome of one probe: a report, or (report None) the probe's failure.

        After a failed probe, labels and taint are left as the last good probe set them: a failing
        probe says nothing about the cards.
        """
        record = self._read_record_once()
        self._record_fresh = False  # the next cycle reads afresh
        previous = self.previous_status(record)
        patch: dict[str, str | None] = {}
        taint: bool | None = None
        if report is None:
            node = self.read_node()
            status = probe_failed_status(probe_error or "probe failed", previous, now)
            events: list[Transition] = []
        else:
            node, patch, taint = self._patch_node(report, measurement)
            status = report_status(report, measurement, bench_note, previous, wants_taint(report), now)
            events = health_transitions(previous, report, tainted=taint is True, untainted=taint is False)
        uid = str(node["metadata"]["uid"])
        record = self._ensure_record(record, uid, report.versions if report else None)
        validated(self.node_name, record, status)
        self.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, self.node_name, _body(status_patch(status)),
            _content_type=MERGE_PATCH, _request_timeout=self.timeout,
        )
        for event in events:
            self._event(uid, event, now)
        return Published(labels=patch, taint=taint, events=tuple(events), status=status)

    def _patch_node(
        self, report: NodeReport, measurement: Measurement | None
    ) -> tuple[dict[str, Any], dict[str, str | None], bool | None]:
        """Merge our labels and taint into the Node; retried on conflict with a fresh read."""
        desired = desired_labels(report, measurement)
        for _ in range(_CONFLICT_RETRIES):
            node = self.read_node()
            meta, spec = node["metadata"], node.get("spec") or {}
            labels = label_patch(meta.get("labels") or {}, desired)
            taints = taint_update(spec.get("taints") or [], wants_taint(report))
            if not labels and taints is None:
                return node, labels, None
            body: dict[str, Any] = {"metadata": {"labels": labels}} if labels else {"metadata": {}}
            if taints is not None:
                # The taint list is replaced whole: only under the resourceVersion we read it at.
                body["metadata"]["resourceVersion"] = meta["resourceVersion"]
                body["spec"] = {"taints": taints}
            try:
                self.core.patch_node(
                    self.node_name, _body(body), _content_type=MERGE_PATCH, _request_timeout=self.timeout
                )
            except ApiException as exc:
                if exc.status == 409:
                    continue
                raise
            added = None if taints is None else any(t.get("key") == TAINT_KEY for t in taints)
            return node, labels, added
        raise RuntimeError(
            f"node {self.node_name}: {_CONFLICT_RETRIES} conflicting updates in a row; retrying next cycle"
        )

    def _ensure_record(
        self, record: dict[str, Any] | None, uid: str, versions: dict[str, str] | None
    ) -> dict[str, Any]:
        """Create the AcceleratorNode, or bring its owner reference and annotations up to date."""
        wanted = accelerator_node(self.node_name, uid, versions)
        if record is None:
            try:
                return self._json(self.custom.create_cluster_custom_object, GROUP, VERSION, PLURAL, _body(wanted))
            except ApiException as exc:
                if exc.status != 409:
                    raise
                record = self.read_record()
                if record is None:
                    raise RuntimeError(f"AcceleratorNode {self.node_name} vanished while being created") from exc
        meta = record.get("metadata") or {}
        patch: dict[str, Any] = {}
        # A Node deleted and re-registered under the same name has a new uid: re-point the owner.
        if meta.get("ownerReferences") != wanted["metadata"]["ownerReferences"]:
            patch["ownerReferences"] = wanted["metadata"]["ownerReferences"]
        want_annotations = wanted["metadata"].get("annotations") or {}
        if any((meta.get("annotations") or {}).get(k) != v for k, v in want_annotations.items()):
            patch["annotations"] = want_annotations
        if any((meta.get("labels") or {}).get(k) != v for k, v in wanted["metadata"]["labels"].items()):
            patch["labels"] = wanted["metadata"]["labels"]
        if patch:
            return self._json(
                self.custom.patch_cluster_custom_object, GROUP, VERSION, PLURAL, self.node_name,
                _body({"metadata": patch}), _content_type=MERGE_PATCH,
            )
        return record

    def _event(self, uid: str, transition: Transition, now: datetime) -> None:
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"name": f"{self.node_name}.{uuid.uuid4().hex[:16]}", "namespace": EVENT_NAMESPACE},
            "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": uid},
            "reason": transition.reason,
            "message": transition.message[:1024],
            "type": transition.type,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "suanli-agent", "host": self.node_name},
            "reportingComponent": "suanli.io/agent",
            "reportingInstance": self.node_name,
        }
        try:
            self.core.create_namespaced_event(EVENT_NAMESPACE, _body(body), _request_timeout=self.timeout)
        except ApiException as exc:
            # Events are best effort: the labels, taint and status already carry the transition.
            log.warning("could not record event %s on node %s: %s", transition.reason, self.node_name, exc.reason)
