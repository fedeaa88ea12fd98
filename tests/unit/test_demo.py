"""The demo's pure parts: its fleet and story (checked against the real planner), the table and the picture."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))

import demo  # noqa: E402
import demo_fleet as fleet  # noqa: E402
import demo_report as report  # noqa: E402

from suanli.api.aitrainingjob import parse_job  # noqa: E402
from suanli.controller.requests import gang_request  # noqa: E402
from suanli.inventory import LINK_DOMAIN_ANNOTATION, Inventory, format_link_domains  # noqa: E402
from suanli.placement import Placement, plan  # noqa: E402
from suanli.topology import Level  # noqa: E402

# -- fixtures ----------------------------------------------------------------------------------------------


def ascend_node(name: str, rack: str = "r1", zone: str = "z1", region: str = "east") -> dict[str, Any]:
    return fleet.node_dict(name, fleet.HUAWEI, rack, zone, region)


def other_pod(node: str, cards: int, name: str = "p") -> dict[str, Any]:
    return fleet.pod_dict("other", name, node, "huawei.com/Ascend910", cards)


def job(name: str, *, phase: str, placement: list[dict[str, Any]] | None = None, candidate: int | None = None,
        per_replica: int = 8, replicas: int = 2, reason: str | None = None, message: str | None = None,
        ) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "placement": placement or []}
    if candidate is not None:
        status |= {"candidateIndex": candidate, "vendor": "nvidia", "model": "H100"}
    if reason:
        status |= {"reason": reason, "message": message}
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "acceleratorsPerReplica": per_replica,
                 "candidates": [{"vendor": "huawei", "model": "Ascend910B"}, {"vendor": "nvidia", "model": "H100"}]},
        "status": status,
    }


def replica(i: int, node: str, rack: str, zone: str = "z1", link: str | None = None) -> dict[str, Any]:
    return {"replica": i, "node": node, "rack": rack, "zone": zone, "region": "east", "linkDomain": link}


# -- the fleet and the story ---------------------------------------------------------------------------------


def test_fleet_is_kwok_nodes_of_three_vendors_in_two_regions() -> None:
    nodes = fleet.fleet_nodes()
    assert len(nodes) == len(fleet.LAYOUT) * fleet.NODES_PER_RACK == 80
    assert all(n["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"} for n in nodes)
    seen = report.read_nodes(nodes)  # through the operator's own discovery
    assert len(seen) == len(nodes)
    assert Counter(n.model for n in seen) == {"Ascend910B": 24, "H100": 32, "DCU-K100-AI": 24}
    assert {n.region for n in seen} == {"cn-east", "cn-north"}
    assert len({n.zone for n in seen}) == 4 and len({n.rack for n in seen}) == 10
    assert all(n.cards == 8 for n in seen)


@pytest.mark.parametrize(("cards", "sizes"), [(0, []), (8, [8]), (6, [4, 2]), (7, [4, 2, 1]), (3, [2, 1])])
def test_split_cards(cards: int, sizes: list[int]) -> None:
    assert fleet.split_cards(cards) == sizes


def test_split_cards_refuses_more_than_a_server() -> None:
    with pytest.raises(ValueError, match=r"0\.\.8"):
        fleet.split_cards(9)


def test_other_team_pods_hold_what_the_layout_says() -> None:
    held: Counter[str] = Counter()
    for pod in fleet.other_team_pods():
        assert pod["metadata"]["namespace"] == fleet.OTHER_TEAMS
        held[pod["spec"]["nodeName"]] += sum(int(v) for k, v in pod["spec"]["containers"][0]["resources"]
                                             ["requests"].items() if "/" in k)
    for rack in fleet.LAYOUT:
        for i, digit in enumerate(rack.busy):
            assert held[fleet.node_name(rack, i)] == int(digit)


def test_layout_rejects_a_rack_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="e9: busy needs 8 digits"):
        fleet.other_team_pods([fleet.Rack("r", "z", "e9", fleet.HUAWEI, "888")])


def _play_story() -> dict[str, Any]:
    """The demo's submissions, one at a time, through the real planner and inventory (no cluster)."""
    inventory = Inventory()
    for node in fleet.fleet_nodes():
        inventory.upsert_node(node)
    for pod in fleet.other_team_pods():
        inventory.upsert_pod({**pod, "status": {"phase": "Running"}})
    examples = fleet.load_examples(ROOT / "examples")
    outcomes: dict[str, Any] = {}
    for name in fleet.submission_order(examples):
        body = {**examples[name], "metadata": {**examples[name]["metadata"], "namespace": "default"}}
        parsed = parse_job(body)
        outcome = plan(inventory, gang_request(parsed))
        outcomes[name] = outcome
        if isinstance(outcome, Placement):
            requests = parsed.spec.template.resources.requests
            for r in outcome.replicas:
                inventory.upsert_pod(fleet.pod_dict(
                    "default", f"{name}-{r.index}", r.node, r.resource, r.count,
                    str(requests.get("cpu", "0")), str(requests.get("memory", "0")),
                    {LINK_DOMAIN_ANNOTATION: format_link_domains(r.link_domains)}))
    return outcomes


def test_story_shows_a_fallback_and_pending_jobs_with_reasons() -> None:
    outcomes = _play_story()
    assert set(fleet.SUBMIT_ORDER) <= set(outcomes), "an example the story relies on is missing"
    fallback = outcomes[fleet.EXPECT_FALLBACK]
    assert isinstance(fallback, Placement) and fallback.candidate_index > 0
    assert fallback.vendor != "huawei"  # its first choice, Ascend, is full
    for name in fleet.EXPECT_PENDING:
        assert not isinstance(outcomes[name], Placement)
        assert outcomes[name].summary
    mixed = outcomes["elastic-mixed"]
    assert isinstance(mixed, Placement) and mixed.vendor == "mixed", "the mixing example really mixes"
    assert {r.vendor for r in mixed.replicas} == {"huawei", "nvidia"} and mixed.span[Level.ZONE] == 1
    placed = {n for n, o in outcomes.items() if isinstance(o, Placement)}
    assert placed == set(outcomes) - set(fleet.EXPECT_PENDING)
    # The free Ascend rack goes to the first big Ascend job, packed in one rack.
    mindspore = outcomes["pangu-mindspore"]
    assert isinstance(mindspore, Placement)
    assert {r.node.rsplit("-", 1)[0] for r in mindspore.replicas} == {"e1a-r1"}


def test_submission_order_puts_the_story_first_then_the_rest_alphabetically() -> None:
    assert fleet.submission_order(["zeta", "huge-stays-pending", "alpha", "pangu-mindspore"]) == [
        "pangu-mindspore", "huge-stays-pending", "alpha", "zeta"]


def test_simulated_adds_kwok_annotations_without_touching_the_original() -> None:
    original = {"metadata": {"name": "j"}, "spec": {"template": {"annotations": {"team": "a"}}}}
    out = fleet.simulated(original, "12s")
    assert out["spec"]["template"]["annotations"] == {
        "team": "a", "suanli.io/simulate": "succeed", "suanli.io/simulate-after": "12s"}
    assert original["spec"]["template"]["annotations"] == {"team": "a"}


# -- the table ---------------------------------------------------------------------------------------------


def test_table_marks_fallback_and_explains_pending() -> None:
    jobs = [
        job("gpt", phase="Succeeded", candidate=1,
            placement=[replica(0, "a", "r1"), replica(1, "b", "r2"), replica(2, "c", "r3", zone="z2")],
            replicas=3),
        job("huge", phase="Pending", reason="Unschedulable",
            message="default/huge: no room\n- H100: asked 9 replicas; largest free: node a has 8"),
    ]
    text = report.placement_table(jobs, {"gpt": 0.42})
    lines = text.splitlines()
    assert lines[0].split() == ["JOB", "PHASE", "ACCELERATOR", "CANDIDATE", "REPLICAS", "RACKS", "ZONES", "TO",
                                "RUNNING"]
    gpt = next(line for line in lines if line.startswith("gpt"))
    assert gpt.split() == ["gpt", "Succeeded", "nvidia/H100", "1", "fallback", "3/3", "x8", "3", "(r1,r2,…)",
                           "2", "(z1,z2)", "0.4s"]
    huge = next(line for line in lines if line.startswith("huge"))
    assert huge.split() == ["huge", "Pending", "-", "-", "0/2", "x8", "-", "-", "-"]
    why = text[text.index("Not placed"):]
    assert "huge: Unschedulable" in why
    assert "    - H100: asked 9 replicas\n" in why and "      largest free: node a has 8" in why


def test_table_counts_a_mixed_gang_per_vendor() -> None:
    mixed = job("elastic", phase="Running", candidate=0, replicas=3,
                placement=[{**replica(i, f"n{i}", "r1"), "candidateIndex": c} for i, c in enumerate((1, 0, 1))])
    mixed["status"] |= {"vendor": None, "model": "mixed"}
    row = next(line for line in report.placement_table([mixed], {}).splitlines() if line.startswith("elastic"))
    assert row.split()[2] == "mixed(nvidia=2,huawei=1)"


def test_table_of_first_choice_job_says_candidate_zero() -> None:
    text = report.placement_table([job("a", phase="Running", candidate=0, placement=[replica(0, "n", "r")])], {})
    row = text.splitlines()[2].split()
    assert row[3] == "0" and "fallback" not in text and "Not placed" not in text


# -- the picture -------------------------------------------------------------------------------------------


def test_card_owners_follow_link_domains() -> None:
    nodes = report.read_nodes([ascend_node("n1"), ascend_node("n2")])
    jobs = [job("j", phase="Running", per_replica=2, placement=[replica(0, "n1", "r1", link="1")])]
    owners = report.card_owners(nodes, [other_pod("n1", 4), other_pod("n2", 8, "q")], jobs)
    # The replica sits in ring 1 as recorded; the other team's 4-card pod fills ring 0, as the inventory would.
    assert owners["n1"] == (report.OTHERS,) * 4 + ("j", "j", None, None)
    assert owners["n2"] == (report.OTHERS,) * 8


def test_card_owners_skip_job_pods_and_finished_pods() -> None:
    nodes = report.read_nodes([ascend_node("n1")])
    ours = other_pod("n1", 8, "ours")
    ours["metadata"]["labels"] = {report.JOB_LABEL: "j"}
    done = other_pod("n1", 8, "done")
    done["status"]["phase"] = "Succeeded"
    assert report.card_owners(nodes, [ours, done], []) == {"n1": (None,) * 8}


def _picture() -> str:
    nodes = [ascend_node("n1", "r1", "z1"), ascend_node("n2", "r1", "z1"),
             fleet.node_dict("g1", fleet.NVIDIA, "r2", "z2", "north")]
    jobs = [job("first", phase="Running", candidate=0, per_replica=8, placement=[replica(0, "n1", "r1", link="0+1")]),
            job("fell-back", phase="Running", candidate=1, per_replica=4, placement=[replica(0, "g1", "r2")]),
            job("waits", phase="Pending", reason="Unschedulable", message="default/waits: no room for 9 <replicas>")]
    return report.fleet_svg(nodes, [other_pod("n2", 2)], jobs, title="T & co")


def test_svg_is_wellformed_and_draws_every_level() -> None:
    svg = _picture()
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for label in ("region east", "region north", "zone z1", "zone z2", "rack r1", "rack r2", "T & co"):
        assert label in texts
    assert ("3 nodes · 24 accelerators (Huawei, NVIDIA) · 2 regions · 2 zones · 2 racks · "
            "14/24 cards held at the peak") in texts
    assert report.svg_size(svg) == (int(root.get("width", "0")), int(root.get("height", "0")))


def test_svg_colours_cards_by_job_and_marks_fallback_and_pending() -> None:
    svg = _picture()
    colours = report.job_colours([job("first", phase="Running", placement=[replica(0, "n1", "r1")]),
                                  job("fell-back", phase="Running", placement=[replica(0, "g1", "r2")])])
    root = ET.fromstring(svg)
    fills = Counter(r.get("fill") for r in root.iter("{http://www.w3.org/2000/svg}rect")
                    if r.get("class") == "card")
    assert fills[colours["first"]] == 8 and fills[colours["fell-back"]] == 4
    assert fills[report.OTHERS_COLOUR] == 2 and fills[report.FREE_COLOUR] == 24 - 14
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "FALLBACK from Ascend910B (candidate 1)" in texts
    assert any(t.startswith("not placed · Unschedulable: no room for 9 <replicas>") for t in texts)


def test_html_is_self_contained() -> None:
    page = report.fleet_html(_picture(), "JOB <table>")
    assert page.startswith("<!doctype html>") and "<svg" in page and "JOB &lt;table&gt;" in page
    assert "<script" not in page and "src=" not in page and "href=" not in page


def test_svg_size_refuses_other_markup() -> None:
    with pytest.raises(ValueError, match="width/height"):
        report.svg_size("<svg/>")


# -- the demo's verdict -------------------------------------------------------------------------------------


def _story_jobs(fallback_index: int) -> list[dict[str, Any]]:
    jobs = [job(n, phase="Succeeded", candidate=0, placement=[replica(0, "a", "r")]) for n in ("one", "two")]
    jobs.append(job(fleet.EXPECT_FALLBACK, phase="Succeeded", candidate=fallback_index,
                    placement=[replica(0, "b", "r")]))
    jobs += [job(n, phase="Pending", reason="Unschedulable", message="no room") for n in fleet.EXPECT_PENDING]
    return jobs


def test_check_passes_when_the_story_happened() -> None:
    assert demo.check(_story_jobs(2), dict.fromkeys(["one", "two", fleet.EXPECT_FALLBACK], 0.5)) == []


def test_check_names_each_thing_that_did_not_happen() -> None:
    jobs = _story_jobs(0)
    jobs[0]["status"]["phase"] = "Running"
    jobs[-1]["status"] = {"phase": "Pending", "reason": "Queued"}
    problems = demo.check(jobs, {"one": 0.5, fleet.EXPECT_FALLBACK: 0.5})
    assert problems == [
        f"{fleet.EXPECT_FALLBACK} did not fall back to a later candidate",
        f"{fleet.EXPECT_PENDING[1]} is not Pending with a reason and message (phase Pending)",
        "one ended Running, not Succeeded",
        "two never reached Running",
    ]
