"""Shared building blocks of Suanli's API models: the base model, cross-field rules, conditions.

The pydantic models are the single source of truth for the API: the CRD's OpenAPI schema is
generated from them (``suanli.api.crd``), and cross-field rules are written once, as a CEL
expression for the API server next to the Python check the operator runs, so the two cannot drift
apart silently (the integration tests assert that both reject the same objects).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

GROUP = "suanli.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Rule:
    """A cross-field rule, enforced by the API server (CEL) and by the Python model alike.

    ``message`` is shared verbatim so that users see the same words from ``kubectl apply`` and from
    the operator; it must say what is wrong and how to fix it.
    """

    cel: str
    """CEL expression evaluated with ``self`` bound to the object the rule is declared on."""
    message: str
    field_path: str | None = None
    """Path (relative to the object, e.g. ``.minReplicas``) the API server blames in its error."""
    reason: str | None = None
    """``FieldValueInvalid`` (default), ``FieldValueForbidden``, ``FieldValueRequired`` or
    ``FieldValueDuplicate``: the error type the API server reports."""

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


_RULE_ATTR = "__suanli_rule__"
_M = TypeVar("_M", bound="ApiModel")
_F = TypeVar("_F", bound=Callable[..., bool])


def rule(
    cel: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> Callable[[_F], _F]:
    """Declare a method ``(self) -> bool`` as the Python twin of a CEL rule (True means valid)."""

    def mark(check: _F) -> _F:
        setattr(check, _RULE_ATTR, Rule(cel, message, field_path, reason))
        return check

    return mark


@dataclass(frozen=True)
class Violation:
    """One broken rule, located relative to the model that declared it."""

    field_path: str
    message: str


class RuleViolationError(ValueError):
    """Raised by model validation; carries every broken rule so the error lists them all."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field_path or '.'}: {v.message}" for v in violations))


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, unknown fields rejected.

    Unknown fields are errors rather than ignored because a misspelt field (``minReplica``) in a
    hand-written manifest would otherwise silently take its default. The API server prunes unknown
    fields before we ever read an object, so this only bites on local files and in tests.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    __rules__: ClassVar[tuple[tuple[str, Rule], ...]] = ()
    """(method name, rule) for each ``@rule`` method, collected at class creation."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        found: list[tuple[str, Rule]] = []
        for name in dir(cls):
            attr = getattr(cls, name, None)
            marked = getattr(attr, _RULE_ATTR, None)
            if isinstance(marked, Rule):
                found.append((name, marked))
        # Declaration order keeps the generated CRD stable and readable.
        order = {name: i for i, name in enumerate(cls.__dict__)}
        found.sort(key=lambda item: order.get(item[0], len(order)))
        cls.__rules__ = tuple(found)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        if cls.__rules__:
            target["x-kubernetes-validations"] = [r.to_schema() for _, r in cls.__rules__]
        return json_schema

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        broken = [
            Violation(r.field_path or "", r.message)
            for name, r in self.__rules__
            if not getattr(self, name)()
        ]
        broken.extend(self._duplicate_list_entries())
        if broken:
            raise RuleViolationError(broken)
        return self

    def _duplicate_list_entries(self) -> list[Violation]:
        """Enforce x-kubernetes-list-type set/map uniqueness in Python too, as the API server does."""
        found: list[Violation] = []
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            if not isinstance(extra, dict) or extra.get("x-kubernetes-list-type") not in ("set", "map"):
                continue
            key_names = extra.get("x-kubernetes-list-map-keys")
            seen: set[Any] = set()
            for i, item in enumerate(getattr(self, name)):
                if isinstance(key_names, list) and isinstance(item, ApiModel):
                    keys = [str(k) for k in key_names]
                    key: Any = tuple(getattr(item, _attr(item, k)) for k in keys)
                    what = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
                else:
                    key, what = item, repr(item.value if isinstance(item, Enum) else item)
                if key in seen:
                    found.append(
                        Violation(f".{field.alias or name}[{i}]", f"duplicate entry {what}: remove it")
                    )
                seen.add(key)
        return found

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _attr(model: ApiModel, alias: str) -> str:
    """Python attribute name of the field ``alias`` names on the wire."""
    for name, field in type(model).model_fields.items():
        if alias in (name, field.alias):
            return name
    raise KeyError(alias)


# --- reusable field types -------------------------------------------------------------------------

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUALIFIED_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)

DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
NodeName = Annotated[str, Field(min_length=1, max_length=253)]
LabelKey = Annotated[str, Field(min_length=1, max_length=317)]
LabelValue = Annotated[str, Field(max_length=63)]
ShortText = Annotated[str, Field(max_length=256)]
Message = Annotated[str, Field(max_length=32768)]
ModelName = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
"""An accelerator model name as Suanli's inventory normalises it (Ascend910B3, H100, K100)."""


class Vendor(StrEnum):
    """Accelerator vendor."""

    NVIDIA = "nvidia"
    HUAWEI = "huawei"
    HYGON = "hygon"


QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not _QUANTITY_RE.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity: write e.g. 4, 500m, 16Gi or 1.5T")
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
        }
    ),
]
"""A Kubernetes resource quantity (``4``, ``500m``, ``16Gi``), as in a container's resources."""

RESOURCE_QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?[0-9]{1,2}))?$"
)
_RESOURCE_QUANTITY_RE = re.compile(RESOURCE_QUANTITY_PATTERN)


def _check_resource_quantity(value: int | str) -> int | str:
    if isinstance(value, bool) or (isinstance(value, int) and value < 0):
        raise ValueError(f"{value!r} is not a resource amount: write a non-negative number, e.g. 4, 500m or 16Gi")
    if isinstance(value, str) and not _RESOURCE_QUANTITY_RE.match(value):
        raise ValueError(
            f"{value!r} is not a resource amount: write a non-negative quantity with at most a two-digit "
            "exponent, e.g. 4, 500m, 16Gi or 1e3"
        )
    return value


ResourceQuantity = Annotated[
    int | str,
    AfterValidator(_check_resource_quantity),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "minimum": 0,
            "pattern": RESOURCE_QUANTITY_PATTERN,
        }
    ),
]
"""A container resource request or limit: a quantity that can be valid (non-negative, sane exponent), so
the API server refuses `-1` or `1e999999` instead of the scheduler meeting them."""


def _utc_seconds(value: datetime) -> str:
    # metav1.Time has second precision; writing the same keeps status patches idempotent.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[datetime, PlainSerializer(_utc_seconds, return_type=str, when_used="json")]
"""An RFC 3339 time, written in UTC with second precision like Kubernetes' own timestamps."""


def now() -> datetime:
    """The current time, truncated to what a Timestamp keeps."""
    return datetime.now(UTC).replace(microsecond=0)


# --- conditions -----------------------------------------------------------------------------------


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of an object's state, shaped like Kubernetes' metav1.Condition so tools render it."""

    type: Annotated[
        str,
        Field(
            max_length=316,
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        ),
    ]
    """Condition type in CamelCase, e.g. Placed, Ready, Restarting, Succeeded, Failed."""
    status: ConditionStatus
    """Whether the condition holds: True, False or Unknown."""
    reason: Annotated[
        str, Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    ]
    """Machine-readable CamelCase reason for the last transition, e.g. InsufficientAccelerators."""
    message: Message = ""
    """Human-readable details of the last transition."""
    last_transition_time: Timestamp
    """When the status last changed (not when it was last checked)."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """metadata.generation the condition was computed from; older than the object's means stale."""


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """Return ``conditions`` with ``new`` merged in by type, keeping the old transition time when the
    status did not change (so the time says when it became true, not when it was last written)."""
    out: list[Condition] = []
    replaced = False
    for old in conditions:
        if old.type == new.type:
            if old.status == new.status:
                new = new.model_copy(update={"last_transition_time": old.last_transition_time})
            out.append(new)
            replaced = True
        else:
            out.append(old)
    if not replaced:
        out.append(new)
    return out


def model_rules(model: type[_M]) -> tuple[Rule, ...]:
    """The cross-field rules a model declares, in declaration order."""
    return tuple(r for _, r in model.__rules__)
