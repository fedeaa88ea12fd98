"""The Helm chart with the real helm: lint, render several ways, validate against the real API server's
OpenAPI (server-side dry run), refuse bad values, and install into the test control plane.

Pods never run here (no kubelet for the operator's pods), so installs are checked on the objects.
The RBAC audit (does the operator use exactly what it is granted?) is tests/integration/test_chart_rbac.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from .conftest import ROOT, Kubectl, devcluster, wait_for

CHART = ROOT / "helm" / "suanli"
Helm = Callable[..., "subprocess.CompletedProcess[str]"]
Docs = list[dict[str, Any]]

# Value combinations every rendering must survive (and pass the API server's validation).
COMBINATIONS: dict[str, list[str]] = {
    "defaults": [],
    "everything-on": ["--set", "grafana.dashboard.enabled=true", "--set", "metrics.serviceMonitor.enabled=true",
                      "--set", "imagePullSecrets[0].name=regcred", "--set", "commonLabels.team=ml-platform"],
    "single-replica": ["--set", "operator.replicas=1", "--set", "operator.podDisruptionBudget.enabled=false",
                       "--set", "operator.leaderElection.name=solo"],
    "air-gapped": ["--set", "image.repository=registry.internal:5000/suanli/suanli",
                   "--set", f"image.digest=sha256:{'ab' * 32}", "--set", "image.pullPolicy=Never"],
    "no-agent-no-service": ["--set", "agent.enabled=false", "--set", "metrics.service.enabled=false"],
    "hardened": ["--set", "networkPolicy.enabled=true", "--set-json",
                 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"mon"}}}]',
                 "--set-json", 'metrics.readers=[{"kind":"ServiceAccount","name":"prometheus","namespace":"mon"},'
                 '{"kind":"Group","name":"sre"}]', "--set", "priority.defaultCeiling=-10"],
    "no-admission": ["--set", "admission.enabled=false"],
    "custom-agent": ["--set-json", 'agent.vendorLibraries=[{"hostPath":"/opt/nvidia","libDirs":["lib64"]}]',
                     "--set-json", 'agent.acceleratorNodeLabels=["example.com/gpu"]',
                     "--set-json", 'agent.tolerations=[{"key":"nvidia.com/gpu","operator":"Exists"}]'],
}


def make_helm(bin_dir: Path, kubeconfig: Path | None) -> Helm:
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        extra = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
        proc = subprocess.run([str(bin_dir / "helm"), *args, *extra], capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    return devcluster.build_tools("helm")


@pytest.fixture(scope="module")
def helm(helm_bin: Path) -> Helm:
    """helm for rendering only: no cluster."""
    return make_helm(helm_bin, None)


@pytest.fixture(scope="module")
def chart_crds(kubectl: Kubectl) -> None:
    """The chart's crds/, applied and established, so custom objects can be validated."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s",
            "crd/aitrainingjobs.suanli.io", "crd/acceleratornodes.suanli.io")


def render(helm: Helm, *args: str, namespace: str = "suanli-system", release: str = "rel") -> Docs:
    out = helm("template", release, str(CHART), "--namespace", namespace, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: Docs, kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Docs, kind: str) -> dict[str, Any]:
    (found,) = by_kind(docs, kind)
    return found


def pod_spec(docs: Docs, kind: str) -> dict[str, Any]:
    return dict(one(docs, kind)["spec"]["template"]["spec"])


# --- lint and render ------------------------------------------------------------------------------


@pytest.mark.parametrize("combo", sorted(COMBINATIONS))
def test_lint_is_clean(helm: Helm, combo: str) -> None:
    out = helm("lint", "--strict", str(CHART), *COMBINATIONS[combo]).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize("combo", sorted(COMBINATIONS))
def test_rendered_manifests_pass_the_api_servers_validation(
    helm: Helm, kubectl: Kubectl, chart_crds: None, namespace: str, combo: str
) -> None:
    """Server-side dry run: the real OpenAPI schemas, strict field validation and admission, no writes."""
    docs = render(helm, *COMBINATIONS[combo], namespace=namespace)
    # The Prometheus Operator's CRD is not installed here; its shape is checked in test_service_monitor.
    checkable = [d for d in docs if d["kind"] != "ServiceMonitor"]
    proc = kubectl("apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-",
                   input=yaml.safe_dump_all(checkable))
    applied = [line for line in proc.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(checkable), proc.stdout


def test_default_render_has_the_expected_objects(helm: Helm) -> None:
    kinds = sorted(d["kind"] for d in render(helm))
    assert kinds == sorted([
        "ServiceAccount", "ServiceAccount", "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding",
        "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "DaemonSet", "PodDisruptionBudget", "Service",
        *["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"] * 4,
    ])


def test_a_values_typo_fails_with_the_key_named(helm: Helm) -> None:
    for typo, key in ((["--set", "operator.replica=3"], "replica"), (["--set", "agent.enable=false"], "enable"),
                      (["--set", "imagee.tag=x"], "imagee")):
        proc = helm("template", "rel", str(CHART), *typo, check=False)
        assert proc.returncode != 0
        assert "additional properties" in proc.stderr and f"'{key}'" in proc.stderr, proc.stderr


def test_a_too_old_cluster_is_refused_by_name(helm: Helm) -> None:
    proc = helm("template", "rel", str(CHART), "--kube-version", "1.30.9", check=False)
    assert proc.returncode != 0 and "kubeVersion" in proc.stderr and ">=1.31.0-0" in proc.stderr, proc.stderr
    for vendor_build in ("1.31.1-h0.4", "1.36.3"):  # pre-release-suffixed vendor builds count
        assert helm("template", "rel", str(CHART), "--kube-version", vendor_build, check=False).returncode == 0


def test_wrongly_typed_values_fail(helm: Helm) -> None:
    for bad in (["--set", "operator.replicas=two"], ["--set", "image.digest=latest"],
                ["--set", "image.pullPolicy=Sometimes"], ["--set", "metrics.port=70000"],
                ["--set", "priority.defaultCeiling=5000"], ["--set", "admission.failurePolicy=Sometimes"],
                ["--set-json", 'metrics.readers=[{"kind":"Robot","name":"r2"}]']):
        proc = helm("template", "rel", str(CHART), *bad, check=False)
        assert proc.returncode != 0, bad
        assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr


# --- operator ---------------------------------------------------------------------------------------


def test_pdb_refuses_to_render_with_one_replica(helm: Helm) -> None:
    proc = helm("template", "rel", str(CHART), "--set", "operator.replicas=1",
                check=False)
    assert proc.returncode != 0
    assert "operator.podDisruptionBudget.enabled needs operator.replicas >= 2" in proc.stderr
    docs = render(helm, "--set", "operator.replicas=1", "--set", "operator.podDisruptionBudget.enabled=false")
    assert not by_kind(docs, "PodDisruptionBudget")
    pdb = one(render(helm, "--set", "operator.replicas=3"), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == one(render(helm), "Deployment")["spec"]["selector"]["matchLabels"]


def test_operator_runs_restricted(helm: Helm) -> None:
    spec = pod_spec(render(helm), "Deployment")
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert isinstance(spec["securityContext"]["runAsUser"], int) and spec["securityContext"]["runAsUser"] > 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert not any(k in spec for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in v for v in spec["volumes"])


def test_operator_runs_for_the_charts_lease(helm: Helm) -> None:
    (container,) = pod_spec(render(helm), "Deployment")["containers"]
    assert "command" not in container, "the image's entrypoint is suanli"
    args = container["args"]
    assert args[0] == "run" and "--leader-election=suanli" in args
    assert "--liveness=http://0.0.0.0:8080/healthz" in args and "--metrics-port=9090" in args
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    from suanli.cli import build_parser

    assert build_parser().parse_args(args).leader_election == "suanli", "what the argument means to the operator"


def test_a_renamed_election_runs_suanli_directly(helm: Helm) -> None:
    docs = render(helm, "--set", "operator.leaderElection.name=alt", "--set-json", 'operator.extraArgs=["--verbose"]')
    (container,) = pod_spec(docs, "Deployment")["containers"]
    assert "command" not in container  # the image's ENTRYPOINT, suanli
    assert container["args"] == ["run", "--leader-election=alt", "--liveness=http://0.0.0.0:8080/healthz",
                                 "--metrics-port=9090", "--verbose"]
    assert not [d for d in docs if d["kind"] == "ClusterKopfPeering"], "no kopf peering left"


def test_image_tag_digest_and_pull_secrets(helm: Helm) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for docs, image in (
        (render(helm), f"ghcr.io/suanli/suanli:{app_version}"),
        (render(helm, "--set", "image.tag=0.2.0-rc1"), "ghcr.io/suanli/suanli:0.2.0-rc1"),
        (render(helm, "--set", "image.repository=mirror.local/s", "--set", f"image.digest=sha256:{'0f' * 32}",
                "--set", "image.tag=ignored"), f"mirror.local/s@sha256:{'0f' * 32}"),
    ):
        for kind in ("Deployment", "DaemonSet"):
            assert pod_spec(docs, kind)["containers"][0]["image"] == image
    docs = render(helm, "--set", "imagePullSecrets[0].name=a", "--set", "imagePullSecrets[1].name=b")
    for kind in ("Deployment", "DaemonSet"):
        assert pod_spec(docs, kind)["imagePullSecrets"] == [{"name": "a"}, {"name": "b"}]


# --- agent -------------------------------------------------------------------------------------------


def test_agent_gets_only_read_only_host_mounts(helm: Helm) -> None:
    spec = pod_spec(render(helm), "DaemonSet")
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert not container["securityContext"].get("privileged")
    assert not any(k in spec for k in ("hostNetwork", "hostPID", "hostIPC"))
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert sorted(host.values()) == sorted(["/sys", "/usr/local/Ascend/driver", "/usr/lib64",
                                            "/usr/lib/x86_64-linux-gnu", "/opt/hyhal", "/opt/rocm"])
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    for name, path in host.items():
        assert mounts[name]["readOnly"] is True
        assert mounts[name]["mountPath"] == "/host" + path  # never over the container's own /usr/lib*
    assert container["args"][:3] == ["agent", "--node-name=$(NODE_NAME)", "--sysfs-root=/host/sys"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["SUANLI_VENDOR_LIB_PATH"]["value"].split(":") == [
        "/host/usr/local/Ascend/driver/lib64/driver", "/host/usr/local/Ascend/driver/lib64", "/host/usr/lib64",
        "/host/usr/lib/x86_64-linux-gnu", "/host/opt/hyhal/lib", "/host/opt/rocm/lib",
    ]


def test_agent_runs_only_on_accelerator_nodes(helm: Helm) -> None:
    terms = pod_spec(render(helm), "DaemonSet")["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    keys = [t["matchExpressions"][0]["key"] for t in terms]
    assert all(t["matchExpressions"][0]["operator"] == "Exists" and len(t["matchExpressions"]) == 1 for t in terms)
    assert keys == ["feature.node.kubernetes.io/pci-10de.present", "feature.node.kubernetes.io/pci-19e5.present",
                    "feature.node.kubernetes.io/pci-1d94.present", "nvidia.com/gpu.present", "accelerator",
                    "hygon.com/hcu", "suanli.io/accelerator.vendor"]


# --- RBAC, metrics, dashboard ------------------------------------------------------------------------


def test_rbac_is_exact_and_every_rule_is_explained(helm: Helm) -> None:
    docs = render(helm, "--set", "operator.leaderElection.name=train")
    for role in by_kind(docs, "ClusterRole") + by_kind(docs, "Role"):
        for rule in role["rules"]:
            assert not {"*"} & {*rule["verbs"], *rule.get("resources", []), *rule.get("apiGroups", []),
                                *rule.get("nonResourceURLs", [])}, rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    # The Lease rule names the one Lease the engine renews: `<leaderElection.name>-engine`.
    (named,) = [r for r in one(docs, "Role")["rules"] if r.get("resourceNames")]
    assert named["resourceNames"] == ["train-engine"] and named["verbs"] == ["get", "update"]
    for template in ("operator-rbac.yaml", "agent-rbac.yaml"):
        lines = (CHART / "templates" / template).read_text().splitlines()
        rules = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
        assert rules
        uncommented = [lines[i].strip() for i in rules if not lines[i - 1].strip().startswith("#")]
        assert not uncommented, f"{template}: rules without a comment saying why: {uncommented}"


def test_service_monitor_scrapes_the_metrics_service(helm: Helm) -> None:
    docs = render(helm, "--set", "metrics.serviceMonitor.enabled=true",
                  "--set", "metrics.serviceMonitor.labels.release=kps")
    monitor, service = one(docs, "ServiceMonitor"), one(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["suanli-system"]}
    # The operator authenticates every scrape: Prometheus sends its own ServiceAccount token.
    assert monitor["spec"]["endpoints"] == [{
        "port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s",
        "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    proc = helm("template", "rel", str(CHART), "--set",
                "metrics.serviceMonitor.enabled=true", "--set", "metrics.service.enabled=false", check=False)
    assert proc.returncode != 0 and "needs metrics.service.enabled=true" in proc.stderr


def test_dashboard_config_map_holds_the_dashboard(helm: Helm) -> None:
    assert not by_kind(render(helm), "ConfigMap")
    cm = one(render(helm, "--set", "grafana.dashboard.enabled=true"), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["suanli.json"]) == json.loads((CHART / "dashboards" / "suanli.json").read_text())


# --- security: admission policies, metrics readers, network policies ----------------------------------

POLICY_TEMPLATES = ("admission-jobs.yaml", "admission-references.yaml", "admission-priority.yaml",
                    "admission-agent.yaml")
POLICIES_DIR = ROOT / "deploy" / "policies"


def test_admission_policies_fail_closed_and_are_enforced(helm: Helm) -> None:
    docs = render(helm)
    policies = {p["metadata"]["name"]: p for p in by_kind(docs, "ValidatingAdmissionPolicy")}
    assert sorted(policies) == ["rel-suanli-agent-own-node", "rel-suanli-job-priority", "rel-suanli-job-references",
                                "rel-suanli-job-template"]
    assert all(p["spec"]["failurePolicy"] == "Fail" for p in policies.values())
    bindings = by_kind(docs, "ValidatingAdmissionPolicyBinding")
    assert sorted((b["spec"]["policyName"], tuple(b["spec"]["validationActions"])) for b in bindings) == [
        (name, ("Deny",)) for name in sorted(policies)]
    # The agent's policy matches exactly the chart's agent ServiceAccount, whatever the release is called.
    (condition,) = policies["rel-suanli-agent-own-node"]["spec"]["matchConditions"]
    assert "'system:serviceaccount:suanli-system:rel-suanli-agent'" in condition["expression"]
    assert not by_kind(render(helm, "--set", "admission.enabled=false"), "ValidatingAdmissionPolicy")
    no_agent = render(helm, "--set", "agent.enabled=false")
    assert "rel-suanli-agent-own-node" not in {p["metadata"]["name"] for p in by_kind(no_agent,
                                                                                       "ValidatingAdmissionPolicy")}
    # The default ceiling is rendered into the priority policy as a number.
    (ceiling,) = [v for v in policies["rel-suanli-job-priority"]["spec"]["variables"] if v["name"] == "ceiling"]
    assert ceiling["expression"].rstrip().endswith(": 0")
    lowered = render(helm, "--set", "priority.defaultCeiling=-10")
    (ceiling,) = [v for p in by_kind(lowered, "ValidatingAdmissionPolicy") for v in p["spec"].get("variables", [])
                  if v["name"] == "ceiling"]
    assert ceiling["expression"].rstrip().endswith(": -10")


def test_metrics_readers_are_bound_to_get_metrics_only(helm: Helm) -> None:
    docs = render(helm)
    (reader,) = [r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"].endswith("-metrics-reader")]
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    assert not [b for b in by_kind(docs, "ClusterRoleBinding") if b["metadata"]["name"].endswith("-metrics-reader")]
    docs = render(helm, *COMBINATIONS["hardened"])
    (binding,) = [b for b in by_kind(docs, "ClusterRoleBinding") if b["metadata"]["name"].endswith("-metrics-reader")]
    assert binding["roleRef"]["name"] == reader["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "mon"},
                                   {"kind": "Group", "name": "sre", "apiGroup": "rbac.authorization.k8s.io"}]


def test_network_policies_are_opt_in_and_narrow(helm: Helm) -> None:
    assert not by_kind(render(helm), "NetworkPolicy")
    docs = render(helm, *COMBINATIONS["hardened"])
    policies = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p for p in by_kind(docs, "NetworkPolicy")}
    operator, agent = policies["operator"]["spec"], policies["agent"]["spec"]
    assert operator["podSelector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert operator["ingress"] == [
        {"ports": [{"port": "health", "protocol": "TCP"}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}],
         "ports": [{"port": "metrics", "protocol": "TCP"}]}]
    assert agent["podSelector"]["matchLabels"] == one(docs, "DaemonSet")["spec"]["selector"]["matchLabels"]
    assert agent["policyTypes"] == ["Ingress"] and "ingress" not in agent, "the agent serves nothing"
    # Without metricsFrom nobody in the cluster reaches /metrics (an empty `from` would mean everyone).
    alone = render(helm, "--set", "networkPolicy.enabled=true")
    (operator_only,) = [p for p in by_kind(alone, "NetworkPolicy")
                        if p["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"]
    assert operator_only["spec"]["ingress"] == [{"ports": [{"port": "health", "protocol": "TCP"}]}]


def render_policies(helm: Helm) -> dict[str, str]:
    """deploy/policies/ as it must read: the chart's policies for release `suanli` in `suanli-system`,
    without Helm's bookkeeping labels (kubectl users do not manage them with Helm)."""
    out: dict[str, str] = {}
    for template in POLICY_TEMPLATES:
        docs = render(helm, "--show-only", f"templates/{template}", namespace="suanli-system", release="suanli")
        for doc in docs:
            labels = doc["metadata"]["labels"]
            for helm_only in ("helm.sh/chart", "app.kubernetes.io/managed-by"):
                labels.pop(helm_only)
        header = (f"# Generated from helm/suanli/templates/{template} (release suanli, namespace suanli-system).\n"
                  "# DO NOT EDIT: change the template, then SUANLI_WRITE_POLICIES=1 pytest "
                  "tests/integration/test_chart.py -k deploy_policies\n")
        out[template] = header + yaml.safe_dump_all(docs, sort_keys=False, width=120)
    return out


def test_deploy_policies_match_the_chart(helm: Helm) -> None:
    wanted = render_policies(helm)
    if os.environ.get("SUANLI_WRITE_POLICIES"):
        POLICIES_DIR.mkdir(parents=True, exist_ok=True)
        for name, text in wanted.items():
            (POLICIES_DIR / name).write_text(text)
    found = {p.name: p.read_text() for p in POLICIES_DIR.glob("*.yaml")}
    stale = sorted(n for n in wanted.keys() | found.keys() if wanted.get(n) != found.get(n))
    assert not stale, (f"deploy/policies/ differs from the chart ({', '.join(stale)}): run "
                       "SUANLI_WRITE_POLICIES=1 pytest tests/integration/test_chart.py -k deploy_policies")


# --- install ----------------------------------------------------------------------------------------


@pytest.fixture
def installed(helm_bin: Path, cluster: Any, chart_crds: None, namespace: str) -> Iterator[tuple[str, str, Helm]]:
    helm = make_helm(helm_bin, cluster.kubeconfig)
    release, election = f"s{uuid.uuid4().hex[:6]}", f"p-{uuid.uuid4().hex[:6]}"
    helm("install", release, str(CHART), "--namespace", namespace, "--set", f"operator.leaderElection.name={election}",
         "--set", "grafana.dashboard.enabled=true")
    try:
        yield release, election, helm
    finally:
        # Already gone when the test uninstalled it itself.
        helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s", check=False)


def test_chart_installs_and_uninstalls(api_client: client.ApiClient, kubectl: Kubectl, namespace: str,
                                       installed: tuple[str, str, Helm]) -> None:
    release, election, helm = installed
    status = json.loads(helm("status", release, "--namespace", namespace, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    deployment = apps.read_namespaced_deployment(f"{release}-suanli-operator", namespace)
    assert deployment.spec.replicas == 2
    assert deployment.spec.template.spec.service_account_name == f"{release}-suanli-operator"
    # No kubelet runs these pods, but the controller-free API still shows the DaemonSet and its selector.
    daemonset = apps.read_namespaced_daemon_set(f"{release}-suanli-agent", namespace)
    assert daemonset.spec.template.spec.service_account_name == f"{release}-suanli-agent"
    core.read_namespaced_service_account(f"{release}-suanli-operator", namespace)
    core.read_namespaced_service(f"{release}-suanli-operator-metrics", namespace)
    core.read_namespaced_config_map(f"{release}-suanli-dashboard", namespace)
    client.PolicyV1Api(api_client).read_namespaced_pod_disruption_budget(f"{release}-suanli-operator", namespace)
    binding = rbac.read_cluster_role_binding(f"{release}-suanli-operator")
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [
        ("ServiceAccount", f"{release}-suanli-operator", namespace)]
    role = rbac.read_namespaced_role(f"{release}-suanli-operator", namespace)
    assert any(r.resource_names == [f"{election}-engine"] for r in role.rules), "the Lease named after the election"
    # The operator's ServiceAccount may do what it needs and nothing broader.
    sa = f"system:serviceaccount:{namespace}:{release}-suanli-operator"
    for verb, resource, allowed in (
        ("create", "pods --subresource=binding", "yes"),
        ("update", "aitrainingjobs.suanli.io --subresource=status", "yes"),
        ("patch", "services", "yes"),
        ("get", "secrets", "no"),
        ("update", "nodes", "no"),
        ("create", "aitrainingjobs.suanli.io", "no"),
        ("patch", "aitrainingjobs.suanli.io --subresource=status", "no"),
    ):
        out = kubectl("auth", "can-i", verb, *resource.split(), "--as", sa, "-A", check=False).stdout.strip()
        assert out == allowed, (verb, resource, out)

    helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s")
    wait_for(lambda: kubectl("get", "clusterrole", f"{release}-suanli-operator", check=False).returncode != 0,
             30, what="the ClusterRole to go with the release")
