"""Names of the labels and annotations Suanli reads or writes on nodes and pods.

Our node agent writes the ``suanli.io/accelerator.*`` labels; when present they win over vendor labels,
because the agent measured them on the node itself.  The full contract is in ``docs/labels.md``.
"""

from __future__ import annotations

PREFIX = "suanli.io/"

VENDOR = "suanli.io/accelerator.vendor"
"""``nvidia``, ``huawei`` or ``hygon``."""
MODEL = "suanli.io/accelerator.model"
"""Canonical model: ``H100``, ``Ascend910B``, ``DCU-K100``... (see :func:`models.canonical_model`)."""
COUNT = "suanli.io/accelerator.count"
"""Cards installed; must agree with the device plugin's capacity."""
MEMORY_MIB = "suanli.io/accelerator.memory-mib"
"""Memory per card in MiB."""
HEALTHY = "suanli.io/accelerator.healthy"
"""How many of the cards passed the agent's health check."""
LINK_DOMAINS = "suanli.io/accelerator.link-domains"
"""In-node link domains as ``<domains>x<cards>`` (``2x4``) or a ``+`` list of sizes (``4+4``)."""
MEMBW_GBS = "suanli.io/accelerator.membw-gbs"
"""Measured memory bandwidth per card, GB/s."""
FMA_TFLOPS = "suanli.io/accelerator.fma-tflops"
"""Measured dense FMA throughput per card, TFLOP/s."""
DEVICE_PLUGIN = "suanli.io/device-plugin"
"""How the node's device plugin allocates (set by the cluster admin, since a node object does not say):
``kubelet`` (default: at the kubelet's request), ``volcano`` (MindCluster's plugin with -volcanoType=true) or
``hami``.  Only ``kubelet`` nodes take Suanli's gangs; see :mod:`suanli.inventory.deviceplugins`."""
RACK = "suanli.io/rack"
"""Rack (or switch / hypernode) the node sits in."""

LINK_DOMAIN_ANNOTATION = "suanli.io/link-domain"
"""Pod annotation: the in-node link domains the planner gave the pod, as indices joined by ``+`` (``1`` or
``0+1``).  It lets ring usage survive an operator restart; pods without it are attributed by best fit."""

NFD_PCI_PRESENT = "feature.node.kubernetes.io/pci-{pci_id}.present"
"""NFD's PCI vendor presence label; the class-qualified form ``pci-0302_10de.present`` also counts."""

ZONE_LABELS: tuple[str, ...] = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
REGION_LABELS: tuple[str, ...] = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
RACK_LABELS: tuple[str, ...] = (
    RACK,
    "huawei.com/topotree.rackid",  # MindCluster topology tree
    "volcano.sh/hypernode",  # Volcano label-based HyperNode discovery (A3 super-nodes)
    "volcano.sh/tor",  # Volcano label-based discovery, top-of-rack switch
)
