"""`suanli run` as a child process against a local cluster: used by the integration tests, the demo and the
end-to-end benchmark, so all three start, probe and stop the operator the same way."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """`suanli run` as a child process against the test cluster; start, kill -9, restart."""

    def __init__(
        self, kubeconfig: Path, log: Path, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.extra_args = extra_args
        self.extra_env = env or {}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0

    def start(self) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONPATH": str(ROOT / "operator"),
            "SUANLI_RESYNC_SECONDS": "2",
            "SUANLI_METRICS_PORT": str(self.metrics_port),
            **self.extra_env,
        }
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "suanli",
                "run",
                "--liveness",
                f"http://127.0.0.1:{self.port}/healthz",
                *self.extra_args,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"operator not healthy after 60s: {self.log.read_text()[-3000:]}")

    def scrape(self) -> str:
        """GET /metrics as its scrapers do: with a bearer token the API server knows (the kubeconfig's own,
        the cluster admin's here), since the operator answers only authorised scrapers."""
        users = yaml.safe_load(self.kubeconfig.read_text())["users"]
        token = next(u["user"]["token"] for u in users if u.get("user", {}).get("token"))
        request = urllib.request.Request(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return str(resp.read().decode())

    def tail(self) -> str:
        """The end of the operator's log, for error messages."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def pause(self) -> None:
        """SIGSTOP the whole process group: a frozen process (a long GC pause, a stalled VM) that holds
        its connections and its Lease but neither renews nor writes until `resume`."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`: the process carries on where it stopped, unaware of the time lost."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers run, as when a node dies under the operator."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            os.killpg(self.proc.pid, signal.SIGCONT)  # a paused process handles SIGTERM only once resumed
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
