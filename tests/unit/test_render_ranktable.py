"""The Ascend rank table's whole lifecycle, checked against MindCluster's documented formats.

Sources (also in tests/fixtures/vendors/ascend.json): the device plugin's pod annotation is built with the JSON
fields of Ascend/mind-cluster component/ascend-device-plugin/pkg/common/proto.go (Instance, Device); the tables
are compared with docs/en/scheduling/api/hccl.json_file_description.md and a completed 1.2 table logged in
docs/en/faultdiag/user_guide/03_collecting_logs.md.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from suanli.api import parse_job
from suanli.inventory.pods import pod_usage
from suanli.render import GangSlot, build_pod, build_rank_table_config_map, rank_table_schema, rank_table_stale
from suanli.render.ranktable import (
    ASCEND_910_ANNOTATION,
    ASCEND_NPU_ANNOTATION,
    COMPLETED_MARK,
    RankTableSlot,
    build_rank_table,
    rank_table_wait_script,
)

FIXTURES = json.loads((Path(__file__).parent.parent / "fixtures" / "vendors" / "ascend.json").read_text())
A910 = "huawei.com/Ascend910"


def job(replicas: int = 2, per_replica: int = 8, restarts: int = 0, **spec: Any) -> Any:
    return parse_job({
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": "llama", "namespace": "team-a", "uid": "u-1"},
        "spec": {
            "replicas": replicas,
            "acceleratorsPerReplica": per_replica,
            "candidates": [{"vendor": "huawei", "image": "img:cann"}],
            **spec,
        },
        "status": {"phase": "Running", "restarts": restarts},
    })


def plugin_annotation(
    devices: list[tuple[int, str]], *, server_id: str, host_ip: str, super_pod_id: int = -1,
    super_ids: list[str] | None = None, levels: list[Any] | None = None,
) -> str:
    """The value MindCluster's device plugin writes (proto.go Instance/Device; common.go GetPodConfiguration)."""
    entries = []
    for index, (device_id, device_ip) in enumerate(devices):
        entry: dict[str, Any] = {"device_id": str(device_id), "device_ip": device_ip}
        if super_ids is not None:
            entry["super_device_id"] = super_ids[index]
        if levels is not None:
            entry["levelList"] = levels
        entries.append(entry)
    return json.dumps({"pod_name": "p", "server_id": server_id, "host_ip": host_ip, "super_pod_id": super_pod_id,
                       "devices": entries, "rack_id": 0, "server_index": "0", "server_ip": host_ip})


def pod(replica: int, *, ip: str | None, host: str, annotation: str | None = None, uid: str = "",
        generation: int = 0, key: str = ASCEND_910_ANNOTATION) -> dict[str, Any]:
    annotations = {key: annotation} if annotation is not None else {}
    return {
        "metadata": {"name": f"llama-g{generation}-{replica}", "uid": uid or f"uid-{replica}",
                     "labels": {"suanli.io/generation": str(generation), "suanli.io/replica": str(replica)},
                     "annotations": annotations},
        "status": {"hostIP": host, **({"podIP": ip} if ip else {})},
    }


def table_of(cm: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cm["data"]["hccl.json"])
    return result


def slots(*nodes: str, resource: str = A910, schema: str | None = None) -> list[GangSlot]:
    return [GangSlot(i, n, resource, "huawei", "img:cann", rank_table_schema=schema) for i, n in enumerate(nodes)]


@pytest.mark.parametrize(
    ("resource", "labels", "schema"),
    [
        ("huawei.com/npu", {}, "2.0"),
        (A910, {"accelerator-type": "module-a3-16-super-pod"}, "1.2"),
        (A910, {"accelerator-type": "module-a3-8-super-pod"}, "1.2"),
        (A910, {"accelerator-type": "module-a3-16"}, "1.0"),
        (A910, {"accelerator-type": "module-910b-8"}, "1.0"),
    ],
)
def test_schema_follows_mindcluster_factory(resource: str, labels: dict[str, str], schema: str) -> None:
    # Ascend/mind-cluster component/ascend-operator/pkg/ranktable/factory.go: useV2dot0 / useV1dot2.
    assert rank_table_schema(resource, labels) == schema


def test_new_generation_starts_initializing_and_says_what_it_waits_for() -> None:
    cm = build_rank_table_config_map(job(restarts=3), slots("n0", "n1"), {})
    assert cm["metadata"]["name"] == "rings-config-llama" and cm["metadata"]["namespace"] == "team-a"
    assert table_of(cm) == {"status": "initializing", "version": "1.0"}
    assert cm["data"]["generation"] == "3"
    assert cm["data"]["waiting"] == "replica 0: no pod yet\nreplica 1: no pod yet"
    assert set(cm["data"]) == {"hccl.json", "generation", "waiting"}, "same keys always: merge patches never delete"


def test_completed_1_0_table_takes_ids_and_ips_only_from_the_device_plugin() -> None:
    j = job()
    # The kubelet gave replica 0 cards 4..7 and 0..3 of a ring, not what a planner would guess.
    r0 = plugin_annotation([(d, f"10.0.0.{d}") for d in (0, 1, 2, 3, 4, 5, 6, 7)], server_id="uid-0",
                           host_ip="192.168.1.10")
    r1 = plugin_annotation([(d, f"10.0.1.{d}") for d in range(8)], server_id="uid-1", host_ip="192.168.1.11")
    pods = {0: pod(0, ip="172.16.0.5", host="192.168.1.10", annotation=r0),
            1: pod(1, ip="172.16.0.6", host="192.168.1.11", annotation=r1)}
    cm = build_rank_table_config_map(j, slots("n0", "n1"), pods)
    table = table_of(cm)
    keys = FIXTURES["hccl_1_0_keys"]
    assert sorted(table) == sorted(keys["table"]) and table["status"] == "completed" and table["version"] == "1.0"
    assert table["server_count"] == "2" and cm["data"]["waiting"] == ""
    first, second = table["server_list"]
    assert sorted(second) == sorted(keys["server"]) and sorted(second["device"][0]) == sorted(keys["device"])
    # Every replica on its own node: server ids are host IPs, as MindCluster's onePodOneNode rule writes them.
    assert (first["server_id"], second["server_id"]) == ("192.168.1.10", "192.168.1.11")
    assert second["container_ip"] == "172.16.0.6" and second["host_ip"] == "192.168.1.11"
    assert second["device"][3] == {"device_id": "3", "device_ip": "10.0.1.3", "rank_id": "11"}
    assert [d["rank_id"] for s in table["server_list"] for d in s["device"]] == [str(i) for i in range(16)]


def test_two_replicas_on_one_node_get_unique_server_ids() -> None:
    j = job(per_replica=4)
    pods = {
        r: pod(r, ip=f"172.16.0.{r + 5}", host="192.168.1.10", uid=f"pod-uid-{r}",
               annotation=plugin_annotation([(d, f"10.0.0.{d}") for d in range(4 * r, 4 * r + 4)],
                                            server_id=f"pod-uid-{r}", host_ip="192.168.1.10"))
        for r in (0, 1)
    }
    table = table_of(build_rank_table_config_map(j, slots("n0", "n0"), pods))
    assert table["status"] == "completed"
    assert [s["server_id"] for s in table["server_list"]] == ["pod-uid-0", "pod-uid-1"]
    assert [d["device_id"] for d in table["server_list"][1]["device"]] == ["4", "5", "6", "7"]


@pytest.mark.parametrize(
    ("pods", "fragment"),
    [
        ({0: pod(0, ip="172.16.0.5", host="h0")}, "has not written ascend.kubectl.kubernetes.io/ascend-910"),
        ({0: pod(0, ip=None, host="h0", annotation=plugin_annotation([(0, "10.0.0.1")] * 8, server_id="u",
                                                                      host_ip="h0"))}, "no IP yet"),
        ({0: pod(0, ip="172.16.0.5", host="h0", annotation="{nope")}, "not JSON"),
        ({0: pod(0, ip="172.16.0.5", host="h0", annotation="[1]")}, "not a JSON object"),
        ({0: pod(0, ip="172.16.0.5", host="h0",
                 annotation=plugin_annotation([(0, "10.0.0.1")] * 4, server_id="u", host_ip="h0"))},
         "lists 4 devices, the replica requested 8"),
        ({0: pod(0, ip="172.16.0.5", host="h0",
                 annotation=plugin_annotation([(d, "-1" if d == 2 else f"10.0.0.{d}") for d in range(8)],
                                              server_id="u", host_ip="h0"))},
         "card(s) 2 have no device IP (-1)"),
        ({0: pod(0, ip="172.16.0.5", host="h0", annotation=json.dumps({"devices": [{"device_id": "x"}] * 8}))},
         "device_id 'x'"),
        ({0: pod(0, ip="172.16.0.5", host="h0",
                 annotation=plugin_annotation([(d % 7, f"10.0.0.{d}") for d in range(8)], server_id="u",
                                              host_ip="h0"))}, "lists card 0 twice"),
        ({0: pod(0, ip="172.16.0.5", host="h0", generation=7,
                 annotation=plugin_annotation([(d, f"10.0.0.{d}") for d in range(8)], server_id="u",
                                              host_ip="h0"))}, "from generation 7"),
    ],
)
def test_initializing_until_every_entry_is_real(pods: dict[int, Any], fragment: str) -> None:
    cm = build_rank_table_config_map(job(replicas=1), slots("n0"), pods)
    assert table_of(cm) == {"status": "initializing", "version": "1.0"}, "never a guessed or partial table"
    assert fragment in cm["data"]["waiting"], cm["data"]["waiting"]


def test_documented_a3_super_pod_table_is_reproduced_as_version_1_2() -> None:
    documented = FIXTURES["hccl_1_2_a3_one_server"]
    expected = documented["table"]
    server = expected["server_list"][0]
    annotation = plugin_annotation(
        [(int(d["device_id"]), d["device_ip"]) for d in server["device"]],
        server_id="pod-uid", host_ip=server["server_id"], super_pod_id=documented["super_pod_id"],
        super_ids=[d["super_device_id"] for d in server["device"]],
    )
    pods = {0: pod(0, ip=server["container_ip"], host=server["server_id"], annotation=annotation)}
    table = table_of(build_rank_table_config_map(
        job(replicas=1, per_replica=16), slots("a3-0", schema="1.2"), pods))
    for ours in table["server_list"]:
        assert ours.pop("host_ip") == server["server_id"]  # newer MindCluster writes host_ip; the log predates it
    assert table == expected


def test_super_pod_tables_need_super_ids_and_ips_only_across_super_pods() -> None:
    def a3_pod(replica: int, super_pod: int, ip: str, super_id: str = "1000") -> dict[str, Any]:
        return pod(replica, ip=f"172.16.0.{replica + 5}", host=f"h{replica}", annotation=plugin_annotation(
            [(d, ip) for d in range(2)], server_id=f"u{replica}", host_ip=f"h{replica}", super_pod_id=super_pod,
            super_ids=[super_id, super_id]))

    def built(*pods: dict[str, Any]) -> Any:
        return build_rank_table([RankTableSlot(i, f"n{i}", A910, "1.2") for i in range(len(pods))],
                                dict(enumerate(pods)), devices_per_replica=2, generation=0)

    inside = built(a3_pod(0, 5, "-1"), a3_pod(1, 5, "-1"))
    assert inside.completed, "one super pod: HCCL uses the super-pod fabric, no RoCE IP needed"
    assert inside.table["super_pod_list"] == [{"super_pod_id": "5", "server_list": [{"server_id": "h0"},
                                                                                      {"server_id": "h1"}]}]
    across = built(a3_pod(0, 5, "-1"), a3_pod(1, 6, "10.0.0.1"))
    assert not across.completed and "replica 0: card(s) 0, 1 have no device IP" in across.waiting[0]
    no_super_id = built(a3_pod(0, 5, "10.0.0.1", super_id="-2"))
    assert not no_super_id.completed and "super_device_id" in no_super_id.waiting[0]
    no_super_pod = built(a3_pod(0, -1, "10.0.0.1"))
    assert not no_super_pod.completed and "super_pod_id" in no_super_pod.waiting[0]


def test_version_2_0_for_huawei_npu_has_integer_ranks_and_level_list() -> None:
    keys = FIXTURES["hccl_2_0_keys"]
    level0 = {"net_layer": 0, "net_instance_id": "sp1", "net_type": "TOPO_FILE_DESC", "net_attr": "",
              "rank_addr_list": []}
    roce = {"net_layer": 3, "net_instance_id": "cluster", "net_type": "CLOS", "net_attr": "", "rank_addr_list": []}
    uboe = {**roce, "net_layer": 2}
    levels = [{"level": 3, "info": {"ROCE": roce}}, {"level": 0, "info": {"UB": level0}},
              {"level": 2, "info": {"UBOE": uboe}}]
    annotation = plugin_annotation([(d, "") for d in (2, 3)], server_id="u0", host_ip="h0", levels=levels)
    pods = {0: pod(0, ip="172.16.0.5", host="h0", annotation=annotation, key=ASCEND_NPU_ANNOTATION)}
    table = table_of(build_rank_table_config_map(job(replicas=1, per_replica=2),
                                                 slots("n0", resource="huawei.com/npu"), pods))
    assert sorted(table) == sorted(keys["table"]) and table["version"] == "2.0" and table["rank_count"] == 2
    first = table["rank_list"][0]
    assert sorted(first) == sorted(keys["rank"])
    assert (first["rank_id"], first["local_id"], first["device_id"]) == (0, 2, 2)
    # RoCE is present, so (as MindCluster keeps) level 3 stays and the UB level 2 is dropped.
    assert first["level_list"] == [level0, roce]


def test_a_gang_mixing_schemas_never_completes() -> None:
    mixed = [GangSlot(0, "n0", A910, "huawei", "i"), GangSlot(1, "n1", "huawei.com/npu", "huawei", "i")]
    cm = build_rank_table_config_map(job(), mixed, {})
    assert "different rank-table schemas (1.0, 2.0)" in cm["data"]["waiting"]


def test_stale_table_of_an_older_generation_must_be_reset() -> None:
    old = build_rank_table_config_map(job(restarts=1), slots("n0"), {})["data"]
    assert rank_table_stale(old, 2) and not rank_table_stale(old, 1)
    assert rank_table_stale(None, 0) and rank_table_stale({"hccl.json": "{}"}, 0), "unknown origin: replace it"


def test_ascend_pod_reads_a_regular_file_copy_made_by_an_init_container() -> None:
    j = job()
    p = build_pod(j, slots("n0", "n1")[1], world=2, generation=4, scheduler_name="suanli")
    (init,) = p["spec"]["initContainers"]
    assert init["image"] == "img:cann" and "resources" not in init, "it holds no NPU"
    assert {"name": "SUANLI_GENERATION", "value": "4"} in init["env"]
    volumes = {v["name"]: v for v in p["spec"]["volumes"]}
    assert volumes["suanli-rank-table-source"]["configMap"]["name"] == "rings-config-llama"
    assert volumes["suanli-rank-table"] == {"name": "suanli-rank-table", "emptyDir": {}}
    trainer = p["spec"]["containers"][0]
    assert {"name": "suanli-rank-table", "mountPath": "/user/serverid/devindex/config", "readOnly": True} in (
        trainer["volumeMounts"])
    assert all(m["name"] != "suanli-rank-table-source" for m in trainer["volumeMounts"]), "never the symlink"
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert env["RANK_TABLE_FILE"] == "/user/serverid/devindex/config/hccl.json"
    annotation = plugin_annotation([(d, f"10.0.0.{d}") for d in range(8)], server_id="u", host_ip="h0")
    written = build_rank_table_config_map(job(replicas=1), slots("n0"),
                                          {0: pod(0, ip="172.16.0.5", host="h0", annotation=annotation)})
    assert COMPLETED_MARK in written["data"]["hccl.json"], "the init container's grep matches what is written"


def _configmap_volume(root: Path, data: dict[str, str]) -> Path:
    """A directory laid out as the kubelet lays out a ConfigMap volume: files are symlinks into ..data."""
    source = root / "source"
    stamp = source / "..2026_11_30_09_00_00.000000001"
    stamp.mkdir(parents=True)
    for key, value in data.items():
        (stamp / key).write_text(value)
    (source / "..data").symlink_to(stamp.name)
    for key in data:
        (source / key).symlink_to(f"..data/{key}")
    return source


def _run_wait(source: Path, target: Path, generation: int, wait: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUANLI_RANK_TABLE_SOURCE": str(source), "SUANLI_RANK_TABLE_DIR": str(target),
           "SUANLI_GENERATION": str(generation), "SUANLI_RANK_TABLE_WAIT_SECONDS": str(wait)}
    return subprocess.run(["/bin/sh", "-c", rank_table_wait_script()], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


def test_init_script_copies_a_completed_table_of_its_generation_to_a_regular_file(tmp_path: Path) -> None:
    annotation = plugin_annotation([(d, f"10.0.0.{d}") for d in range(8)], server_id="u", host_ip="h0")
    data = build_rank_table_config_map(job(replicas=1, restarts=2), slots("n0"),
                                       {0: pod(0, ip="172.16.0.5", host="h0", annotation=annotation,
                                               generation=2)})["data"]
    source, target = _configmap_volume(tmp_path, data), tmp_path / "config"
    target.mkdir()
    done = _run_wait(source, target, 2, 5)
    assert done.returncode == 0, done.stderr
    copied = target / "hccl.json"
    assert copied.is_file() and not copied.is_symlink(), "torch_npu refuses a symlinked RANK_TABLE_FILE"
    assert json.loads(copied.read_text())["status"] == "completed"


def test_init_script_never_takes_another_generation_and_fails_with_the_reason(tmp_path: Path) -> None:
    annotation = plugin_annotation([(d, f"10.0.0.{d}") for d in range(8)], server_id="u", host_ip="h0")
    previous = build_rank_table_config_map(job(replicas=1, restarts=2), slots("n0"),
                                           {0: pod(0, ip="172.16.0.5", host="h0", annotation=annotation,
                                                   generation=2)})["data"]
    target = tmp_path / "config"
    target.mkdir()
    done = _run_wait(_configmap_volume(tmp_path, previous), target, 3, 1)
    assert done.returncode == 1 and not (target / "hccl.json").exists(), "the previous gang's completed table"
    waiting = build_rank_table_config_map(job(replicas=1, restarts=3), slots("n0"), {})["data"]
    other = tmp_path / "other"
    other.mkdir()
    done = _run_wait(_configmap_volume(other, waiting), target, 3, 1)
    assert done.returncode == 1 and "replica 0: no pod yet" in done.stderr


def test_an_ascend_replica_of_a_mixed_gang_gets_no_table_and_no_wait() -> None:
    p = build_pod(job(), slots("n0")[0], world=2, generation=0, scheduler_name="suanli", rank_table=False)
    assert "initContainers" not in p["spec"], "nothing would ever complete its table"
    names = {e["name"] for e in p["spec"]["containers"][0]["env"]}
    assert not {"RANK_TABLE_FILE", "RANK_SIZE", "SERVER_ID"} & names
    assert all(not v["name"].startswith("suanli-rank-table") for v in p["spec"]["volumes"])


def test_the_waiting_init_container_holds_no_card_in_the_inventory() -> None:
    p = build_pod(job(), slots("n0")[0], world=2, generation=0, scheduler_name="suanli")
    p["spec"]["nodeName"] = "n0"
    usage = pod_usage(p)
    assert usage is not None and usage.cards == {A910: 8}, "the pod holds its 8 NPUs once, not more"


def test_a_table_too_large_for_a_configmap_is_refused_with_a_reason() -> None:
    replicas = 2000
    pods = {}
    for r in range(replicas):
        net = f"{r // 250}.{r % 250}"
        record = plugin_annotation([(d, f"10.{net}.{d}") for d in range(8)], server_id=f"u{r}",
                                   host_ip=f"192.168.{net}")
        pods[r] = pod(r, ip=f"172.16.{net}", host=f"192.168.{net}", annotation=record)
    cm = build_rank_table_config_map(job(replicas=replicas), slots(*(f"n{r}" for r in range(replicas))), pods)
    assert table_of(cm) == {"status": "initializing", "version": "1.0"}
    assert "more than one ConfigMap holds" in cm["data"]["waiting"]
    assert sum(len(v) for v in cm["data"].values()) < 1024 * 1024
