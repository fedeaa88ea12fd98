"""The golden table: what a known-good card of each model measures, with where each figure comes from.

The table ships as ``golden.yaml`` next to this module; an administrator's file (``--golden-file``)
replaces entries with the same model and PCI device and adds new ones. Every figure names its source
kind (P, S, D, M or NF) so a reader can tell a vendor's number from an estimate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

BUILT_IN = Path(__file__).resolve().parent / "golden.yaml"


class Source(StrEnum):
    PRIMARY = "P"
    SECONDARY = "S"
    DERIVED = "D"
    MEASURED = "M"
    NOT_FOUND = "NF"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Figure(_Model):
    """One expected figure and its source."""

    value: Annotated[float, Field(gt=0)] | None
    source: Source
    ref: Annotated[str, Field(min_length=1, max_length=600)]

    @model_validator(mode="after")
    def _value_matches_source(self) -> Figure:
        if (self.value is None) != (self.source == Source.NOT_FOUND):
            raise ValueError("value must be null exactly when source is NF (a figure without a source, "
                             "or a source without a figure)")
        return self


class Entry(_Model):
    """A model's expected figures; ``pci_device`` narrows it to one board (``10de:2330``)."""

    model: Annotated[str, Field(min_length=1, max_length=63)]
    """Canonical model, as the agent labels it (``H100``, ``Ascend910B``, ``DCU-K100-AI``)."""
    pci_device: Annotated[str, Field(pattern=r"^[0-9a-f]{4}:[0-9a-f]{4}$")] | None = Field(
        default=None, alias="pciDevice"
    )
    name: Annotated[str, Field(max_length=120)] | None = None
    copy_gbps: Figure | None = Field(default=None, alias="copyGBps")
    """A STREAM copy kernel's bandwidth (CUDA, HIP)."""
    dma_copy_gbps: Figure | None = Field(default=None, alias="dmaCopyGBps")
    """The copy engine's bandwidth (Ascend aclrtMemcpy device-to-device)."""
    fma_tflops: Figure | None = Field(default=None, alias="fmaTFLOPS")
    """FP32 FMA throughput of the FMA kernel."""

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.model, self.pci_device)


class _File(_Model):
    version: int = Field(ge=1, le=1)
    models: list[Entry]


class GoldenError(ValueError):
    """A golden file that cannot be used; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class Expected:
    """The figures a card is held to, resolved from the table."""

    copy_gbps: Figure | None
    fma_tflops: Figure | None
    entry: str
    """Which entry they came from, for messages (``H100 SXM5 80GB (10de:2330)``)."""


def _parse(data: Any, where: str) -> list[Entry]:
    try:
        entries = _File.model_validate(data).models
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise GoldenError(f"{where}: {problems} (see operator/suanli/agent/golden.yaml for the format)") from None
    seen: set[tuple[str, str | None]] = set()
    for i, e in enumerate(entries):
        if e.key in seen:
            raise GoldenError(f"{where}: models[{i}] repeats model {e.model} pciDevice {e.pci_device}; keep one")
        seen.add(e.key)
    return entries


def load_file(path: Path) -> list[Entry]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise GoldenError(f"golden file {path}: {exc.strerror or exc}; fix --golden-file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GoldenError(f"golden file {path} is not valid YAML: {exc}") from None
    return _parse(data, f"golden file {path}")


class GoldenTable:
    """Expected figures by (model, PCI device), with the model-wide fallback."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries: dict[tuple[str, str | None], Entry] = {e.key: e for e in entries}

    @classmethod
    def load(cls, override: Path | None = None) -> GoldenTable:
        """The built-in table, with ``override``'s entries replacing or adding to it."""
        entries = {e.key: e for e in load_file(BUILT_IN)}
        if override is not None:
            entries.update({e.key: e for e in load_file(override)})
        return cls(entries.values())

    def expected(self, model: str, pci_device: str | None, copy_method: str) -> Expected | None:
        """The figures for a card: its board's entry, else the model's lowest figures across boards
        (a PCIe card of a model listed only by its SXM board must not look slow)."""
        exact = self.entries.get((model, pci_device)) if pci_device else None
        generic = self.entries.get((model, None))
        pick = exact or generic
        if pick is not None:
            return Expected(_copy(pick, copy_method), pick.fma_tflops, _describe(pick))
        boards = [e for (m, _), e in self.entries.items() if m == model]
        if not boards:
            return None
        return Expected(
            _lowest(_copy(e, copy_method) for e in boards),
            _lowest(e.fma_tflops for e in boards),
            f"{model} (lowest of {len(boards)} boards)",
        )


def _copy(entry: Entry, copy_method: str) -> Figure | None:
    # A DMA copy is held only to a DMA figure: the two are different quantities.
    return entry.dma_copy_gbps if copy_method == "dma" else entry.copy_gbps


def _lowest(figures: Iterable[Figure | None]) -> Figure | None:
    known = [f for f in figures if f is not None and f.value is not None]
    return min(known, key=lambda f: f.value or 0.0) if known else None


def _describe(e: Entry) -> str:
    return (e.name or e.model) + (f" ({e.pci_device})" if e.pci_device else "")


def table_from(data: Mapping[str, Any]) -> GoldenTable:
    """A table from already-parsed YAML (tests, the chart's values)."""
    return GoldenTable(_parse(data, "golden table"))
