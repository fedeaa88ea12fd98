"""The end-to-end benchmark's own logic, without a cluster: what it counts as a whole group, how it reads
the operator's histograms, the kube-scheduler configuration it writes, and the trivial binder's choices."""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import e2e  # noqa: E402
import trivial_binder  # noqa: E402


def pod(name: str, group: str, node: str | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"group": group}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}}


def test_a_group_is_whole_only_when_all_its_replicas_are_bound_at_once() -> None:
    groups = e2e.Groups("group", replicas=2)
    groups.seen("ADDED", pod("a-0", "a"), 1.0)  # created, not bound
    groups.seen("MODIFIED", pod("a-0", "a", "n1"), 2.0)
    assert groups.whole == {}
    groups.seen("DELETED", pod("a-0", "a"), 3.0)  # a gang restart replaces it
    groups.seen("MODIFIED", pod("a-1", "a", "n1"), 4.0)
    assert groups.whole == {}, "one live pod of two"
    groups.seen("MODIFIED", pod("a-2", "a", "n2"), 5.0)
    assert groups.whole == {"a": 5.0}
    groups.seen("MODIFIED", pod("b-0", "b", "n3"), 6.0)
    groups.seen("MODIFIED", pod("b-1", "b", "n3", deleting=True), 7.0)  # terminating pods do not count
    summary = e2e.summarize({"a": 0.5, "b": 5.5}, groups, groups=2, t0=0.0)
    assert summary["groups_whole"] == 1 and summary["partial_gangs"] == 1
    assert summary["pods_bound"] == 4 and summary["extra_pods_bound"] == 0
    assert summary["p50_job_bound_s"] == 4.5 and summary["pods_per_s"] == round(2 / 5.0, 1)
    assert summary["gangs_on_one_node"] == 0


def test_pods_bound_beyond_one_per_replica_are_reported() -> None:
    groups = e2e.Groups("group", replicas=1)
    for i, name in enumerate(("a-0", "a-1", "a-2")):
        groups.seen("MODIFIED", pod(name, "a", "n1"), float(i))
        groups.seen("DELETED", pod(name, "a"), float(i) + 0.5)
    groups.seen("MODIFIED", pod("a-3", "a", "n1"), 9.0)
    summary = e2e.summarize({"a": 0.0}, groups, groups=1, t0=0.0)
    assert summary["extra_pods_bound"] == 3 and summary["gangs_on_one_node"] == 1
    assert summary["p99_job_bound_s"] == 0.0, "first whole at t=0"


HISTOGRAM = """\
# HELP suanli_watch_lag_seconds time from a watch event's arrival to the engine's view being current
# TYPE suanli_watch_lag_seconds histogram
suanli_watch_lag_seconds_bucket{kind="pods",le="0.01"} 90.0
suanli_watch_lag_seconds_bucket{kind="pods",le="0.1"} 98.0
suanli_watch_lag_seconds_bucket{kind="pods",le="1.0"} 100.0
suanli_watch_lag_seconds_bucket{kind="pods",le="+Inf"} 100.0
suanli_watch_lag_seconds_bucket{kind="nodes",le="0.01"} 0.0
suanli_watch_lag_seconds_bucket{kind="nodes",le="0.1"} 0.0
suanli_watch_lag_seconds_bucket{kind="nodes",le="1.0"} 0.0
suanli_watch_lag_seconds_bucket{kind="nodes",le="+Inf"} 100.0
suanli_watch_lag_seconds_count{kind="pods"} 100.0
suanli_api_requests_total{verb="create",resource="pods",code="201"} 16.0
suanli_api_requests_total{verb="create",resource="pods",code="409"} 1.0
"""


def test_histogram_quantiles_sum_label_sets_and_name_the_bucket_bound() -> None:
    assert e2e.histogram_quantiles(HISTOGRAM, "suanli_watch_lag_seconds") == {
        "count": 200, "p50_s": 1.0, "p99_s": "inf"}
    assert e2e.histogram_quantiles(HISTOGRAM, "suanli_missing_seconds") == {}, "absent: the caller says n/a"
    assert e2e.api_requests(HISTOGRAM) == {"create pods": 17.0}


def test_client_limits_and_rates_are_parsed_with_errors_that_name_the_value() -> None:
    assert e2e.parse_list("unlimited, 50", allow_unlimited=True) == [None, 50.0]
    with pytest.raises(Exception, match="'fast': expected a number or 'unlimited'"):
        e2e.parse_list("fast", allow_unlimited=True)
    with pytest.raises(Exception, match="'-2': must be above 0"):
        e2e.parse_list("-2", allow_unlimited=False)
    with pytest.raises(Exception, match="'unlimited': expected a number"):
        e2e.parse_list("unlimited", allow_unlimited=False)


def test_kube_scheduler_runs_unthrottled_unless_a_limit_is_asked(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kube config"
    free = yaml.safe_load(e2e.scheduler_config(tmp_path / "a.yaml", kubeconfig, None).read_text())
    assert free["kind"] == "KubeSchedulerConfiguration"
    assert free["clientConnection"] == {"kubeconfig": str(kubeconfig), "qps": 5000, "burst": 10000}
    assert free["leaderElection"] == {"leaderElect": False}
    limited = yaml.safe_load(e2e.scheduler_config(tmp_path / "b.yaml", kubeconfig, 50).read_text())
    assert (limited["clientConnection"]["qps"], limited["clientConnection"]["burst"]) == (50, 100)


def node(name: str, gpus: str, cpu: str = "8") -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": "64Gi", "pods": "110", "nvidia.com/gpu": gpus}}}


def gpu_pod(name: str, gpus: str, cpu: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "bench"},
            "spec": {"schedulerName": "trivial", "containers": [
                {"resources": {"requests": {"cpu": cpu, "nvidia.com/gpu": gpus}}},
                {"resources": {"requests": {"memory": "1Gi"}}}]}}


def test_trivial_binder_takes_the_next_node_with_room_and_gives_it_back() -> None:
    binder = trivial_binder.Binder(None, [node("n1", "2"), node("n2", "8")],  # type: ignore[arg-type]
                                   trivial_binder.TokenBucket(0, 0), "trivial")
    want = trivial_binder.requests_of(gpu_pod("p", "2"))
    assert want == {"pods": 1, "cpu": 1, "nvidia.com/gpu": 2, "memory": Decimal(2**30)}
    assert binder.reserve(want) == "n1"
    assert binder.reserve(want) == "n2", "n1 has no GPU left"
    assert binder.reserve(trivial_binder.requests_of(gpu_pod("big", "8"))) is None, "n2 has 6 left"
    assert binder.reserve(trivial_binder.requests_of(gpu_pod("cpu", "1", cpu="8"))) is None, "CPU counts too"
    binder.placed["p"] = ("n1", want)
    binder.release("p")
    binder.release("never-placed")  # a pod deleted before it was bound: nothing to give back
    assert binder.free["n1"]["nvidia.com/gpu"] == 2


def test_trivial_binder_queues_only_its_own_pending_pods_once() -> None:
    binder = trivial_binder.Binder(None, [node("n1", "8")],  # type: ignore[arg-type]
                                   trivial_binder.TokenBucket(0, 0), "trivial")
    binder.on_pod("ADDED", gpu_pod("mine", "1"))
    binder.on_pod("MODIFIED", gpu_pod("mine", "1"))
    other = gpu_pod("theirs", "1")
    other["spec"]["schedulerName"] = "default-scheduler"
    binder.on_pod("ADDED", other)
    bound = gpu_pod("bound", "1")
    bound["spec"]["nodeName"] = "n1"
    binder.on_pod("ADDED", bound)
    assert binder.queue.qsize() == 1


def test_token_bucket_holds_calls_to_the_rate_after_the_burst() -> None:
    bucket = trivial_binder.TokenBucket(rate=50, burst=2)
    start = time.monotonic()
    for _ in range(5):
        bucket.take()
    assert time.monotonic() - start >= 3 / 50 * 0.9  # 2 at once, then 3 at 50/s


def test_extra_pods_are_explained_by_the_job_status_or_the_operator_log(tmp_path: Path) -> None:
    groups = e2e.Groups("group", replicas=1)
    for name in ("job-0001-0", "job-0001-1", "job-0002-0", "job-0002-1", "job-0003-0", "job-0003-1", "job-0004-0"):
        groups.seen("MODIFIED", pod(name, name[:8], "n1"), 1.0)
    extra = e2e.summarize({}, groups, groups=4, t0=0.0)["groups_with_extra_pods"]
    assert extra == {"job-0001": 2, "job-0002": 2, "job-0003": 2}
    log = tmp_path / "operator.log"
    log.write_text("INFO bench/job-0002: node bn-00001 lost, restarting the gang (1 of 3)\n"
                   "INFO bench/job-0003: placed on 1 node\n")
    jobs = [{"metadata": {"name": "job-0001"}, "status": {"restarts": 1, "reason": "PodFailed",
                                                          "conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "job-0003"}, "status": {}}]
    why = e2e.explain_extra(extra, jobs, log)
    assert why["job-0001"]["explained"] and why["job-0001"]["conditions"] == ["Ready=True"]
    assert why["job-0002"]["explained"] and "restarting the gang" in why["job-0002"]["log"][0]
    assert not why["job-0003"]["explained"], "a log line naming it, but no restart in it or in its status"
    assert why["job-0003"]["log"] == ["INFO bench/job-0003: placed on 1 node"]
    assert e2e.explain_extra({}, jobs, tmp_path / "missing.log") == {}
    assert not e2e.explain_extra({"job-0009": 2}, [], tmp_path / "missing.log")["job-0009"]["explained"]


def test_the_operator_started_with_qps_has_its_api_calls_held_by_the_bench_wrapper() -> None:
    import subprocess

    probe = "from suanli.controller.kubeapi import KubeApi; print(KubeApi.request.__name__)"
    path = f"{ROOT / 'bench' / 'throttle'}:{ROOT / 'operator'}"
    held = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": path, "BENCH_THROTTLE_QPS": "5", "PATH": "/usr/bin:/bin"})
    assert held.stdout.strip() == "_held"
    assert "bench throttle: KubeApi.request at 5 qps, burst 10" in held.stderr
    free = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"})
    assert free.stdout.strip() == "request" and "bench throttle" not in free.stderr


def test_watch_lag_counts_only_what_the_phase_observed() -> None:
    earlier = HISTOGRAM.replace('le="+Inf"} 100.0', 'le="+Inf"} 50.0').replace('le="1.0"} 100.0', 'le="1.0"} 50.0')
    earlier = earlier.replace('le="0.1"} 98.0', 'le="0.1"} 48.0').replace('le="0.01"} 90.0', 'le="0.01"} 40.0')
    # pods: 50 new events, all within 0.01 s; nodes: 50 new ones, all slower than 1 s
    assert e2e.histogram_quantiles(HISTOGRAM, "suanli_watch_lag_seconds", since=earlier) == {
        "count": 100, "p50_s": 0.01, "p99_s": "inf"}


def test_the_api_servers_own_counters_are_reduced_per_group_with_closed_watchers() -> None:
    before = {"apiserver_request_total": {"POST pods": 10.0, "PATCH aitrainingjobs status": 4.0},
              "apiserver_watch_events_total": {"pods": 100.0},
              "apiserver_watch_events_sizes_sum": {"pods": 1024.0 * 10},
              "apiserver_terminated_watchers_total": {"pods": 2.0}}
    after = {"apiserver_request_total": {"POST pods": 90.0, "PATCH aitrainingjobs status": 24.0, "GET x": 10.1},
             "apiserver_watch_events_total": {"pods": 1100.0},
             "apiserver_watch_events_sizes_sum": {"pods": 1024.0 * 210},
             "apiserver_terminated_watchers_total": {"pods": 9.0, "nodes": 0.0}}
    profile = e2e.apiserver_profile(before, after, groups=10)
    assert profile["requests"] == {"POST pods": 8.0, "PATCH aitrainingjobs status": 2.0, "GET x": 1.01}
    assert list(profile["requests"]) == ["POST pods", "PATCH aitrainingjobs status", "GET x"], "largest first"
    assert profile["watch_events"] == {"pods": 100.0} and profile["watch_kib"] == {"pods": 20.0}
    assert profile["watchers_closed_unresponsive"] == {"pods": 7}, "only what closed during the phase"


def test_cleaning_repeats_a_delete_the_api_server_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting 8,000 pods in one call ran into the API server's 60 s timeout (504) and ended a 5,000-node run
    after both phases had been measured."""
    from kubernetes import client

    calls: list[str] = []
    left = [3]
    services = [5]  # the garbage collector takes longer than the pods' delete

    class Core:
        def delete_collection_namespaced_pod(self, ns: str, **_: Any) -> None:
            calls.append("pods")
            if len(calls) == 1:
                raise client.ApiException(status=504, reason="Timeout")

        def list_namespaced_pod(self, ns: str, **_: Any) -> Any:
            left[0] -= 1
            return type("L", (), {"items": [object()] if left[0] > 0 else []})()

        def list_namespaced_service(self, ns: str, **_: Any) -> Any:
            services[0] -= 1
            return type("L", (), {"items": [object()] if services[0] > 0 else []})()

        def list_namespaced_config_map(self, ns: str, **kw: Any) -> Any:
            assert kw.get("label_selector") == "suanli.io/job", "only the jobs' rank tables, not kube-root-ca.crt"
            return type("L", (), {"items": []})()

    class Custom:
        def delete_collection_namespaced_custom_object(self, *a: Any) -> None:
            calls.append("jobs")

    monkeypatch.setattr(e2e.time, "sleep", lambda s: None)
    e2e.clean(Core(), Custom())  # type: ignore[arg-type]
    assert calls.count("pods") >= 2 and left[0] <= 0
    assert services[0] == 0, "the previous phase's Services are gone before the next phase starts"

    class Refusing(Core):
        def delete_collection_namespaced_pod(self, ns: str, **_: Any) -> None:
            raise client.ApiException(status=403, reason="Forbidden")

    with pytest.raises(client.ApiException):
        e2e.clean(Refusing(), Custom())  # type: ignore[arg-type]
