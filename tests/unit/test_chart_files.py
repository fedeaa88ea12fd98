"""The chart's static files: CRD copies in sync, values and schema agree, the dashboard matches the metrics.

Rendering and installing the chart needs the helm binary and lives in tests/integration/test_chart.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "suanli"


def test_chart_crds_are_byte_identical_copies_of_crds() -> None:
    source = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    stale = sorted(n for n in source.keys() | copies.keys() if source.get(n) != copies.get(n))
    assert not stale, (
        f"helm/suanli/crds/ differs from crds/ ({', '.join(stale)}): run `make crds`, then "
        "`rm -f helm/suanli/crds/suanli.io_*.yaml && cp crds/*.yaml helm/suanli/crds/` and commit both"
    )


def _schema_objects(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if "properties" in node:
        found.append((path or "<root>", node))
        for key, child in node["properties"].items():
            found += _schema_objects(child, f"{path}.{key}" if path else key)
    if isinstance(node.get("items"), dict):
        found += _schema_objects(node["items"], f"{path}[]")
    return found


def test_schema_closes_every_object_so_typos_fail() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects = [p for p, node in _schema_objects(schema) if node.get("additionalProperties") is not False]
    assert not open_objects, f"objects without additionalProperties: false: {open_objects}"


def _check_against_schema(values: Any, schema: dict[str, Any], path: str, missing: list[str]) -> None:
    if isinstance(values, dict) and "properties" in schema:
        for key, value in values.items():
            if key not in schema["properties"]:
                missing.append(f"{path}.{key}".lstrip("."))
            else:
                _check_against_schema(value, schema["properties"][key], f"{path}.{key}", missing)


def test_every_default_value_is_described_by_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing: list[str] = []
    _check_against_schema(values, schema, "", missing)
    assert not missing, f"values.yaml keys the schema does not declare: {missing}"
    assert set(schema["properties"]) == set(values), "every top-level schema key has a default in values.yaml"


# --- the Grafana dashboard ----------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((CHART / "dashboards" / "suanli.json").read_text()))


def _exprs() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _exported_metrics() -> set[str]:
    """Metric names the operator defines, read from its source so a rename fails here."""
    source = (ROOT / "operator" / "suanli" / "metrics.py").read_text()
    return set(re.findall(r'"(suanli_[a-z_]+)"', source))


def test_dashboard_charts_every_metric_the_operator_exports() -> None:
    exported = _exported_metrics()
    assert {"suanli_jobs", "suanli_scheduling_latency_seconds", "suanli_placement_span", "suanli_accelerators",
            "suanli_accelerator_seconds_total", "suanli_gang_restarts_total", "suanli_nodes"} <= exported
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in _exprs() for m in re.findall(r"\bsuanli_\w+", e)}
    assert exported - used == set(), f"metrics without a panel: {sorted(exported - used)}"
    assert used - exported == set(), f"panels query metrics the operator does not export: {sorted(used - exported)}"


def test_dashboard_histograms_are_queried_through_buckets() -> None:
    for expr in _exprs():
        for histogram in ("suanli_scheduling_latency_seconds", "suanli_placement_span"):
            if histogram in expr:
                assert f"{histogram}_bucket" in expr and "histogram_quantile" in expr, expr


def test_dashboard_layout_is_valid() -> None:
    dash = _dashboard()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"] and panel["description"], panel["title"]
    variables = {v["name"] for v in dash["templating"]["list"]}
    referenced = {v for e in _exprs() for v in re.findall(r"\$(\w+)", e) if not v.startswith("__")}
    assert referenced <= variables


@pytest.mark.parametrize("name", ["Chart.yaml", "values.yaml"])
def test_chart_yaml_files_parse(name: str) -> None:
    assert isinstance(yaml.safe_load((CHART / name).read_text()), dict)


# --- the manifest scanner's exceptions ----------------------------------------------------------------


def test_every_checkov_exception_is_justified_in_docs_security() -> None:
    """`make lint` fails on any checkov finding not skipped in hack/checkov/config.yaml; each skip must have
    its row in docs/security.md, and the doc must not justify checks no longer skipped."""
    skipped = set(yaml.safe_load((ROOT / "hack" / "checkov" / "config.yaml").read_text())["skip-check"])
    rows = set(re.findall(r"^\| `(CKV_K8S_\d+)` ", (ROOT / "docs" / "security.md").read_text(), re.M))
    assert skipped == rows, f"skipped but not justified: {sorted(skipped - rows)}; justified but not skipped: " \
                            f"{sorted(rows - skipped)}"


def test_checkov_and_its_dependencies_are_pinned() -> None:
    lines = [line for line in (ROOT / "hack" / "checkov" / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    assert "checkov==3.3.30" in lines
    unpinned = [line for line in lines if "==" not in line]
    assert not unpinned, f"every requirement is pinned (pip freeze), or the scan changes under us: {unpinned}"
