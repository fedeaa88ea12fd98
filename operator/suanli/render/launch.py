"""Launch environment of a replica pod: what each framework's own launcher expects, per docs/frameworks.md.

One pod per replica, ``acceleratorsPerReplica`` processes per pod. ``RANK`` is the pod's *node rank*, as both
MindCluster (``--node_rank $RANK`` in its launch scripts) and Kubeflow's PyTorchJob (the pod index) set it;
``WORLD_SIZE`` is the number of processes, as MindCluster and torch mean it. A launcher (torchrun, msrun,
deepspeed) sets the per-process ``RANK``/``LOCAL_RANK``; the unambiguous ``SUANLI_*`` variables say the same
things under names no framework reuses.
"""

from __future__ import annotations

from typing import Any

from ..api.aitrainingjob import AITrainingJob, Framework, MindSporeStartup
from ..inventory.models import VENDOR_BY_NAME
from .ranktable import RANK_TABLE_DIR, RANK_TABLE_KEY

DEEPSPEED_HOSTFILE_ANNOTATION = "suanli.io/deepspeed-hostfile"
DEEPSPEED_HOSTFILE_DIR = "/job"
DEEPSPEED_HOSTFILE_VOLUME = "suanli-deepspeed-hostfile"
"""DeepSpeed's launcher reads /job/hostfile by default; Suanli projects it there from a pod annotation."""

Env = list[dict[str, Any]]


def rendezvous_host(job: AITrainingJob) -> str:
    """Replica 0's stable DNS name through the job's headless Service."""
    name, ns = job.name, job.namespace or "default"
    return f"{name}-0.{name}.{ns}.svc"


def launch_env(
    job: AITrainingJob, replica: int, vendor: str, *, world: int, generation: int, rank_table: bool
) -> Env:
    """Every variable Suanli sets on replica ``replica`` of a ``world``-replica gang (user env is added later)."""
    procs = job.spec.accelerators_per_replica
    master, port = rendezvous_host(job), str(job.spec.rendezvous_port)
    values: dict[str, str] = {
        "MASTER_ADDR": master,
        "MASTER_PORT": port,
        "WORLD_SIZE": str(world * procs),
        "RANK": str(replica),
        "NODE_RANK": str(replica),
        "LOCAL_WORLD_SIZE": str(procs),
        # torchrun's own variables (PET_* become its --nnodes/--nproc-per-node/... defaults).
        "PET_NNODES": str(world),
        "PET_NPROC_PER_NODE": str(procs),
        "PET_NODE_RANK": str(replica),
        "PET_MASTER_ADDR": master,
        "PET_MASTER_PORT": port,
        "SUANLI_FRAMEWORK": job.spec.framework.value,
        "SUANLI_NNODES": str(world),
        "SUANLI_NODE_RANK": str(replica),
        "SUANLI_NPROC_PER_NODE": str(procs),
        "SUANLI_WORLD_SIZE": str(world * procs),
        "SUANLI_FIRST_RANK": str(replica * procs),
        "SUANLI_GENERATION": str(generation),
    }
    if procs == 1:
        # One process per pod runs without a launcher: its local rank is 0 and RANK (node rank) is its global rank.
        values["LOCAL_RANK"] = "0"
    profile = VENDOR_BY_NAME[vendor]
    values |= {
        "SUANLI_ACCELERATOR_VENDOR": vendor,
        "SUANLI_COLLECTIVE_BACKEND": profile.collective,
        "SUANLI_TORCH_BACKEND": profile.torch_backend,
        **profile.pod_env,
    }
    if profile.needs_rank_table and rank_table:
        values |= {
            "RANK_TABLE_FILE": f"{RANK_TABLE_DIR}/{RANK_TABLE_KEY}",
            "RANK_SIZE": str(world * procs),
            # MindSpore model-zoo scripts start their ranks at DEVICE_NUM * SERVER_ID.
            "SERVER_ID": str(replica),
        }
        if procs == 1:
            # Rank-table start-up reads these per process; with one process per pod they are known here.
            values |= {"RANK_ID": str(replica), "DEVICE_ID": "0"}
    rank_table_startup = job.spec.mindspore_startup == MindSporeStartup.RANK_TABLE
    if job.spec.framework == Framework.MINDSPORE and rank_table_startup:
        # MindSpore model-zoo launch scripts: DEVICE_ID=i, RANK_ID=DEVICE_NUM*SERVER_ID+i for each local process.
        values["DEVICE_NUM"] = str(procs)
    env: Env = [{"name": k, "value": v} for k, v in values.items()]
    if job.spec.framework == Framework.MINDSPORE and not rank_table_startup:
        # MS_ROLE switches MindSpore to dynamic networking, so rank-table start-up must not get it.
        env += _mindspore_env(job, replica, world, master, port)
    return env


def _mindspore_env(job: AITrainingJob, replica: int, world: int, master: str, port: str) -> Env:
    """MindSpore dynamic networking (msrun or MS_ROLE processes), with MindCluster's variable names and meanings.

    The scheduler process runs in replica 0: there ``MS_SCHED_HOST`` is the pod's own IP (msrun starts the
    scheduler where master_addr is a local address); elsewhere it is replica 0's DNS name.
    """
    procs = job.spec.accelerators_per_replica
    sched: dict[str, Any] = (
        {"name": "MS_SCHED_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        if replica == 0
        else {"name": "MS_SCHED_HOST", "value": master}
    )
    values = {
        "MS_SCHED_PORT": port,
        "MS_WORKER_NUM": str(world * procs),
        "MS_LOCAL_WORKER": str(procs),
        "MS_NODE_RANK": str(replica),
        "MS_ROLE": "MS_WORKER",
        "MS_SERVER_NUM": "0",
    }
    return [sched] + [{"name": k, "value": v} for k, v in values.items()]


def deepspeed_hostfile(job: AITrainingJob, world: int) -> str:
    """DeepSpeed's hostfile (``<host> slots=<n>``), one line per replica, in node-rank order.

    ``deepspeed --no_ssh --node_rank=$NODE_RANK ...`` needs every node listed: without a hostfile it falls back to
    local resources and refuses --num_nodes > 1 (deepspeed/launcher/runner.py).
    """
    name, ns = job.name, job.namespace or "default"
    procs = job.spec.accelerators_per_replica
    return "".join(f"{name}-{i}.{name}.{ns}.svc slots={procs}\n" for i in range(world))


def deepspeed_hostfile_volume() -> dict[str, Any]:
    """A downward-API volume that shows the pod's hostfile annotation as /job/hostfile."""
    return {
        "name": DEEPSPEED_HOSTFILE_VOLUME,
        "downwardAPI": {
            "items": [{
                "path": "hostfile",
                "fieldRef": {"fieldPath": f"metadata.annotations['{DEEPSPEED_HOSTFILE_ANNOTATION}']"},
            }]
        },
    }
