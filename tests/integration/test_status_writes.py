"""The job status write against a real API server: a PUT of the status subresource over a resourceVersion.

What the engine relies on: the whole status replaces the old one (a field left out is cleared), the spec is
untouched whatever the body says, a write over a stale version is refused and turned into Conflict (the job
re-read into the cache), and a job deleted meanwhile answers None rather than an error.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from suanli.api.aitrainingjob import AITrainingJob, AITrainingJobStatus, JobPhase, parse_job
from suanli.controller.cache import ClusterCache
from suanli.controller.kubeapi import KubeApi
from suanli.controller.status import Conflict, EventRecorder, StatusWriter

from .operator_harness import job_manifest


def _read(custom: client.CustomObjectsApi, ns: str) -> dict[str, Any]:
    return dict(custom.get_namespaced_custom_object("suanli.io", "v1alpha1", ns, "aitrainingjobs", "w"))


def test_a_status_is_written_whole_over_its_version(
    api_client: client.ApiClient, crds_applied: list[str], namespace: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    kube = KubeApi(api_client, timeout=30)
    cache = ClusterCache()
    writer = StatusWriter(kube, cache, EventRecorder(kube))  # the recorder is not started: events stay queued
    created = custom.create_namespaced_custom_object(
        "suanli.io", "v1alpha1", namespace, "aitrainingjobs", job_manifest("w", ["nvidia"], simulate=None))
    job = parse_job(created)

    pending = AITrainingJobStatus(phase=JobPhase.PENDING, reason="Unschedulable", message="no room for 2 x 8 H100")
    stored = writer.write(job, pending)
    assert isinstance(stored, AITrainingJob)
    assert stored.metadata["resourceVersion"] != created["metadata"]["resourceVersion"]
    on_server = _read(custom, namespace)
    assert on_server["status"]["phase"] == "Pending" and on_server["status"]["message"] == "no room for 2 x 8 H100"
    assert on_server["spec"] == created["spec"], "only the status is written"

    # From the stored version: the reason and message left out are cleared, not kept as a merge would.
    running = AITrainingJobStatus(phase=JobPhase.RUNNING, ready_replicas=2)
    assert writer.write(stored, running) is not None
    status = _read(custom, namespace)["status"]
    assert status["phase"] == "Running" and status["readyReplicas"] == 2
    assert "message" not in status and "reason" not in status

    # Over the first version, which is stale now: refused, nothing written, and the cache holds the fresh job.
    with pytest.raises(Conflict):
        writer.write(job, AITrainingJobStatus(phase=JobPhase.FAILED, reason="Stale"))
    assert _read(custom, namespace)["status"]["phase"] == "Running"
    fresh = cache.job((namespace, "w"))
    assert fresh is not None and fresh["status"]["phase"] == "Running"
    assert fresh["metadata"]["resourceVersion"] == _read(custom, namespace)["metadata"]["resourceVersion"]

    custom.delete_namespaced_custom_object("suanli.io", "v1alpha1", namespace, "aitrainingjobs", "w")
    assert writer.write(stored, pending) is None, "a job deleted meanwhile is not an error"
