"""Turning objects from the API (or from files) into typed models, with errors users can act on.

Every problem is reported as ``<field path>: <what is wrong> — <how to fix it>`` with the camelCase
path a user sees in their YAML (``spec.candidates[1].vendor``), all problems at once.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .base import RuleViolationError

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field."""

    path: str
    """camelCase path from the object root, e.g. ``spec.candidates[0].vendor``."""
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


class SpecError(ValueError):
    """An object does not satisfy the API: lists every field at fault and how to fix it."""

    def __init__(self, what: str, errors: list[FieldError]) -> None:
        self.what = what
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"invalid {what}:\n{lines}")

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.errors]


def parse_object(model: type[_M], data: Any, *, root: str = "", what: str | None = None) -> _M:
    """Validate ``data`` as ``model``; on failure raise SpecError naming each field under ``root``.

    ``root`` prefixes the paths (``"spec"`` when validating a bare spec).
    """
    if not isinstance(data, Mapping):
        raise SpecError(
            what or model.__name__, [FieldError(root, f"expected an object, got {type(data).__name__}")]
        )
    try:
        # Strict JSON validation types values the way the API server does: "4" is not an integer and
        # "yes" is not a boolean, while enums and timestamps still arrive as strings.
        return model.model_validate_json(json.dumps(data, default=_jsonable), strict=True)
    except ValidationError as exc:
        raise SpecError(what or _describe(model, data), field_errors(model, exc, root=root)) from None


def field_errors(model: type[BaseModel], exc: ValidationError, *, root: str = "") -> list[FieldError]:
    """Flatten a pydantic ValidationError into FieldErrors with user-facing paths and fixes."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, RuleViolationError):
            for v in cause.violations:
                out.append(FieldError(_join(root, loc) + v.field_path, v.message))
            continue
        out.append(FieldError(_join(root, loc), _explain(model, err, loc)))
    return out


def _explain(model: type[BaseModel], err: Any, loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required field is missing — add it"
    if kind == "extra_forbidden":
        hint = ""
        known = _known_fields(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1) if known else []
        if close:
            hint = f" — did you mean {close[0]!r}?"
        elif known:
            hint = " — known fields: " + ", ".join(known)
        return f"unknown field{hint}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = _short(err.get("input"))
    return msg if got in msg else f"{msg} (got {got})"


def _known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """camelCase field names of the model found by walking ``loc`` from ``model``, if any."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = next(
            (f for name, f in current.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _join(root: str, loc: tuple[Any, ...]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).isidentifier():
            path = f"{path}.{part}" if path else str(part)
        else:
            path += f"[{str(part)!r}]"
    return path


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(model: type[BaseModel], data: Mapping[str, Any]) -> str:
    meta = data.get("metadata") if isinstance(data, Mapping) else None
    if isinstance(meta, Mapping) and meta.get("name"):
        ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
        return f"{data.get('kind', model.__name__)} {ns}{meta['name']}"
    return model.__name__
