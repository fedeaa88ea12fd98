"""Accelerator vendors and model families as data: one entry per vendor or family, no scattered ifs.

A :class:`VendorProfile` says how a vendor shows up on a node (PCI id, device-plugin resources, presence
labels, where the model and memory are written) and what its software stack expects of a training pod
(collective library, visibility variables, rank table).  A :class:`ModelFamily` says how its cards are wired inside
a server (link domains) and how many cards one replica may take (the allocation rule the planner enforces).
Supporting a new vendor or model is one entry in :data:`VENDORS` or :data:`FAMILIES`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass(frozen=True)
class VendorProfile:
    """How one vendor's cards are advertised on a Kubernetes node."""

    name: str
    """Our vendor id, as used in the job API: ``nvidia``, ``huawei`` or ``hygon``."""
    pci_id: str
    """PCI vendor id NFD writes as ``feature.node.kubernetes.io/pci-<id>.present``."""
    resources: tuple[str, ...]
    """Whole-card extended resources, in the order we prefer to request them."""
    resource_pattern: re.Pattern[str]
    """Also a whole-card resource: HAMi/renamed plugin names (``huawei.com/Ascend910B3``) minus the
    memory/core side resources, which are not cards."""
    presence_labels: tuple[tuple[str, str | None], ...]
    """(key, value pattern) labels that mean "this vendor's cards are here": the pattern must match the whole
    value, ignoring case; None = any value.  Generic keys (``accelerator``) need a vendor-specific value."""
    model_labels: tuple[str, ...]
    """Labels carrying a model or product name, newest convention first."""
    memory_labels: tuple[str, ...]
    """Labels carrying memory per card (plain numbers are MiB; ``64G``/``64Gi`` are understood)."""
    nfd_classes: tuple[str, ...] = ()
    """PCI class prefixes an NFD ``pci-<class>_<vid>.present`` label must carry to count (empty: any class, and
    the vendor-only ``pci-<vid>.present`` counts too).  Huawei and Hygon also make CPUs, NICs and BMC video, so
    only their accelerator classes (12 processing accelerator, 03 display) say "cards here"."""
    family_labels: tuple[str, ...] = ()
    """Labels naming only a product family (``accelerator=huawei-Ascend910`` on 910A and 910B alike):
    read after the resource name, which may be more precise (HAMi's ``huawei.com/Ascend910B3``)."""
    collective: str = ""
    """The collective library (NCCL, HCCL, RCCL), exported to pods as SUANLI_COLLECTIVE_BACKEND."""
    torch_backend: str = ""
    """The backend name torch.distributed expects: ROCm builds of torch call RCCL "nccl"."""
    pod_env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment every training pod of this vendor gets."""
    needs_rank_table: bool = False
    """The collective reads a rank table (Ascend's hccl.json) rather than discovering peers itself."""

    def has_presence_label(self, node_labels: Mapping[str, str]) -> bool:
        return any(
            key in node_labels and (value is None or re.fullmatch(value, node_labels[key], re.IGNORECASE) is not None)
            for key, value in self.presence_labels
        )

    def is_card_resource(self, name: str) -> bool:
        return name in self.resources or self.resource_pattern.fullmatch(name) is not None


VENDORS: tuple[VendorProfile, ...] = (
    VendorProfile(
        name="nvidia",
        pci_id="10de",
        resources=("nvidia.com/gpu",),
        resource_pattern=re.compile(r"nvidia\.com/gpu"),
        presence_labels=(("nvidia.com/gpu.present", "true"),),
        model_labels=("nvidia.com/gpu.product",),
        memory_labels=("nvidia.com/gpu.memory",),
        collective="NCCL",
        torch_backend="nccl",
    ),
    VendorProfile(
        name="huawei",
        pci_id="19e5",
        resources=("huawei.com/Ascend910", "huawei.com/npu", "huawei.com/Ascend310P", "huawei.com/Ascend310"),
        # HAMi's per-model names (Ascend910B3, Ascend910B4-1, Ascend910C) identify the vendor, and
        # deviceplugins.refusal() then leaves the node out; "-memory"/"-core" siblings and MindCluster's vNPU
        # templates ("Ascend910-4c") are not cards at all.
        resource_pattern=re.compile(r"huawei\.com/Ascend(910|310)[A-Za-z0-9]*(-\d+)?"),
        # MindCluster's device plugin writes accelerator=huawei-Ascend910/-Ascend310/-Ascend310P/-npu
        # (ascend-common/api/default_name.go); any other "accelerator" value is not ours to read.
        presence_labels=(
            ("accelerator", r"huawei-(ascend\w*|npu)"),
            ("huawei.com/npu.chip.name", None),
            ("node.kubernetes.io/npu.chip.name", None),
            ("servertype", r"ascend.*"),
        ),
        nfd_classes=("12",),
        # MindCluster's device plugin writes node.kubernetes.io/npu.chip.name (910B3), accelerator-type
        # (module-910b-8) and servertype (Ascend910B-20): docs/en/scheduling/api/k8s.md, Table 4. The
        # huawei.com/npu.chip.* keys are read too (earlier Suanli docs listed them), though that table has none.
        model_labels=("huawei.com/npu.chip.name", "node.kubernetes.io/npu.chip.name", "accelerator-type",
                      "servertype"),
        memory_labels=("huawei.com/npu.chip.memory", "mind-cluster/npu-chip-memory"),
        family_labels=("accelerator",),
        collective="HCCL",
        torch_backend="hccl",
        # Large gangs take minutes to build HCCL links; the 120 s default fails them at start.
        pod_env={"HCCL_CONNECT_TIMEOUT": "1800"},
        needs_rank_table=True,
    ),
    VendorProfile(
        name="hygon",
        pci_id="1d94",
        resources=("hygon.com/hcu", "hygon.com/dcu", "hygon.com/hcunum", "hygon.com/dcunum"),
        resource_pattern=re.compile(r"hygon\.com/(hcu|dcu)(num)?"),
        presence_labels=(("hygon.com/hcu", "true"), ("hygon.com/dcu", "true")),
        nfd_classes=("03", "12"),
        model_labels=("hygon.com/hcu.name", "hygon.com/dcu.name"),
        memory_labels=("hygon.com/hcu.vram", "hygon.com/dcu.vram"),
        collective="RCCL",
        torch_backend="nccl",
    ),
)
VENDOR_BY_NAME: Mapping[str, VendorProfile] = {v.name: v for v in VENDORS}


@lru_cache(maxsize=1024)
def is_card_resource(name: str) -> bool:
    """Whether `name` is a whole-card accelerator resource of any vendor. Remembered (bounded): it is asked for
    every resource of every pod event."""
    return any(v.is_card_resource(name) for v in VENDORS)


@dataclass(frozen=True)
class ModelFamily:
    """Wiring and allocation rule shared by the canonical models listed in ``models``."""

    vendor: str
    models: tuple[str, ...]
    memory_mib: Mapping[str, int] = field(default_factory=dict)
    """Memory per card when no label says so (datasheet values); absent = unknown."""
    link_domains: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    """Cards per node -> sizes of the in-node link domains; a count not listed is one domain."""
    per_replica: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    """Cards per node -> allowed cards per replica; a count not listed allows any size up to the node."""
    multiple_of: int = 1
    """Cards are handed out in groups of this size (Ascend 910C: a chip is two dies, allocated in pairs)."""
    strict_link_domain: bool = False
    """True: a replica smaller than the node must sit inside one link domain (HCCS cannot cross rings).
    False: one domain is preferred but a replica may span domains (NVLink/xGMI over PCIe still works)."""
    rule: str = ""
    """The rule in words, quoted when it rules a request out."""


FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        vendor="huawei",
        models=("Ascend910", "Ascend910B"),
        memory_mib={"Ascend910": 32 * 1024, "Ascend910B": 64 * 1024},
        link_domains={8: (4, 4), 16: (8, 8)},
        per_replica={8: (1, 2, 4, 8), 16: (1, 2, 4, 8, 16)},
        strict_link_domain=True,
        rule="1, 2 or 4 cards inside one 4-chip HCCS ring, or the whole 8-card node",
    ),
    ModelFamily(
        vendor="huawei",
        models=("Ascend910C",),
        memory_mib={"Ascend910C": 64 * 1024},
        multiple_of=2,
        strict_link_domain=True,
        rule="cards in pairs (one 910C chip is two NPU dies)",
    ),
    ModelFamily(vendor="huawei", models=("Ascend310P", "Ascend310"), rule="any number of cards"),
    ModelFamily(
        vendor="nvidia",
        models=(),  # every NVIDIA model
        memory_mib={
            "H100": 81559, "H800": 81559, "H200": 143771, "H20": 97871, "B200": 183359,
            "A800": 81920, "L40S": 46068, "V100": 32768,
        },
        rule="any number of cards, preferably inside one NVLink clique",
    ),
    ModelFamily(
        vendor="hygon",
        models=(),  # every Hygon model
        memory_mib={"DCU-K100": 65536, "DCU-K100-AI": 65536, "DCU-Z100": 32768, "DCU-Z100L": 32768},
        rule="any number of cards, preferably inside one xGMI hive",
    ),
)


def family_of(vendor: str, model: str) -> ModelFamily:
    """The family a canonical model belongs to; a vendor's catch-all entry covers unknown models."""
    fallback: ModelFamily | None = None
    for family in FAMILIES:
        if family.vendor != vendor:
            continue
        if model in family.models:
            return family
        if not family.models:
            fallback = family
    return fallback or ModelFamily(vendor=vendor, models=(), rule="any number of cards")


# Canonical model names.  Each vendor's table is tried in order; the first pattern that matches the raw
# product/chip string (case-insensitive) names the model.  Canonical names map to themselves.
_NVIDIA_PRODUCT = re.compile(
    r"^(?:NVIDIA|Tesla|Quadro)?[-_ ]*(?:GeForce[-_ ])?"
    r"(?P<rtx>RTX[-_ ]?)?(?P<model>[A-Z]{0,3}\d{1,4}[A-Z]{0,2})",
    re.IGNORECASE,
)
_HUAWEI_MODELS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"310p", re.I), "Ascend310P"),
    (re.compile(r"310", re.I), "Ascend310"),
    (re.compile(r"a3|910c|910_93", re.I), "Ascend910C"),  # module-a3-16, Ascend910C, chip 910_9392
    (re.compile(r"910b", re.I), "Ascend910B"),  # module-910b-8, card-910b-2, 910B3, Ascend910B4
    (re.compile(r"910|^(module|half|card)$", re.I), "Ascend910"),  # legacy 910A: accelerator-type=module
)
_HYGON_PRODUCT = re.compile(r"(?P<model>K100|Z100L?|BW\d+|K\d+|Z\d+)(?:[-_ ]?(?P<ai>AI))?", re.IGNORECASE)


def canonical_model(vendor: str, raw: str) -> str | None:
    """Normalise a product, chip or accelerator-type string to our canonical model name.

    ``NVIDIA-H100-80GB-HBM3`` -> ``H100``; ``module-910b-8`` -> ``Ascend910B``; ``K100_AI`` ->
    ``DCU-K100-AI``.  None when the string names no model we can recognise.
    """
    text = raw.strip()
    if not text:
        return None
    if vendor == "nvidia":
        match = _NVIDIA_PRODUCT.match(text)
        if match is None:
            return None
        return ("RTX" if match["rtx"] else "") + match["model"].upper()
    if vendor == "huawei":
        if text.lower() in ("huawei-ascend910", "ascend910"):
            return "Ascend910"
        for pattern, model in _HUAWEI_MODELS:
            if pattern.search(text):
                return model
        return None
    if vendor == "hygon":
        found = _HYGON_PRODUCT.search(text)
        if found is None:
            return None
        return "DCU-" + found["model"].upper() + ("-AI" if found["ai"] else "")
    return None


def model_matches(vendor: str, wanted: str | None, model: str) -> bool:
    """Does a job's model name select an inventory model?  None selects every model of the vendor.

    Both sides are normalised first, so ``ascend910b``, ``910B3`` and ``Ascend910B`` all select
    ``Ascend910B`` and ``K100`` selects ``DCU-K100``; a name also selects its suffixed variants
    (``DCU-K100`` selects ``DCU-K100-AI``).  Distinct chips never match (``Ascend910`` is not ``Ascend910B``).
    """
    if wanted is None:
        return True
    canonical = (canonical_model(vendor, wanted) or wanted).lower()
    have = model.lower()
    return have == canonical or have.startswith(canonical + "-")
