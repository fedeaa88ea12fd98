"""Nobody gets more through Suanli than they could get without it: issue 11, tried as an attacker would.

A control plane of its own (RBAC on), the chart installed as a platform team would (its admission policies,
its RBAC, Prometheus's ServiceAccount bound to the metrics-reader role), and real users' tokens:
- alice, a data scientist whose Role allows AITrainingJobs, reading one Secret and some ConfigMaps, and
  `use` of the `trainer` ServiceAccount, but not creating pods;
- bob, who may create pods in the namespace (and so keeps the whole template);
- the node agent, with a token bound to its own pod on its own node, as the kubelet gives it;
- Prometheus, and a stranger, scraping /metrics.
The operator runs as a local process with the chart's ServiceAccount token, so the jobs that are allowed
really become pods, in a namespace that enforces Pod Security `restricted`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .conftest import ROOT, devcluster, wait_for
from .operator_harness import job_manifest, job_pods, make_fleet, phase
from .test_chart import CHART, make_helm
from .test_chart_rbac import (
    AGENT_SA,
    NAMESPACE,
    OPERATOR_SA,
    RELEASE,
    Audited,
    ElectedOperator,
    service_account_kubeconfig,
)

TEAM = "team-a"
PROMETHEUS = ("monitoring", "prometheus")
GROUP, VERSION, PLURAL = "suanli.io", "v1alpha1", "aitrainingjobs"

SHARED_SECRETS = [f"shared-{i}" for i in range(8)]  # readable by name, to fill every Secret slot of the policy

# What a platform team gives a data scientist: jobs, one Secret, the namespace's ConfigMaps and claims, and
# the right to run jobs as the `trainer` ServiceAccount; not pods.
DATA_SCIENTIST_RULES = [
    {"apiGroups": ["suanli.io"], "resources": ["aitrainingjobs"],
     "verbs": ["create", "get", "list", "watch", "update", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["wandb-key", *SHARED_SECRETS], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["configmaps", "persistentvolumeclaims"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "resourceNames": ["trainer"], "verbs": ["use"]},
]


@dataclass
class Env:
    cluster: devcluster.Cluster
    admin: client.ApiClient
    alice: client.ApiClient
    bob: client.ApiClient
    operator_kubeconfig: Path

    def audited(self) -> Audited:
        return Audited(self.cluster, self.admin)


def _client(path: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(path))


def _rbac(admin: client.ApiClient, namespace: str, name: str, rules: list[dict[str, Any]], account: str) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    directory = ROOT / ".cache" / f"security-{os.getpid()}"
    cluster = devcluster.up(directory, fresh=True)
    try:
        admin = _client(cluster.kubeconfig)
        core = client.CoreV1Api(admin)
        for ns, labels in ((TEAM, {"pod-security.kubernetes.io/enforce": "restricted"}), (PROMETHEUS[0], {})):
            core.create_namespace({"metadata": {"name": ns, "labels": labels}})
        for ns, account in ((TEAM, "alice"), (TEAM, "bob"), (TEAM, "trainer"), (TEAM, "deployer"), PROMETHEUS):
            core.create_namespaced_service_account(ns, {"metadata": {"name": account}})
        core.create_namespaced_secret(TEAM, {"metadata": {"name": "wandb-key"}, "stringData": {"key": "k"}})
        core.create_namespaced_secret(TEAM, {"metadata": {"name": "db-password"}, "stringData": {"pw": "p"}})
        _rbac(admin, TEAM, "data-scientist", DATA_SCIENTIST_RULES, "alice")
        _rbac(admin, TEAM, "pod-author", [*DATA_SCIENTIST_RULES,
                                          {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}], "bob")
        readers = json.dumps([{"kind": "ServiceAccount", "name": PROMETHEUS[1], "namespace": PROMETHEUS[0]}])
        make_helm(devcluster.build_tools("helm"), cluster.kubeconfig)(
            "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
            "--set-json", f"metrics.readers={readers}")
        audited = Audited(cluster, admin)
        ready = Env(cluster, admin,
                    _client(service_account_kubeconfig(audited, "alice", TEAM)),
                    _client(service_account_kubeconfig(audited, "bob", TEAM)),
                    service_account_kubeconfig(audited, OPERATOR_SA))
        wait_for(lambda: _policies_in_force(ready), 30, what="the chart's admission policies to be in force")
        yield ready
    finally:
        devcluster.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_jobs_left(env: Env) -> Iterator[None]:
    """Each test's jobs go with it, so the operator (once started) places only the job under test."""
    yield
    client.CustomObjectsApi(env.admin).delete_collection_namespaced_custom_object(GROUP, VERSION, TEAM, PLURAL)


def _refused(call: Any, *args: Any) -> bool:
    try:
        call(*args, dry_run="All")
    except ApiException as exc:
        return exc.status in (403, 422)
    return False


def _policies_in_force(env: Env) -> bool:
    """A new policy takes a moment to reach the API server's admission chain: probe each with a dry run."""
    jobs = client.CustomObjectsApi(env.alice)
    agent = client.CoreV1Api(_client(service_account_kubeconfig(env.audited(), AGENT_SA)))
    return (_refused(jobs.create_namespaced_custom_object, GROUP, VERSION, TEAM, PLURAL,
                     tenant_job("probe", volumes=[{"name": "h", "hostPath": {"path": "/"}}]))
            and _refused(jobs.create_namespaced_custom_object, GROUP, VERSION, TEAM, PLURAL,
                         job_manifest("probe", ["nvidia"], priority=1))
            and _refused(agent.create_namespaced_event, "default",
                         {"metadata": {"name": "probe"}, "involvedObject": {"kind": "Node", "name": "x"}}))


def submit(api: client.ApiClient, manifest: dict[str, Any], namespace: str = TEAM) -> dict[str, Any]:
    return dict(client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                                             manifest))


def refusal(api: client.ApiClient, manifest: dict[str, Any], namespace: str = TEAM) -> str:
    """The API server's message when it refuses the job; fails the test if the job is accepted."""
    with pytest.raises(ApiException) as caught:
        submit(api, manifest, namespace)
    assert caught.value.status in (403, 422), caught.value.body
    return str(json.loads(caught.value.body)["message"])


def tenant_job(name: str, **template: Any) -> dict[str, Any]:
    manifest = job_manifest(name, ["nvidia"], replicas=1, per_replica=8, after="600s")
    manifest["spec"]["template"].update(template)
    return manifest


# --- the job template ---------------------------------------------------------------------------------

ESCALATIONS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "hostPath": ({"volumes": [{"name": "root", "hostPath": {"path": "/"}}],
                  "volumeMounts": [{"name": "root", "mountPath": "/host"}]},
                 ["spec.template.volumes[root].hostPath", "create pods", "system:serviceaccount:team-a:alice"]),
    "foreign ServiceAccount": ({"serviceAccountName": "deployer"},
                               ["spec.template.serviceAccountName", "deployer", "use"]),
    "Secret through env": ({"env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db-password",
                                                                                   "key": "pw"}}}]},
                           ["spec.template.env[PW].valueFrom.secretKeyRef", "db-password", "get secrets"]),
    "Secret volume": ({"volumes": [{"name": "pw", "secret": {"secretName": "db-password"}}]},
                      ["spec.template.volumes[pw].secret", "get secrets"]),
    "projected Secret": ({"volumes": [{"name": "pw", "projected": {"sources": [
                             {"secret": {"name": "db-password"}}]}}]},
                         ["spec.template.volumes[pw].projected", "get secrets"]),
    "ephemeral volumes": ({"volumes": [{"name": f"e{i}", "ephemeral": {"volumeClaimTemplate": {"spec": {
                               "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}
                           for i in range(64)]},
                          ["spec.template.volumes[e0].ephemeral", "create persistentvolumeclaims"]),
    "network volume": ({"volumes": [{"name": "nfs", "nfs": {"server": "10.0.0.1", "path": "/"}}]},
                       ["spec.template.volumes[nfs]", "volume type", "create pods"]),
    "privileged": ({"securityContext": {"privileged": True}},
                   ["spec.template.securityContext.privileged", "create pods"]),
    "added capability": ({"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
                         ["spec.template.securityContext.capabilities.add", "create pods"]),
    "unsafe sysctl": ({"podSecurityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}},
                      ["spec.template.podSecurityContext.sysctls", "create pods"]),
    "unconfined seccomp": ({"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}},
                           ["Unconfined", "create pods"]),
    "AppArmor annotation": ({"annotations": {"container.apparmor.security.beta.kubernetes.io/trainer": "unconfined"}},
                            ["spec.template.annotations", "AppArmor"]),
}


@pytest.mark.parametrize("case", list(ESCALATIONS))
def test_a_tenant_cannot_escalate_through_the_template(env: Env, case: str) -> None:
    template, words = ESCALATIONS[case]
    message = refusal(env.alice, tenant_job(f"esc-{uuid.uuid4().hex[:6]}", **template))
    for word in words:
        assert word in message, f"{case}: {word!r} missing from the refusal: {message}"


def test_a_pod_author_keeps_todays_freedom(env: Env) -> None:
    """Bob may create pods, so he could mount / and run as deployer without Suanli: the job is accepted."""
    template = {**ESCALATIONS["hostPath"][0], "serviceAccountName": "deployer",
                "securityContext": {"privileged": True},
                "env": ESCALATIONS["Secret through env"][0]["env"]}
    created = submit(env.bob, tenant_job("bob-host", **template))
    assert created["spec"]["template"]["volumes"][0]["hostPath"] == {"path": "/"}
    # Nor can alice borrow bob's rights: changing the template of his job is judged against her.
    with pytest.raises(ApiException) as caught:
        client.CustomObjectsApi(env.alice).patch_namespaced_custom_object(
            GROUP, VERSION, TEAM, PLURAL, "bob-host", {"spec": {"template": {"command": ["sh", "-c", "id"]}}})
    # (whichever policy answers first: the hostPath, or the Secret she may not read)
    assert caught.value.status == 403 and "team-a:alice lacks" in caught.value.body, caught.value.body


def test_the_largest_template_is_judged_within_the_cel_budget(env: Env) -> None:
    """The API server allows about 28 authorization checks per policy: every env var and volume the CRD allows,
    naming as many different objects as the policy checks one by one, is still decided (not refused for
    exceeding the CEL cost limit); one object more is refused with the fix named, and one bad name is found."""
    names = ["wandb-key", *SHARED_SECRETS[:7]]  # 8 distinct Secrets, each referenced many times
    env_vars = [{"name": f"K{i}", "valueFrom": {"secretKeyRef": {"name": names[i % 8], "key": "k"}}}
                for i in range(128)]
    volumes = [{"name": f"s{i}", "secret": {"secretName": names[(i * 3) % 8]}} for i in range(32)]
    volumes += [{"name": f"c{i}", "configMap": {"name": f"cm-{i}"}} for i in range(28)]
    volumes += [{"name": f"p{i}", "persistentVolumeClaim": {"claimName": f"data-{i}"}} for i in range(4)]
    submit(env.alice, tenant_job("largest", env=env_vars, volumes=volumes))
    ninth = {"name": "NINTH", "valueFrom": {"secretKeyRef": {"name": SHARED_SECRETS[7], "key": "k"}}}
    message = refusal(env.alice, tenant_job("largest-ninth", env=[*env_vars[:-1], ninth], volumes=volumes))
    assert "more than 8 different Secrets" in message and "get secrets" in message, message
    unreadable = {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db-password", "key": "pw"}}}
    message = refusal(env.alice, tenant_job("largest-bad", env=[*env_vars[:-1], unreadable], volumes=volumes))
    assert "more than 8 different Secrets" in message, message  # 9 names again: refused before any is read
    seven = [e for e in env_vars if e["valueFrom"]["secretKeyRef"]["name"] != names[-1]]
    message = refusal(env.alice, tenant_job("largest-bad", env=[*seven, unreadable],
                                            volumes=[v for v in volumes if v.get("secret", {}).get("secretName")
                                                     != names[-1]]))
    assert "spec.template.env[PW].valueFrom.secretKeyRef: reading Secret db-password" in message, message


def test_host_namespaces_cannot_even_be_written(env: Env) -> None:
    """hostNetwork/hostPID are not template fields: the API server prunes them, so no pod ever gets them."""
    created = submit(env.alice, tenant_job("pruned", hostNetwork=True, hostPID=True))
    assert "hostNetwork" not in created["spec"]["template"] and "hostPID" not in created["spec"]["template"]


def test_a_tenant_cannot_smuggle_escalation_in_through_an_update(env: Env) -> None:
    submit(env.alice, tenant_job("update-me"))
    custom = client.CustomObjectsApi(env.alice)
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(GROUP, VERSION, TEAM, PLURAL, "update-me", {
            "spec": {"template": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}})
    assert caught.value.status == 403 and "hostPath" in caught.value.body
    # An update that leaves the template alone is not re-judged.
    custom.patch_namespaced_custom_object(GROUP, VERSION, TEAM, PLURAL, "update-me",
                                          {"spec": {"ttlSecondsAfterFinished": 60}})


@pytest.fixture(scope="module")
def operator(env: Env) -> Iterator[ElectedOperator]:
    """`suanli run` with the chart's operator token and metrics on, and a fleet for it to place jobs on."""
    running = ElectedOperator(env.operator_kubeconfig, env.cluster.dir / f"operator-{uuid.uuid4().hex[:6]}.log")
    try:
        wait_for(running.healthy, 60, what="the operator's /healthz")
        make_fleet(client.CoreV1Api(env.admin), "sec", ["nvidia"], racks=1, nodes_per_rack=2)
        yield running
    finally:
        running.stop()


def test_a_tenants_safe_job_runs_restricted(env: Env, operator: ElectedOperator) -> None:
    """What alice may do, she still can: Secret she may read, ConfigMap, scratch space, the `trainer` account.
    The pods land in a namespace enforcing Pod Security `restricted`, so the default securityContext is it."""
    client.CoreV1Api(env.admin).create_namespaced_config_map(TEAM, {"metadata": {"name": "hparams"},
                                                                     "data": {"lr": "3e-4"}})
    submit(env.alice, tenant_job(
        "safe", serviceAccountName="trainer",
        env=[{"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb-key", "key": "key"}}},
             {"name": "LR", "valueFrom": {"configMapKeyRef": {"name": "hparams", "key": "lr"}}}],
        volumes=[{"name": "scratch", "emptyDir": {"medium": "Memory"}},
                 {"name": "hp", "configMap": {"name": "hparams"}}],
        volumeMounts=[{"name": "scratch", "mountPath": "/dev/shm"}, {"name": "hp", "mountPath": "/etc/hp"}],
        podSecurityContext={"runAsUser": 1000, "fsGroup": 1000}))
    wait_for(lambda: phase(env.admin, TEAM, "safe") == "Running", 60, what="alice's job Running")
    (pod,) = job_pods(client.CoreV1Api(env.admin), TEAM, "safe")
    assert pod.spec.service_account_name == "trainer"
    assert pod.spec.security_context.run_as_non_root and pod.spec.security_context.run_as_user == 1000
    assert pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
    sc = pod.spec.containers[0].security_context
    assert sc.allow_privilege_escalation is False and sc.capabilities.drop == ["ALL"]


# --- priority -----------------------------------------------------------------------------------------


def test_priority_is_capped_by_the_namespace_ceiling_admins_set(env: Env) -> None:
    message = refusal(env.alice, job_manifest("greedy", ["nvidia"], replicas=1, priority=1000))
    assert "spec.priority" in message and "ceiling 0" in message and "suanli.io/max-priority" in message
    submit(env.alice, job_manifest("humble", ["nvidia"], replicas=1, priority=-5))
    core = client.CoreV1Api(env.admin)
    core.patch_namespace(TEAM, {"metadata": {"annotations": {"suanli.io/max-priority": "100"}}})
    jobs = client.CustomObjectsApi(env.alice)
    # Admission reads the namespace from an informer: wait until it has seen the annotation.
    wait_for(lambda: not _refused(jobs.create_namespaced_custom_object, GROUP, VERSION, TEAM, PLURAL,
                                  job_manifest("probe", ["nvidia"], replicas=1, priority=100)), 10,
             what="the new ceiling to reach admission")
    try:
        submit(env.alice, job_manifest("urgent", ["nvidia"], replicas=1, priority=100))
        assert "ceiling 100" in refusal(env.alice, job_manifest("too-urgent", ["nvidia"], replicas=1, priority=101))
        # Raising a job's priority later is judged the same way.
        with pytest.raises(ApiException) as caught:
            client.CustomObjectsApi(env.alice).patch_namespaced_custom_object(
                GROUP, VERSION, TEAM, PLURAL, "humble", {"spec": {"priority": 500}})
        assert caught.value.status == 403 and "spec.priority" in caught.value.body
        # Whoever may update the namespace may raise the ceiling anyway, so is not held to it.
        submit(env.admin, job_manifest("admin-urgent", ["nvidia"], replicas=1, priority=900))
        # A tenant cannot raise the ceiling: updating the namespace is not theirs.
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(env.alice).patch_namespace(TEAM, {"metadata": {"annotations": {
                "suanli.io/max-priority": "1000"}}})
        assert caught.value.status == 403
        core.patch_namespace(TEAM, {"metadata": {"annotations": {"suanli.io/max-priority": "lots"}}})
        wait_for(lambda: _refused(jobs.create_namespaced_custom_object, GROUP, VERSION, TEAM, PLURAL,
                                  job_manifest("probe", ["nvidia"], replicas=1, priority=1)), 10,
                 what="the broken annotation to reach admission")
        message = refusal(env.alice, job_manifest("odd", ["nvidia"], replicas=1, priority=1))
        assert "suanli.io/max-priority: lots is not an integer" in message
    finally:
        core.patch_namespace(TEAM, {"metadata": {"annotations": {"suanli.io/max-priority": None}}})


# --- the node agent -----------------------------------------------------------------------------------


def _fake_node(core: client.CoreV1Api, name: str) -> None:
    core.create_node({"apiVersion": "v1", "kind": "Node",
                      "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                                   "labels": {"nvidia.com/gpu.present": "true", "team": "infra"}}})


def agent_on(env: Env, node: str) -> client.ApiClient:
    """The agent's credentials as its DaemonSet pod on `node` gets them: a token bound to that pod."""
    core = client.CoreV1Api(env.admin)
    pod = core.create_namespaced_pod(NAMESPACE, {
        "metadata": {"name": f"agent-{node}"},
        "spec": {"serviceAccountName": "suanli-agent", "nodeName": node,
                 "containers": [{"name": "agent", "image": "suanli:test"}]}})
    return _client(service_account_kubeconfig(env.audited(), AGENT_SA, NAMESPACE, pod))


def _forbidden(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 403, caught.value.body
    return str(caught.value.body)


def test_the_agent_changes_only_its_own_node(env: Env) -> None:
    admin_core = client.CoreV1Api(env.admin)
    for name in ("node-a", "node-b"):
        _fake_node(admin_core, name)
    agent = agent_on(env, "node-a")
    core, custom = client.CoreV1Api(agent), client.CustomObjectsApi(agent)
    label = {"metadata": {"labels": {"suanli.io/accelerator.healthy": "0"}}}
    ours = {"key": "suanli.io/unhealthy", "value": "true", "effect": "NoSchedule"}

    # Its own node: the labels and taint it maintains.
    core.patch_node("node-a", label)
    # As the agent does it: the node's other taints kept (the node-lifecycle controller may add not-ready to a
    # fresh fake node at any moment, and dropping that is refused), over the version read.
    for _ in range(5):
        node = admin_core.read_node("node-a")
        kept = [env.admin.sanitize_for_serialization(t) for t in node.spec.taints or [] if t.key != ours["key"]]
        try:
            core.patch_node("node-a", {"metadata": {"resourceVersion": node.metadata.resource_version},
                                       "spec": {"taints": [*kept, ours]}})
            break
        except ApiException as exc:
            if exc.status != 409:
                raise
    assert any(t.key == ours["key"] for t in admin_core.read_node("node-a").spec.taints or [])
    # The attack of issue 11: a stolen agent token marks another node unhealthy and evicts it.
    assert "node-a" in _forbidden(core.patch_node, "node-b", label)
    _forbidden(core.patch_node, "node-b", {"spec": {"taints": [{"key": "x", "effect": "NoExecute"}]}})
    # On its own node too: only its accelerator labels and its NoSchedule taint.
    _forbidden(core.patch_node, "node-a", {"metadata": {"labels": {"team": "attacker"}}})
    _forbidden(core.patch_node, "node-a", {"metadata": {"labels": {"suanli.io/rack": "r9"}}})
    _forbidden(core.patch_node, "node-a", {"spec": {"taints": [
        {"key": "suanli.io/unhealthy", "value": "true", "effect": "NoExecute"}]}})
    _forbidden(core.patch_node, "node-a", {"spec": {"unschedulable": True}})

    # AcceleratorNodes: its own, not another's.
    record = {"apiVersion": "suanli.io/v1alpha1", "kind": "AcceleratorNode", "metadata": {"name": "node-a"},
              "spec": {"nodeName": "node-a"}}
    custom.create_cluster_custom_object(GROUP, VERSION, "acceleratornodes", record)
    custom.patch_cluster_custom_object_status(GROUP, VERSION, "acceleratornodes", "node-a", {"status": {}})
    other = {**record, "metadata": {"name": "node-b"}, "spec": {"nodeName": "node-b"}}
    _forbidden(custom.create_cluster_custom_object, GROUP, VERSION, "acceleratornodes", other)
    client.CustomObjectsApi(env.admin).create_cluster_custom_object(GROUP, VERSION, "acceleratornodes", other)
    _forbidden(custom.patch_cluster_custom_object, GROUP, VERSION, "acceleratornodes", "node-b",
               {"metadata": {"labels": {"x": "y"}}})
    _forbidden(custom.patch_cluster_custom_object_status, GROUP, VERSION, "acceleratornodes", "node-b",
               {"status": {}})
    # Events: on its own Node only.
    event = {"metadata": {"name": f"node-a.{uuid.uuid4().hex[:8]}"}, "reason": "AcceleratorUnhealthy",
             "message": "x", "type": "Warning",
             "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    core.create_namespaced_event("default", event)
    _forbidden(core.create_namespaced_event, "default",
               {**event, "metadata": {"name": f"node-b.{uuid.uuid4().hex[:8]}"},
                "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": "node-b"}})

    # A token of the agent's account not bound to a pod on a node (minted by someone who may) changes nothing.
    unbound = client.CoreV1Api(_client(service_account_kubeconfig(env.audited(), AGENT_SA)))
    assert "node-name" in _forbidden(unbound.patch_node, "node-a", label)
    node_a = admin_core.read_node("node-a")
    assert node_a.metadata.labels["team"] == "infra" and not node_a.spec.unschedulable
    assert "suanli.io/accelerator.healthy" not in (admin_core.read_node("node-b").metadata.labels or {})


# --- metrics ------------------------------------------------------------------------------------------


def _token(env: Env, namespace: str, account: str) -> str:
    return str(yaml.safe_load(service_account_kubeconfig(env.audited(), account, namespace).read_text())
               ["users"][0]["user"]["token"])


def test_only_authorised_scrapers_read_metrics(env: Env, operator: ElectedOperator) -> None:
    wait_for(lambda: operator.scrape(None)[0] == 401, 30, what="the metrics endpoint")
    status, body = operator.scrape(_token(env, *PROMETHEUS))
    assert status == 200 and "# HELP suanli_" in body, body[:500]
    status, body = operator.scrape(_token(env, TEAM, "alice"))
    assert status == 403 and "suanli_" not in body
    assert operator.scrape("not-a-token")[0] == 401


# --- Pod Security levels of the chart's own pods -------------------------------------------------------


def _pod_from(kind: str, env: Env, helm_args: list[str]) -> dict[str, Any]:
    out = make_helm(devcluster.build_tools("helm"), None)("template", "rel", str(CHART), *helm_args).stdout
    (workload,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == kind]
    spec = workload["spec"]["template"]["spec"]
    spec.pop("serviceAccountName")  # Pod Security judges the pod, not its account (absent in these namespaces)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"psa-{kind.lower()}"}, "spec": spec}


def _dry_run(env: Env, pod: dict[str, Any], namespace: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(env.cluster.bin / "kubectl"), "--kubeconfig", str(env.cluster.kubeconfig),
                           "create", "--dry-run=server", "-n", namespace, "-f", "-"],
                          input=json.dumps(pod), capture_output=True, text=True, timeout=60)


def test_operator_runs_restricted_and_the_agent_needs_only_its_host_mounts(env: Env) -> None:
    core = client.CoreV1Api(env.admin)
    for level in ("restricted", "baseline"):
        core.create_namespace({"metadata": {"name": f"psa-{level}",
                                            "labels": {"pod-security.kubernetes.io/enforce": level}}})
    core.create_namespace({"metadata": {"name": "psa-agent", "labels": {
        "pod-security.kubernetes.io/enforce": "privileged", "pod-security.kubernetes.io/warn": "restricted"}}})
    operator_pod = _pod_from("Deployment", env, [])
    proc = _dry_run(env, operator_pod, "psa-restricted")
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
    agent_pod = _pod_from("DaemonSet", env, [])
    # baseline already forbids hostPath, the agent's read-only sysfs and vendor-library mounts...
    refused = _dry_run(env, agent_pod, "psa-baseline")
    assert refused.returncode != 0 and "hostPath volumes" in refused.stderr, refused.stderr
    # ... and those mounts are the only thing `restricted` finds wrong with it.
    allowed = _dry_run(env, agent_pod, "psa-agent")
    assert allowed.returncode == 0, allowed.stderr
    warnings = [line for line in allowed.stderr.splitlines() if line.startswith("Warning")]
    assert len(warnings) == 1 and "restricted" in warnings[0], warnings
    assert "restricted volume types" in warnings[0] and "hostPath" in warnings[0], warnings
    for clean in ("runAsNonRoot", "allowPrivilegeEscalation", "capabilities", "seccompProfile", "host namespaces"):
        assert clean not in warnings[0], warnings
