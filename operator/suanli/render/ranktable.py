"""The Ascend rank table (hccl.json) of one gang, written the way MindCluster's ascend-operator writes it and HCCL
reads it (schemas in Ascend/mind-cluster component/ascend-operator/pkg/ranktable/{v1,v1dot2,v2dot0}).

Everything here is pure; the engine drives the lifecycle:

1. When a gang (a new generation) is created, it creates *or replaces* the ConfigMap with
   ``build_rank_table_config_map(job, slots, {})``: status ``initializing``, ``generation`` = job.status.generation.
   :func:`rank_table_stale` says whether a ConfigMap found on the server belongs to an older gang.
2. On every event of the running gang's pods, it rebuilds the ConfigMap from those pods and patches it when the
   data changed (a completed table at once, changes of one still initializing at most once a second). The
   table turns ``completed`` only when every replica's entry is real: the pod of this generation has an IP and
   the device plugin's annotation lists exactly the cards it was given, with usable device IPs where the schema
   needs them. Device ids and IPs come only from that annotation; nothing is guessed (the kubelet, not the
   scheduler, picks the physical cards, and the plugin writes the annotation from a periodic loop, possibly
   after the pod has its IP).
3. Pods never read the ConfigMap file directly (a ConfigMap volume file is a symlink, which torch_npu refuses as
   a RANK_TABLE_FILE): an init container waits for ``completed`` of its own generation and copies the table to
   a regular file (:func:`rank_table_init_container`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.aitrainingjob import ASCEND_RANK_TABLE_DIR, AITrainingJob

SCHEMA_1_0 = "1.0"
"""server_list with device ids and RoCE IPs: Atlas 800T A2 (910B) and older, HCCS inside a server."""
SCHEMA_1_2 = "1.2"
"""1.0 plus super_device_id and super_pod_list: Atlas A3 (910C) super pods, where HCCL links servers over the
super-pod fabric instead of RoCE."""
SCHEMA_2_0 = "2.0"
"""rank_list with integer ids and level_list: nodes advertising huawei.com/npu."""

ASCEND_910_ANNOTATION = "ascend.kubectl.kubernetes.io/ascend-910-configuration"
ASCEND_NPU_ANNOTATION = "ascend.kubectl.kubernetes.io/ascend-npu-configuration"
"""Where MindCluster's device plugin records the cards it gave a pod (ascend-common/api/default_name.go)."""
INVALID_DEVICE_IP = "-1"
"""What the plugin writes when it could not read a card's RoCE IP (ascend-common/api/consts.go)."""
INVALID_SUPER_DEVICE_ID = "-2"
"""What the plugin writes when a card has no super-pod id (ascend-device-plugin/pkg/common/constants.go)."""

RANK_TABLE_KEY = "hccl.json"
GENERATION_KEY = "generation"
WAITING_KEY = "waiting"
"""ConfigMap keys: the table, the gang generation it belongs to, and what it still waits for (for humans)."""

COMPLETED = "completed"
INITIALIZING = "initializing"
COMPLETED_MARK = f'"status":"{COMPLETED}"'
"""How a completed table's status reads in the ConfigMap (compact JSON, as MindCluster writes it): the init
container greps for it."""
MAX_TABLE_BYTES = 900 * 1024
"""A ConfigMap holds at most 1 MiB; past this the table is refused with a reason instead of failing the write.
Compact JSON takes about 70 bytes per card, so some 1,500 eight-card replicas fit."""

RANK_TABLE_DIR = ASCEND_RANK_TABLE_DIR
"""Where MindCluster mounts hccl.json, so launch scripts built for it find the table unchanged."""
RANK_TABLE_SOURCE_DIR = "/etc/suanli/rank-table-source"
"""Where the init container sees the ConfigMap (symlinked files)."""
RANK_TABLE_VOLUME = "suanli-rank-table"
"""The emptyDir holding the regular-file copy the trainer reads."""
RANK_TABLE_SOURCE_VOLUME = "suanli-rank-table-source"
"""The ConfigMap volume only the init container mounts."""
RANK_TABLE_WAIT_SECONDS = 1800
"""How long a pod waits for a completed table before failing (a gang restart follows): HCCL's own link set-up
timeout is of the same order, and a device plugin that never annotates must not hang the job forever."""

# Level 2 / 3 entries of a 2.0 table depend on the port type (MindCluster ascend-operator/pkg/api/v1/
# constants_v2.go); like MindCluster, the first type any card offers wins, RoCE first.
_PORT_PRIORITY = ("ROCE", "UBOE", "UBG")


def rank_table_schema(resource: str, node_labels: Mapping[str, str]) -> str:
    """The schema a node's replicas need: 2.0 on ``huawei.com/npu``, 1.2 on super-pod servers, else 1.0.

    MindCluster decides the same way (ascend-operator/pkg/ranktable/factory.go): huawei.com/npu requests, or
    accelerator-type module-a3-16-super-pod / module-a3-8-super-pod.
    """
    if resource == "huawei.com/npu":
        return SCHEMA_2_0
    if node_labels.get("accelerator-type", "").endswith("-super-pod"):
        return SCHEMA_1_2
    return SCHEMA_1_0


@dataclass(frozen=True)
class RankTableSlot:
    """What the table needs to know of one replica (a GangSlot carries these)."""

    replica: int
    node: str
    resource_name: str
    schema: str


@dataclass(frozen=True)
class _Device:
    device_id: str
    device_ip: str
    super_device_id: str | None
    level_list: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class _Server:
    replica: int
    server_id: str
    host_ip: str
    container_ip: str
    super_pod_id: int | None
    devices: tuple[_Device, ...]


def device_annotation(pod: Mapping[str, Any]) -> str | None:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(ASCEND_910_ANNOTATION) or annotations.get(ASCEND_NPU_ANNOTATION)
    return raw if isinstance(raw, str) and raw else None


def _parse_devices(record: Mapping[str, Any], count: int, schema: str) -> tuple[_Device, ...] | str:
    devices = record.get("devices")
    if not isinstance(devices, list) or len(devices) != count:
        found = len(devices) if isinstance(devices, list) else "no"
        return f"the device plugin's record lists {found} devices, the replica requested {count}"
    out: list[_Device] = []
    for entry in devices:
        if not isinstance(entry, Mapping):
            return "the device plugin's record has a device that is not an object"
        device_id = str(entry.get("device_id", ""))
        if not device_id.isdigit():
            return f"device_id {device_id!r} in the device plugin's record is not a physical card number"
        super_id = entry.get("super_device_id")
        if schema == SCHEMA_1_2 and (super_id is None or str(super_id) in ("", INVALID_SUPER_DEVICE_ID)):
            return f"card {device_id} has no super_device_id (a 1.2 super-pod table needs one)"
        levels = entry.get("levelList") or []
        if any(d.device_id == device_id for d in out):
            return f"the device plugin's record lists card {device_id} twice"
        out.append(_Device(
            device_id=device_id,
            device_ip=str(entry.get("device_ip") or ""),
            super_device_id=None if super_id is None else str(super_id),
            level_list=tuple(lv for lv in levels if isinstance(lv, Mapping)) if isinstance(levels, list) else (),
        ))
    return tuple(out)


def _server(
    slot: RankTableSlot, pod: Mapping[str, Any] | None, count: int, generation: int, use_host_ip: bool
) -> _Server | str:
    """One replica's entry, or what it still waits for."""
    if not pod:
        return "no pod yet"
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get("suanli.io/generation", str(generation)) != str(generation):
        return f"its pod is from generation {labels.get('suanli.io/generation')}"
    status = pod.get("status") or {}
    pod_ip = str(status.get("podIP") or "")
    if not pod_ip:
        return "its pod has no IP yet"
    raw = device_annotation(pod)
    if raw is None:
        return f"the device plugin has not written {ASCEND_910_ANNOTATION} (or -npu-) on its pod yet"
    try:
        record = json.loads(raw)
    except ValueError:
        return "the device plugin's annotation is not JSON"
    if not isinstance(record, Mapping):
        return "the device plugin's annotation is not a JSON object"
    devices = _parse_devices(record, count, slot.schema)
    if isinstance(devices, str):
        return devices
    host_ip = str(record.get("host_ip") or status.get("hostIP") or "")
    server_id = host_ip if use_host_ip else str(record.get("server_id") or meta.get("uid") or "")
    if not server_id:
        return "no server id: the pod has neither a host IP nor a UID yet"
    super_pod = record.get("super_pod_id")
    return _Server(
        replica=slot.replica,
        server_id=server_id,
        host_ip=host_ip,
        container_ip=pod_ip,
        super_pod_id=super_pod if isinstance(super_pod, int) and not isinstance(super_pod, bool) else None,
        devices=devices,
    )


@dataclass(frozen=True)
class RankTable:
    """A built table: what to write, whether it is complete, and (while not) what it waits for."""

    schema: str
    table: dict[str, Any]
    waiting: tuple[str, ...]

    @property
    def completed(self) -> bool:
        return not self.waiting


def build_rank_table(
    slots: Sequence[RankTableSlot], pods: Mapping[int, Mapping[str, Any]], *, devices_per_replica: int,
    generation: int,
) -> RankTable:
    """The table for these slots from the gang's pods (replica -> pod); ``initializing`` until every entry is real.

    Server ids are unique per pod: the pod UID the device plugin records, or the host IP when every replica has a
    node to itself (MindCluster's onePodOneNode rule), since HCCL rejects two servers with one id.
    """
    ordered = sorted(slots, key=lambda s: s.replica)
    schemas = sorted({s.schema for s in ordered})
    waiting: list[str] = []
    if len(schemas) > 1:
        waiting.append(f"replicas need different rank-table schemas ({', '.join(schemas)}): a gang must not mix "
                       "huawei.com/npu, super-pod and other Ascend servers")
    schema = schemas[0] if len(schemas) == 1 else SCHEMA_1_0
    use_host_ip = len({s.node for s in ordered}) == len(ordered)
    servers: list[_Server] = []
    for slot in ordered:
        found = _server(slot, pods.get(slot.replica), devices_per_replica, generation, use_host_ip)
        if isinstance(found, str):
            waiting.append(f"replica {slot.replica}: {found}")
        else:
            servers.append(found)
    if servers:
        waiting.extend(_schema_problems(schema, servers))
    if waiting or not ordered:
        return RankTable(schema, {"status": INITIALIZING, "version": schema},
                         tuple(waiting) or ("the gang has no replicas",))
    return RankTable(schema, _completed_table(schema, servers, devices_per_replica), ())


def _schema_problems(schema: str, servers: Sequence[_Server]) -> list[str]:
    """Entries that parsed but that HCCL would reject for this schema."""
    problems = []
    if schema == SCHEMA_1_2:
        problems += [f"replica {s.replica}: the device plugin recorded no super_pod_id"
                     for s in servers if s.super_pod_id is None or s.super_pod_id < 0]
        # Inside one super pod HCCL uses the super-pod fabric; across super pods it needs RoCE device IPs.
        needs_ip = len({s.super_pod_id for s in servers}) > 1
    else:
        needs_ip = schema == SCHEMA_1_0
    if needs_ip:
        for s in servers:
            bad = [d.device_id for d in s.devices if d.device_ip in ("", INVALID_DEVICE_IP)]
            if bad:
                problems.append(f"replica {s.replica}: card(s) {', '.join(bad)} have no device IP "
                                f"({INVALID_DEVICE_IP}): the device plugin could not read their RoCE address")
    seen: dict[str, int] = {}
    for s in servers:
        if s.server_id in seen:
            problems.append(f"replicas {seen[s.server_id]} and {s.replica} share server id {s.server_id}")
        seen.setdefault(s.server_id, s.replica)
    return problems


def _completed_table(schema: str, servers: Sequence[_Server], count: int) -> dict[str, Any]:
    if schema == SCHEMA_2_0:
        return _table_2_0(servers, count)
    server_list = []
    for s in servers:
        devices = []
        for index, d in enumerate(s.devices):
            device = {"device_id": d.device_id, "device_ip": d.device_ip, "rank_id": str(s.replica * count + index)}
            if schema == SCHEMA_1_2:
                device["super_device_id"] = d.super_device_id or ""
            devices.append(device)
        server_list.append({"server_id": s.server_id, "host_ip": s.host_ip, "container_ip": s.container_ip,
                            "device": devices})
    table: dict[str, Any] = {
        "status": COMPLETED,
        "version": schema,
        "server_count": str(len(server_list)),
        "server_list": server_list,
    }
    if schema == SCHEMA_1_2:
        pods: dict[int, list[dict[str, str]]] = {}
        for s in servers:
            pods.setdefault(s.super_pod_id or 0, []).append({"server_id": s.server_id})
        table["super_pod_list"] = [
            {"super_pod_id": str(pod_id), "server_list": members} for pod_id, members in sorted(pods.items())
        ]
    return table


def _table_2_0(servers: Sequence[_Server], count: int) -> dict[str, Any]:
    port = next(
        (p for p in _PORT_PRIORITY
         for s in servers for d in s.devices for lv in d.level_list if p in (lv.get("info") or {})),
        "",
    )
    ranks = []
    for s in servers:
        for index, d in enumerate(s.devices):
            ranks.append({
                "rank_id": s.replica * count + index,
                "local_id": int(d.device_id),
                "device_id": int(d.device_id),
                "level_list": _levels(d.level_list, port),
            })
    return {"status": COMPLETED, "version": SCHEMA_2_0, "rank_count": len(ranks), "rank_list": ranks}


def _levels(level_list: Sequence[Mapping[str, Any]], port: str) -> list[Any]:
    """Levels 0 and 1 as recorded; level 2 only for UB ports and level 3 only for RoCE, as MindCluster keeps."""
    out = []
    for entry in sorted(level_list, key=lambda lv: int(lv.get("level", 0))):
        level = int(entry.get("level", 0))
        info = entry.get("info") or {}
        if not isinstance(info, Mapping) or not info:
            continue
        if level in (0, 1):
            out.append(info[sorted(info)[0]])
        elif port in info and ((level == 2 and port in ("UBOE", "UBG")) or (level == 3 and port == "ROCE")):
            out.append(info[port])
    return out


def rank_table_name(job_name: str) -> str:
    """MindCluster's name for a job's rank-table ConfigMap."""
    return f"rings-config-{job_name}"


def rank_table_config_map(
    job: AITrainingJob, slots: Sequence[RankTableSlot], pods: Mapping[int, Mapping[str, Any]],
    owner: Mapping[str, Any], labels: Mapping[str, str],
) -> dict[str, Any]:
    """The ConfigMap for ``job``'s current generation (job.status.generation) with the table built from ``pods``."""
    generation = job.status.generation
    built = build_rank_table(slots, pods, devices_per_replica=job.spec.accelerators_per_replica,
                             generation=generation)
    text = _dump(built.table)
    waiting = built.waiting
    if len(text) > MAX_TABLE_BYTES:
        waiting = (f"the table takes {len(text)} bytes, more than one ConfigMap holds ({MAX_TABLE_BYTES}): "
                   "split the job into fewer replicas",)
        text = _dump({"status": INITIALIZING, "version": built.schema})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": rank_table_name(job.name),
            "namespace": job.namespace or "default",
            "labels": dict(labels),
            "ownerReferences": [dict(owner)],
        },
        # The same three keys every time: a merge patch never deletes a key it does not mention.
        "data": {
            RANK_TABLE_KEY: text,
            GENERATION_KEY: str(generation),
            WAITING_KEY: "\n".join(waiting),
        },
    }


def _dump(table: Mapping[str, Any]) -> str:
    return json.dumps(table, separators=(",", ":"))


def rank_table_stale(data: Mapping[str, Any] | None, generation: int) -> bool:
    """Does this ConfigMap data (as found on the server) belong to another gang than ``generation``?

    True for a missing or foreign generation key too: such a table must be replaced with the initializing one
    before the new gang's pods start, or they could read the previous gang's ``completed`` table.
    """
    return not data or str(data.get(GENERATION_KEY, "")) != str(generation)


def rank_table_wait_script() -> str:
    """The init container's shell: wait for this generation's completed table, then copy it to a regular file."""
    return (
        "set -eu\n"
        f"src=${{SUANLI_RANK_TABLE_SOURCE:-{RANK_TABLE_SOURCE_DIR}}}\n"
        f"dst=${{SUANLI_RANK_TABLE_DIR:-{RANK_TABLE_DIR}}}\n"
        f"deadline=$(( $(date +%s) + ${{SUANLI_RANK_TABLE_WAIT_SECONDS:-{RANK_TABLE_WAIT_SECONDS}}} ))\n"
        f'until [ "$(cat $src/{GENERATION_KEY} 2>/dev/null)" = "$SUANLI_GENERATION" ] && '
        f"grep -q '{COMPLETED_MARK}' $src/{RANK_TABLE_KEY} 2>/dev/null; do\n"
        '  if [ "$(date +%s)" -ge "$deadline" ]; then\n'
        '    echo "rank table of generation $SUANLI_GENERATION not completed in time; waiting for:" >&2\n'
        f"    cat $src/{WAITING_KEY} >&2 || true\n"
        "    exit 1\n"
        "  fi\n"
        "  sleep 2\n"
        "done\n"
        f"cp $src/{RANK_TABLE_KEY} $dst/{RANK_TABLE_KEY}.tmp && mv $dst/{RANK_TABLE_KEY}.tmp $dst/{RANK_TABLE_KEY}\n"
    )


def rank_table_init_container(image: str, generation: int) -> dict[str, Any]:
    """The init container of an Ascend pod: the trainer starts only once its table is complete and a real file.

    It runs the job's own image (any CANN image has a POSIX shell) and requests nothing, so it neither needs
    nor holds an NPU; the kubelet has already allocated the pod's cards when init containers start, which is
    what lets the device plugin write the annotation the table waits for.
    """
    return {
        "name": "rank-table",
        "image": image,
        "command": ["/bin/sh", "-c", rank_table_wait_script()],
        "env": [{"name": "SUANLI_GENERATION", "value": str(generation)}],
        "volumeMounts": [
            {"name": RANK_TABLE_SOURCE_VOLUME, "mountPath": RANK_TABLE_SOURCE_DIR, "readOnly": True},
            {"name": RANK_TABLE_VOLUME, "mountPath": RANK_TABLE_DIR},
        ],
    }


def rank_table_volumes(job_name: str) -> list[dict[str, Any]]:
    """The ConfigMap (source) and the emptyDir the init container copies the table into."""
    return [
        {"name": RANK_TABLE_SOURCE_VOLUME, "configMap": {"name": rank_table_name(job_name)}},
        {"name": RANK_TABLE_VOLUME, "emptyDir": {}},
    ]
