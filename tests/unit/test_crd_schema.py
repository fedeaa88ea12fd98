"""The generated CRD schemas are structural, bounded for CEL, and say what the models say."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.api import KINDS, AITrainingJobSpec, KindInfo
from suanli.api.base import model_rules
from suanli.api.crd import build_crd, model_schema, object_schema, structural_problems, structural_schema
from suanli.api.kinds import AITRAININGJOB


def _nodes(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    if not isinstance(schema, dict):
        return []
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _nodes(schema["additionalProperties"], f"{path}[*]")
    if "items" in schema:
        out += _nodes(schema["items"], f"{path}[*]")
    return out


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_generated_schema_is_structural(info: KindInfo) -> None:
    schema = object_schema(info)
    assert structural_problems(schema) == []
    for path, node in _nodes(schema):
        assert "$ref" not in node and "$defs" not in node, path
        assert not any(k in node for k in ("allOf", "oneOf", "not")), path
        if "anyOf" in node:  # only the int-or-string pattern may use a junctor
            assert node.get("x-kubernetes-int-or-string") is True, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert node.get("default", "absent") is not None, f"{path}: null default"
        if node.get("type") == "array":
            assert "x-kubernetes-list-type" in node, f"{path}: lists need x-kubernetes-list-type"
            assert "maxItems" in node, f"{path}: lists need maxItems"


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_every_field_is_described(info: KindInfo) -> None:
    undocumented = [
        path
        for path, node in _nodes(object_schema(info))
        if path.count(".") >= 2 and "[*]" not in path.split(".")[-1] and not node.get("description")
    ]
    assert undocumented == []


def test_optional_fields_are_not_required_and_not_nullable() -> None:
    spec = model_schema(AITrainingJobSpec)
    assert spec["required"] == ["replicas", "acceleratorsPerReplica", "candidates"]
    assert spec["properties"]["minReplicas"] == {
        "description": spec["properties"]["minReplicas"]["description"],
        "type": "integer",
        "maximum": 10000,
        "minimum": 1,
    }
    assert not any("nullable" in node for _, node in _nodes(spec))


def test_bounds_defaults_and_enums_reach_the_schema() -> None:
    props = model_schema(AITrainingJobSpec)["properties"]
    assert (props["replicas"]["minimum"], props["replicas"]["maximum"]) == (1, 10000)
    assert (props["acceleratorsPerReplica"]["minimum"], props["acceleratorsPerReplica"]["maximum"]) == (1, 64)
    assert (props["rendezvousPort"]["default"], props["rendezvousPort"]["maximum"]) == (29500, 65535)
    assert props["framework"] == {
        "description": props["framework"]["description"],
        "type": "string",
        "default": "pytorch",
        "enum": ["pytorch", "mindspore", "deepspeed", "other"],
    }
    assert props["candidates"]["minItems"] == 1
    vendor = props["candidates"]["items"]["properties"]["vendor"]
    assert vendor["enum"] == ["nvidia", "huawei", "hygon"]
    policy = props["failurePolicy"]
    assert policy["default"] == {}  # so the server fills in maxRestarts and restartOn
    assert policy["properties"]["maxRestarts"]["default"] == 3
    assert policy["properties"]["restartOn"]["x-kubernetes-list-type"] == "set"
    assert props["ttlSecondsAfterFinished"]["minimum"] == 0
    quantity = props["template"]["properties"]["resources"]["properties"]["requests"]["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True


def test_each_cel_rule_is_emitted_with_its_message_and_field() -> None:
    spec = model_schema(AITrainingJobSpec)
    emitted = spec["x-kubernetes-validations"]
    assert [r["rule"] for r in emitted] == [r.cel for r in model_rules(AITrainingJobSpec)]
    by_field = {r.get("fieldPath") for r in emitted}
    assert {".minReplicas", ".candidates", ".acceleratorsPerReplica"} <= by_field
    topology = spec["properties"]["topology"]["x-kubernetes-validations"]
    assert topology[0]["fieldPath"] == ".preferred"


def test_crd_shape() -> None:
    crd = build_crd(AITRAININGJOB)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "aitrainingjobs.suanli.io"
    spec = crd["spec"]
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["aitj"]
    assert spec["names"]["categories"] == ["suanli"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert {"Phase", "Vendor", "Model", "Replicas", "Ready", "Racks", "Age"} <= columns.keys()
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def test_accelerator_node_is_cluster_scoped() -> None:
    crd = build_crd(next(k for k in KINDS if k.kind == "AcceleratorNode"))
    assert crd["spec"]["scope"] == "Cluster"
    names = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert names[:4] == ["Node", "Vendor", "Model", "Healthy"] and names[-1] == "Age"


# --- the checker itself catches what the API server would reject ---------------------------------------


def _root(**spec_props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": {"type": "object", "properties": spec_props}}}


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (_root(x={"description": "no type"}), "spec.x: missing type"),
        (_root(x={"$ref": "#/$defs/X"}), "'$ref' is not an OpenAPI v3 field"),
        (_root(x={"type": "string", "const": "a"}), "'const' is not an OpenAPI v3 field"),
        (_root(x={"anyOf": [{"type": "string"}, {"type": "integer"}]}), "not allowed inside allOf/anyOf"),
        (
            _root(x={"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}),
            "mutually",
        ),
        (_root(x={"type": "object", "additionalProperties": True}), "must be a schema"),
        (_root(x={"type": "array", "items": {"type": "string"}, "uniqueItems": True}), "uniqueItems"),
        (_root(x={"type": "array"}), "array without items"),
        (_root(x={"type": "string", "default": None}), "nullable"),
        (_root(x={"type": "string", "enum": [1]}), "do not match type"),
        (_root(x={"type": "tuple"}), "unknown type"),
        (
            _root(x={"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "object"}}),
            "a set's items must be scalars",
        ),
        (
            _root(
                x={
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                }
            ),
            "must be required or defaulted",
        ),
        (_root(x={"type": "string", "x-kubernetes-list-type": "atomic"}), "only for arrays"),
        (
            _root(
                x={
                    "type": "object",
                    "x-kubernetes-validations": [{"rule": "true", "message": "m", "reason": "X"}],
                }
            ),
            "reason must be one of",
        ),
        (
            _root(x={"type": "object", "x-kubernetes-validations": [{"rule": "true"}]}),
            "needs a rule and a message",
        ),
        (
            _root(
                x={
                    "type": "object",
                    "x-kubernetes-validations": [{"rule": "true", "message": "m"}],
                    "properties": {
                        "s": {"type": "string"},
                        "l": {"type": "array", "items": {"type": "integer"}},
                    },
                }
            ),
            "needs maxLength",
        ),
        (
            {
                "type": "object",
                "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}},
            },
            "only metadata.name and generateName",
        ),
        ({"type": "string"}, "the root must have type: object"),
    ],
)
def test_checker_reports_non_structural_schemas(schema: dict[str, Any], problem: str) -> None:
    problems = structural_problems(schema)
    assert any(problem in p for p in problems), problems


def test_checker_accepts_int_or_string_and_opaque_nodes() -> None:
    schema = _root(
        q={"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        raw={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        anything={"x-kubernetes-preserve-unknown-fields": True},
    )
    assert structural_problems(schema) == []


def test_translation_inlines_refs_and_drops_nulls() -> None:
    schema = structural_schema(
        {
            "$defs": {
                "Inner": {"title": "Inner", "type": "object", "properties": {"a": {"type": "integer"}}}
            },
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "inner": {
                    "anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}],
                    "default": None,
                    "description": "d",
                },
                "fixed": {"const": "v"},
                "free": {"type": "object", "additionalProperties": True},
                "open": {"type": "integer", "exclusiveMinimum": 0},
            },
        }
    )
    props = schema["properties"]
    assert props["inner"] == {"description": "d", "type": "object", "properties": {"a": {"type": "integer"}}}
    assert props["fixed"] == {"type": "string", "enum": ["v"]}
    assert props["free"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert props["open"] == {"type": "integer", "exclusiveMinimum": True, "minimum": 0}
    assert "additionalProperties" not in schema


def test_unions_of_two_real_types_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot express a union"):
        structural_schema(
            {"type": "object", "properties": {"x": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]}}}
        )
