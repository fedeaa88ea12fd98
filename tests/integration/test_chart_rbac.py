"""Least privilege, proven: the chart's RBAC against what the operator really calls.

A control plane of its own with the API server's audit log on (`devcluster.up(audit=True)`), the chart
installed into it, and the operator run as a local process with the chart's ServiceAccount token (so
the RBAC-enforcing API server judges every call). It runs jobs end to end: a Huawei gang that succeeds
(Service, rank-table ConfigMap created, read and patched, pods created and bound, status written,
Events) and is deleted by its TTL, and an NVIDIA gang that fails, restarts once (its second gang bound over
the first one's Service and launch ConfigMap) and fails for good (its pods deleted); the operator renews its
leader Lease and answers a /metrics scrape (a TokenReview and a SubjectAccessReview). The agent runs with a
token bound to a pod on its node, as its DaemonSet gets it (the chart's admission policy
refuses other tokens). Then the audit log is compared with the ClusterRole:
- nothing was denied (a 403 is a missing rule), and
- every granted (apiGroup, resource, verb) was used, except the EXEMPT ones, each with its reason.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .conftest import ROOT, devcluster, wait_for
from .operator_harness import create_job, job_manifest, job_pods, make_fleet, phase
from .test_chart import CHART, make_helm

NAMESPACE = "suanli-system"
RELEASE = "suanli"
OPERATOR_SA = "suanli-operator"
AGENT_SA = "suanli-agent"
LEADER_ELECTION = "suanli"  # the chart's default operator.leaderElection.name

Permission = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)

# Granted but not exercised here, and why each grant is still needed.
EXEMPT: dict[str, dict[Permission, str]] = {
    OPERATOR_SA: {
        ("", "pods", "get"): "read only when a bind answers 409 Conflict (a bind resumed after an operator "
                             "restart) to check the pod went to the planned node; an error path not provoked here",
        ("", "configmaps", "delete"): "only when a job is deleted while its gang is being bound; a timing fault "
                                      "tests/integration/test_faults.py provokes",
        ("", "services", "delete"): "only when a job is deleted while its gang is being bound (see configmaps)",
        ("suanli.io", "aitrainingjobs", "get"): "read only after a status write answers 409 Conflict (the job changed "
                                                "meanwhile), to decide again on the fresh version",
    },
    AGENT_SA: {},
}


@dataclass
class Audited:
    cluster: devcluster.Cluster
    admin: client.ApiClient


@pytest.fixture(scope="module")
def audited() -> Iterator[Audited]:
    directory = ROOT / ".cache" / f"chart-audit-{os.getpid()}"
    cluster = devcluster.up(directory, audit=True, fresh=True)
    try:
        make_helm(devcluster.build_tools("helm"), cluster.kubeconfig)(
            "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace")
        yield Audited(cluster, config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    finally:
        devcluster.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


def service_account_kubeconfig(audited: Audited, account: str, namespace: str = NAMESPACE,
                               pod: client.V1Pod | None = None) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a short-lived TokenRequest token.

    With `pod`, the token is bound to that pod as the kubelet's are: the API server then adds the pod's node
    to the token's user info (authentication.kubernetes.io/node-name), which the agent's admission policy reads.
    """
    bound = None if pod is None else client.V1BoundObjectReference(
        kind="Pod", api_version="v1", name=pod.metadata.name, uid=pod.metadata.uid)
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=[], expiration_seconds=3600, bound_object_ref=bound))
    token = client.CoreV1Api(audited.admin).create_namespaced_service_account_token(
        account, namespace, request).status.token
    ca = (audited.cluster.dir / "pki" / "ca.crt").read_bytes()
    path = audited.cluster.dir / f"kubeconfig-{namespace}-{account}-{pod.metadata.name if pod else 'unbound'}"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": audited.cluster.server,
                                               "certificate-authority-data": base64.b64encode(ca).decode()}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": account}}],
    }))
    return path


def granted(audited: Audited, account: str) -> set[Permission]:
    """Every (group, resource, verb) the chart's ClusterRoles and Roles grant the account, read from the cluster.

    A rule limited by resourceNames counts like any other: a call on another name would be a 403, which
    the denial check catches.
    """
    rbac = client.RbacAuthorizationV1Api(audited.admin)
    selector = f"app.kubernetes.io/instance={RELEASE}"
    roles = [(b, rbac.read_cluster_role(b.role_ref.name)) for b in rbac.list_cluster_role_binding(
        label_selector=selector).items]
    roles += [(b, rbac.read_namespaced_role(b.role_ref.name, NAMESPACE)) for b in rbac.list_namespaced_role_binding(
        NAMESPACE, label_selector=selector).items]
    out: set[Permission] = set()
    for binding, role in roles:
        if any(s.kind == "ServiceAccount" and s.name == account for s in binding.subjects or []):
            out |= {(g, r, v) for rule in role.rules for g in rule.api_groups for r in rule.resources
                    for v in rule.verbs}
    assert out, f"no role bound to {account}"
    return out


def audit_records(audited: Audited, account: str) -> list[dict[str, Any]]:
    user = f"system:serviceaccount:{NAMESPACE}:{account}"
    records = []
    with audited.cluster.audit_log.open() as log:
        for line in log:
            event = json.loads(line)
            if event["user"]["username"] == user and "objectRef" in event:
                records.append(event)
    return records


def used(records: list[dict[str, Any]]) -> tuple[set[Permission], set[Permission]]:
    """(allowed, denied) permissions in the account's audit records."""
    allowed: set[Permission] = set()
    denied: set[Permission] = set()
    for event in records:
        ref = event["objectRef"]
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        permission = (ref.get("apiGroup", ""), resource, event["verb"])
        code = (event.get("responseStatus") or {}).get("code", 200)
        (denied if code == 403 else allowed).add(permission)
    return allowed, denied


def assert_least_privilege(audited: Audited, account: str) -> None:
    records = audit_records(audited, account)
    assert records, f"no audit records for {account}: did it run with its token?"
    allowed, denied = used(records)
    assert not denied, f"{account} was refused (missing RBAC rules): {sorted(denied)}"
    grants = granted(audited, account)
    unused = grants - allowed - set(EXEMPT[account])
    assert not unused, (
        f"{account} is granted permissions it never used: {sorted(unused)}; remove them from the chart, or "
        "exercise them here, or add them to EXEMPT with the reason"
    )
    stale = set(EXEMPT[account]) - grants
    assert not stale, f"EXEMPT lists permissions the chart no longer grants: {sorted(stale)}"
    exempt_but_used = set(EXEMPT[account]) & allowed
    assert not exempt_but_used, f"now exercised, drop from EXEMPT: {sorted(exempt_but_used)}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ElectedOperator:
    """`suanli run` with the chart's leader election, as its container would run it."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        self.port, self.metrics_port = _free_port(), _free_port()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT / "operator"),
               "SUANLI_RESYNC_SECONDS": "1",
               # As the chart's downward API sets them: Lease holder identity and namespace.
               "POD_NAME": "suanli-operator-test", "POD_NAMESPACE": NAMESPACE}
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "suanli", "run", "--leader-election", LEADER_ELECTION,
             "--liveness", f"http://127.0.0.1:{self.port}/healthz", "--metrics-port", str(self.metrics_port)],
            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited: {self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def scrape(self, token: str | None) -> tuple[int, str]:
        """GET /metrics (with a bearer token): the operator asks the API server who it is and whether it may."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.metrics_port}/metrics")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _gone(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    try:
        custom.get_namespaced_custom_object("suanli.io", "v1alpha1", namespace, "aitrainingjobs", name)
    except ApiException as exc:
        return exc.status == 404
    return False


def test_operator_uses_exactly_the_permissions_the_chart_grants(audited: Audited) -> None:
    admin, core = audited.admin, client.CoreV1Api(audited.admin)
    custom = client.CustomObjectsApi(admin)
    operator = ElectedOperator(service_account_kubeconfig(audited, OPERATOR_SA),
                              audited.cluster.dir / f"operator-{uuid.uuid4().hex[:6]}.log")
    stuck: AssertionError | None = None
    try:
        wait_for(operator.healthy, 60, what="the operator's /healthz")
        # /metrics: a TokenReview and a SubjectAccessReview per (uncached) scraper; the admin may read it.
        assert operator.scrape(audited.cluster.token)[0] == 200
        make_fleet(core, "a", ["huawei", "nvidia"], racks=1, nodes_per_rack=2)
        ns = "team-a"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        # Huawei: the rank-table ConfigMap is created at bind, read and patched once pods have IPs.
        create_job(admin, ns, job_manifest("ok", ["huawei"], replicas=2, per_replica=8, after="3s",
                                           ttlSecondsAfterFinished=0))
        # NVIDIA, failing twice with one restart allowed: the restarted gang is planned and bound again over
        # the first gang's Service and launch ConfigMap (both patched), then its pods are deleted.
        create_job(admin, ns, job_manifest("bad", ["nvidia"], replicas=2, per_replica=8, simulate="fail",
                                           after="1s", failurePolicy={"maxRestarts": 1}))
        wait_for(lambda: phase(admin, ns, "bad") == "Failed", 90, what="job bad Failed")
        failed = custom.get_namespaced_custom_object("suanli.io", "v1alpha1", ns, "aitrainingjobs", "bad")
        assert failed["status"].get("restarts") == 1, failed["status"]
        wait_for(lambda: not job_pods(core, ns, "bad"), 30, what="the failed gang's pods deleted")
        wait_for(lambda: _gone(custom, ns, "ok"), 60, what="job ok Succeeded and deleted by its TTL")
        coordination = client.CoordinationV1Api(admin)
        lease = coordination.read_namespaced_lease(f"{LEADER_ELECTION}-engine", NAMESPACE)
        assert lease.spec.holder_identity == "suanli-operator-test", "the engine leads through the chart's Lease"
        wait_for(lambda: coordination.read_namespaced_lease(f"{LEADER_ELECTION}-engine", NAMESPACE).spec.renew_time
                 != lease.spec.renew_time, 30, what="the engine to renew its Lease")
    except AssertionError as exc:
        stuck = exc  # a missing rule shows up as a stuck job: report the refused call first
    finally:
        operator.stop()
    time.sleep(1)  # let the API server write the last lines (watches close on stop)
    _, denied = used(audit_records(audited, OPERATOR_SA))
    assert not denied, f"{OPERATOR_SA} was refused (missing RBAC rules): {sorted(denied)}"
    if stuck is not None:
        raise stuck
    assert_least_privilege(audited, OPERATOR_SA)


def test_agent_uses_exactly_the_permissions_the_chart_grants(audited: Audited) -> None:
    """Three probes of one H100 node: no vendor library, then healthy cards, then one card failing."""
    from tests.unit.test_agent_support import fake_vendor_libs, fixture_bdfs, kernels_library

    node = "agent-h100"
    core = client.CoreV1Api(audited.admin)
    core.create_node({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"feature.node.kubernetes.io/pci-10de.present": "true"}},
    })
    # The agent's token as its DaemonSet pod gets it: bound to a pod on the node, so the chart's admission
    # policy lets it change that node (and only that one).
    pod = core.create_namespaced_pod(NAMESPACE, {
        "metadata": {"name": f"{AGENT_SA}-{node}"},
        "spec": {"serviceAccountName": AGENT_SA, "nodeName": node, "containers": [{"name": "agent", "image": "x"}]}})
    libs, bdfs = fake_vendor_libs(), fixture_bdfs("h100-8", "0x10de")
    base = {**os.environ, "KUBECONFIG": str(service_account_kubeconfig(audited, AGENT_SA, pod=pod)),
            "PYTHONPATH": str(ROOT / "operator"), "SUANLI_KERNELS_LIB": str(kernels_library()),
            "SUANLI_FAKE_BDFS": ",".join(bdfs)}
    for lib_dir, extra in ((libs["empty"], {}), (libs["healthy"], {}),
                           (libs["healthy"], {"SUANLI_FAKE_FAIL_BDF": bdfs[0]})):
        proc = subprocess.run(
            [sys.executable, "-m", "suanli", "agent", "--once", "--bench", "none", "--node-name", node,
             "--sysfs-root", str(ROOT / "tests" / "fixtures" / "sysfs" / "h100-8"), "--lib-path", str(lib_dir)],
            env={**base, **extra}, capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    record = client.CustomObjectsApi(audited.admin).get_cluster_custom_object(
        "suanli.io", "v1alpha1", "acceleratornodes", node)
    assert record["status"], "the agent published its node's cards"
    time.sleep(1)
    assert_least_privilege(audited, AGENT_SA)
