"""A real, local Kubernetes control plane for Suanli's tests and demo.

etcd (Debian's etcd-server), kube-apiserver and kube-controller-manager built from pinned Go modules
(hack/build-tools), and kwok to run fake nodes and kubelets. Everything listens on loopback only, with
generated certificates, a static admin token and RBAC authorization on, so RBAC mistakes show up here
and not in a customer's cluster. State lives in one directory; `down` kills every process it started.

Used three ways: `hack/cluster up|down|status` for people, the pytest fixtures in
tests/integration/conftest.py, and `make demo`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HACK = Path(__file__).resolve().parent
DEFAULT_DIR = Path(os.environ.get("SUANLI_CLUSTER_DIR", HACK.parent / ".cache" / "cluster"))

# Controllers that make the API behave like a real cluster for an operator: ownerReference cascades
# (garbagecollector), namespace deletion, the default ServiceAccount that pod admission requires, and
# node lifecycle, which lifts the not-ready taint admission puts on every new node and marks a node
# NotReady when its (kwok) kubelet stops renewing the lease; podgc removes pods of deleted nodes.
CONTROLLERS = "garbagecollector,namespace,serviceaccount,serviceaccount-token,nodelifecycle,podgc"

# Pods annotated `suanli.io/simulate: succeed|fail` are finished by kwok after the Go duration in
# `suanli.io/simulate-after` (default 500ms), so tests and the demo can run jobs to Succeeded or Failed
# without a real kubelet. kwok's own default stages (copied by build-tools) make nodes and pods Ready.
SIMULATE = "suanli.io/simulate"
_FINISH_STAGE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: suanli-pod-{outcome}
spec:
  resourceRef: {{apiGroup: v1, kind: Pod}}
  selector:
    matchExpressions:
    - {{key: '.metadata.deletionTimestamp', operator: DoesNotExist}}
    - {{key: '.status.phase', operator: In, values: [Running]}}
    - {{key: '.metadata.annotations["suanli.io/simulate"]', operator: In, values: [{outcome}]}}
  delay:
    durationMilliseconds: 500
    durationFrom: {{expressionFrom: '.metadata.annotations["suanli.io/simulate-after"]'}}
  next:
    delete: false
    statusTemplate: |
      {{{{ $now := Now }}}}
      phase: {phase}
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - name: {{{{ .name }}}}
        ready: false
        started: false
        image: {{{{ .image }}}}
        restartCount: 0
        state:
          terminated:
            exitCode: {code}
            reason: {reason}
            startedAt: {{{{ $now | Quote }}}}
            finishedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}
"""
KWOK_STAGES = "---\n".join(
    _FINISH_STAGE.format(outcome=outcome, phase=phase, code=code, reason=reason)
    for outcome, phase, code, reason in (("succeed", "Succeeded", 0, "Completed"), ("fail", "Failed", 1, "Error"))
)

# With `up(audit=True)`: every request the API server serves, at Metadata level (who, verb, resource,
# subresource, namespace, name, response code; no bodies), one JSON line each, so tests can compare
# what a ServiceAccount really does with what its RBAC grants. RequestReceived is left out: it
# duplicates each request's ResponseComplete line.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
"""


@dataclass
class Cluster:
    """What a running cluster is: where its state lives, its ports and its processes."""

    dir: Path
    bin: Path
    api_port: int = 0
    etcd_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (JSON lines); exists only for clusters started with audit=True."""
        return self.dir / "audit.log"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def token(self) -> str:
        return (self.dir / "pki" / "admin.token").read_text().strip()

    def env(self) -> dict[str, str]:
        """Environment for child processes that talk to this cluster (kubectl, the operator, helm)."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin}:{os.environ['PATH']}",
        }

    def save(self) -> None:
        state = {**asdict(self), "dir": str(self.dir), "bin": str(self.bin)}
        (self.dir / "state.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path) -> Cluster | None:
        try:
            raw = json.loads((directory / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return cls(
            dir=Path(raw["dir"]),
            bin=Path(raw["bin"]),
            api_port=raw["api_port"],
            etcd_port=raw["etcd_port"],
            pids=raw["pids"],
        )

    def alive(self) -> bool:
        return bool(self.pids) and all(_pid_alive(pid) for pid in self.pids.values())


def build_tools(tools: str = "") -> Path:
    """Build or reuse the pinned binaries; returns their directory."""
    out = subprocess.run([str(HACK / "build-tools"), *tools.split()], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie still answers kill(0); read its state to tell.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_pki(pki: Path) -> None:
    """A throwaway CA, the apiserver's serving cert, service-account keys and the admin token."""
    if (pki / "admin.token").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=suanli-dev-ca",
        "-keyout",
        str(pki / "ca.key"),
        "-out",
        str(pki / "ca.crt"),
    )
    ext = pki / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=kube-apiserver",
        "-keyout",
        str(pki / "server.key"),
        "-out",
        str(pki / "server.csr"),
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(pki / "server.csr"),
        "-CA",
        str(pki / "ca.crt"),
        "-CAkey",
        str(pki / "ca.key"),
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        str(ext),
        "-out",
        str(pki / "server.crt"),
    )
    _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    token = os.urandom(16).hex()
    # The static token maps to system:masters: the admin of this throwaway cluster. Tests that check
    # least privilege use ServiceAccount tokens instead, which RBAC does restrict.
    (pki / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    (pki / "admin.token").write_text(token)


def _write_kubeconfig(cluster: Cluster) -> None:
    ca = (cluster.dir / "pki" / "ca.crt").read_text()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "suanli-dev",
                "cluster": {
                    "server": cluster.server,
                    "certificate-authority-data": base64.b64encode(ca.encode()).decode(),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": cluster.token}}],
        "contexts": [{"name": "suanli-dev", "context": {"cluster": "suanli-dev", "user": "admin"}}],
        "current-context": "suanli-dev",
    }
    cluster.kubeconfig.write_text(json.dumps(config, indent=2))


def _spawn(cluster: Cluster, name: str, argv: list[str]) -> None:
    log = open(cluster.dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child for its lifetime
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=cluster.env(),
    )
    cluster.pids[name] = proc.pid
    cluster.save()


def _wait(what: str, ok: Callable[[], bool], cluster: Cluster, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        if not _pid_alive(cluster.pids[name]):
            tail = (cluster.dir / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited while waiting for {what}; log tail:\n{tail}")
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s; see {cluster.dir / (name + '.log')}")


def _get(cluster: Cluster, path: str) -> bool:
    ctx = ssl.create_default_context(cafile=str(cluster.dir / "pki" / "ca.crt"))
    req = urllib.request.Request(cluster.server + path, headers={"Authorization": f"Bearer {cluster.token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _etcd_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return b'"true"' in resp.read()
    except (urllib.error.URLError, OSError):
        return False


def up(directory: Path = DEFAULT_DIR, kwok: bool = True, fresh: bool = False, audit: bool = False) -> Cluster:
    """Start the control plane (or reuse the one already running in `directory`).

    `audit` turns on the API server's audit log (`Cluster.audit_log`, see AUDIT_POLICY); it is off by
    default because it writes a line per request.
    """
    directory = directory.resolve()
    existing = Cluster.load(directory)
    if existing and existing.alive() and not fresh and (not audit or existing.audit_log.exists()):
        return existing
    if existing:
        down(directory)
    bin_dir = build_tools("etcd kube-apiserver kube-controller-manager kubectl kwok")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in ("etcd-data", "state.json"):
        path = directory / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for log in directory.glob("*.log"):
        log.unlink()
    audit_flags: list[str] = []
    if audit:
        policy = directory / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        audit_flags = [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={directory / 'audit.log'}",
            "--audit-log-format=json",
        ]
    _make_pki(directory / "pki")
    cluster = Cluster(dir=directory, bin=bin_dir, api_port=_free_port(), etcd_port=_free_port())
    _write_kubeconfig(cluster)
    pki = directory / "pki"

    _spawn(
        cluster,
        "etcd",
        [
            str(bin_dir / "etcd"),
            "--name",
            "suanli-dev",
            "--data-dir",
            str(directory / "etcd-data"),
            "--listen-client-urls",
            f"http://127.0.0.1:{cluster.etcd_port}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{cluster.etcd_port}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{_free_port()}",
            "--quota-backend-bytes",
            str(4 << 30),
        ],
    )
    _wait("etcd", lambda: _etcd_up(cluster.etcd_port), cluster, "etcd", 30)

    _spawn(
        cluster,
        "kube-apiserver",
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{cluster.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={cluster.api_port}",
            f"--tls-cert-file={pki / 'server.crt'}",
            f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # One apiserver, no peers: skip the endpoint reconciler's leases and the 1 s default delay.
            "--endpoint-reconciler-type=none",
            # Debian's etcd 3.4 lacks the progress notifications that streaming lists need. Without this the
            # server accepts sendInitialEvents watches and then fails them mid-stream, and client-go (kwok)
            # only sees changes at each re-list; refused up front, clients fall back to LIST + WATCH.
            "--feature-gates=WatchList=false",
            *audit_flags,
        ],
    )
    _wait("kube-apiserver /readyz", lambda: _get(cluster, "/readyz"), cluster, "kube-apiserver", 90)

    _spawn(
        cluster,
        "kube-controller-manager",
        [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={cluster.kubeconfig}",
            f"--controllers={CONTROLLERS}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={_free_port()}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=false",
            # The GC's informers resync slowly by default; tests wait on cascades, so keep it brisk.
            "--concurrent-gc-syncs=10",
        ],
    )

    if kwok:
        stages = directory / "kwok-stages.yaml"
        defaults = sorted((bin_dir / "kwok-stages").glob("*.yaml"))
        stages.write_text("\n---\n".join([*(p.read_text() for p in defaults), KWOK_STAGES]))
        _spawn(
            cluster,
            "kwok",
            [
                str(bin_dir / "kwok"),
                f"--kubeconfig={cluster.kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
                "--cidr=10.0.0.1/24",
                "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--config={stages}",
                f"--server-address=127.0.0.1:{_free_port()}",
            ],
        )
    cluster.save()
    return cluster


def down(directory: Path = DEFAULT_DIR) -> None:
    """Stop every process of the cluster in `directory`; keep certificates for a faster next start."""
    cluster = Cluster.load(directory.resolve())
    if not cluster:
        return
    # In reverse start order, each gone before the next: an apiserver whose etcd vanished first hangs on
    # shutdown until it is killed, which cost 10 s per stop.
    for name in reversed(list(cluster.pids)):
        pid = cluster.pids[name]
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    cluster.pids = {}
    cluster.save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/cluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "build"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory (default: %(default)s)")
    parser.add_argument("--no-kwok", action="store_true", help="do not start kwok")
    parser.add_argument("--fresh", action="store_true", help="restart even if already running")
    parser.add_argument(
        "--audit",
        action="store_true",
        help="write the API server's audit log (every request, Metadata level) to DIR/audit.log",
    )
    args = parser.parse_args(argv)
    if args.command == "build":
        print(build_tools())
        return 0
    if args.command == "down":
        down(args.dir)
        return 0
    if args.command == "status":
        cluster = Cluster.load(args.dir.resolve())
        running = bool(cluster and cluster.alive())
        print("running" if running else "stopped")
        return 0 if running else 1
    t0 = time.monotonic()
    cluster = up(args.dir, kwok=not args.no_kwok, fresh=args.fresh, audit=args.audit)
    print(f"# control plane ready in {time.monotonic() - t0:.1f}s; logs in {cluster.dir}", file=sys.stderr)
    print(f"export KUBECONFIG={cluster.kubeconfig} PATH={cluster.bin}:$PATH")
    return 0


if __name__ == "__main__":
    sys.exit(main())
