"""The live inventory: normalised nodes plus what every bound pod holds, kept current event by event.

Each node or pod event touches only that node: discovery re-reads one Node, and a node's free cards are
recomputed from the pods bound to it (a handful), so an event costs the same at 10 or 10,000 nodes.
Nodes are also indexed by (vendor, model) pool so the planner reads only the pool a candidate names.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from suanli.inventory.deviceplugins import hami_register_keys
from suanli.inventory.discovery import discover
from suanli.inventory.models import VENDOR_BY_NAME
from suanli.inventory.node import AcceleratorNode, SkippedNode
from suanli.inventory.pods import PodKey, PodUsage, pod_key, pod_usage
from suanli.inventory.settings import InventorySettings

Pool = tuple[str, str]
"""(vendor, model)."""


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node together with what is free on it now.  Replaced, never mutated, on every change."""

    node: AcceleratorNode
    free: tuple[int, ...]
    """Free cards per link domain (used, reserved and unhealthy cards taken out)."""
    cpu_millis: int
    memory_bytes: int
    """Free CPU and memory; negative when other pods already overcommit the node."""
    overcommitted: int = 0
    """Cards bound pods request beyond what the node can give (another scheduler oversubscribed it)."""

    @property
    def free_cards(self) -> int:
        return sum(self.free)


class Inventory:
    """Normalised accelerator nodes and their free capacity.

    Feed it Kubernetes Node and Pod dicts (the JSON shape the API returns) as watch events arrive::

        inventory = Inventory()
        inventory.upsert_node(node)       # ADDED / MODIFIED node
        inventory.remove_node(name)       # DELETED node
        inventory.upsert_pod(pod)         # ADDED / MODIFIED pod, bound or not, any scheduler
        inventory.remove_pod(ns, name)    # DELETED pod

    A plan is reserved by upserting its pods with ``spec.nodeName`` set: the same pod seen again later
    replaces its earlier usage, so nothing is counted twice.

    Not thread-safe: feed events and call the planner from one thread (or under one lock).
    """

    def __init__(self, settings: InventorySettings | None = None) -> None:
        self.settings = settings or InventorySettings()
        self._states: dict[str, NodeState] = {}
        self._skipped: dict[str, SkippedNode] = {}
        self._pods: dict[PodKey, PodUsage] = {}
        self._by_node: dict[str, dict[PodKey, PodUsage]] = {}
        self._pools: dict[Pool, dict[str, NodeState]] = {}
        self._available: dict[Pool, dict[str, NodeState]] = {}
        self._fingerprints: dict[str, Hashable] = {}
        self.generation = 0
        """Bumped on every change that can alter free capacity; lets callers cache plans."""

    # -- events -------------------------------------------------------------------------------------

    def upsert_node(self, node: Mapping[str, Any]) -> None:
        """Add or refresh a node from its Kubernetes dict; a node we cannot read is recorded as skipped."""
        name = str((node.get("metadata") or {}).get("name") or "")
        fingerprint = _fingerprint(node)
        if name and self._fingerprints.get(name) == fingerprint:
            return  # a kubelet heartbeat: nothing discovery reads has changed
        found = discover(node, self.settings)
        self._fingerprints[name] = fingerprint
        self._drop_state(name)
        self._skipped.pop(name, None)
        if isinstance(found, SkippedNode):
            self._skipped[name] = found
        elif found is not None:
            self._store(self._compute(found))
        self.generation += 1

    def remove_node(self, name: str) -> None:
        """Forget a node; pods still bound to it are kept and count again if it comes back."""
        self._fingerprints.pop(name, None)
        self._drop_state(name)
        self._skipped.pop(name, None)
        self.generation += 1

    def upsert_pod(self, pod: Mapping[str, Any]) -> None:
        """Record what a pod holds; unbound or finished pods hold nothing and are forgotten."""
        key = pod_key(pod)
        usage = pod_usage(pod)
        old = self._pods.get(key)
        if old == usage:
            return
        if old is not None:
            self._unbind(old)
        if usage is not None:
            self._pods[key] = usage
            self._by_node.setdefault(usage.node, {})[key] = usage
        self._refresh(old.node if old is not None else None, usage.node if usage is not None else None)

    def remove_pod(self, namespace: str, name: str) -> None:
        old = self._pods.get((namespace, name))
        if old is not None:
            self._unbind(old)
            self._refresh(old.node, None)

    @contextmanager
    def without_pods(self, keys: Iterable[PodKey]) -> Iterator[None]:
        """What-if (preemption): inside the block these pods hold nothing; afterwards everything, the
        generation included, is exactly as before."""
        generation = self.generation
        removed = [usage for key in dict.fromkeys(keys) if (usage := self._pods.get(key)) is not None]
        for usage in removed:
            self._unbind(usage)
        touched = [usage.node for usage in removed]
        self._refresh(*touched)
        try:
            yield
        finally:
            for usage in removed:
                self._pods[usage.key] = usage
                self._by_node.setdefault(usage.node, {})[usage.key] = usage
            self._refresh(*touched)
            self.generation = generation

    def holds(self, key: PodKey) -> bool:
        """Whether this pod is counted as holding capacity (bound or reserved, not finished)."""
        return key in self._pods

    # -- queries ------------------------------------------------------------------------------------

    def nodes(self) -> Iterator[AcceleratorNode]:
        """Every accelerator node we could read, schedulable or not."""
        return (state.node for state in self._states.values())

    def get(self, name: str) -> AcceleratorNode | None:
        state = self._states.get(name)
        return state.node if state is not None else None

    def state(self, name: str) -> NodeState | None:
        """The node and its free capacity now."""
        return self._states.get(name)

    def skipped(self) -> Mapping[str, str]:
        """Nodes left out because their labels or resources conflict or do not parse: name -> reason."""
        return {name: found.reason for name, found in self._skipped.items()}

    def skipped_nodes(self, vendor: str | None = None) -> list[SkippedNode]:
        """The skipped nodes (of ``vendor`` when given), by name: what a pending job's message should quote."""
        return [s for _, s in sorted(self._skipped.items()) if vendor is None or s.vendor == vendor]

    def skipped_summary(self, vendors: Iterable[str], limit: int = 3) -> str:
        """One sentence for a pending job whose candidates are ``vendors``: which of their nodes were left out
        and why (the first ``limit``), e.g. nodes whose device plugin only serves another scheduler. "" if none."""
        wanted = set(vendors)
        left_out = [s for s in self.skipped_nodes() if s.vendor in wanted]
        if not left_out:
            return ""
        shown = "; ".join(f"{s.name} {s.reason}" for s in left_out[:limit])
        more = f" (and {len(left_out) - limit} more)" if len(left_out) > limit else ""
        return f"{len(left_out)} node(s) of these vendors were left out: {shown}{more}"

    def pools(self) -> list[Pool]:
        """Every (vendor, model) present, sorted."""
        return sorted(pool for pool, members in self._pools.items() if members)

    def pool(self, vendor: str, model: str) -> Mapping[str, NodeState]:
        """The nodes of one pool by name (read-only view; do not keep it across events)."""
        return self._pools.get((vendor, model), {})

    def available(self, vendor: str, model: str) -> Mapping[str, NodeState]:
        """The schedulable nodes of one pool that have a free card: all a planner needs to read."""
        return self._available.get((vendor, model), {})

    def pod_usage(self, namespace: str, name: str) -> PodUsage | None:
        return self._pods.get((namespace, name))

    def allocated_cards(self, name: str) -> int:
        """Cards of the node's accelerator resource that bound, unfinished pods hold, healthy or not.

        Compare with ``usable_cards``: more allocated than usable means a running pod sits on a card the
        agent has since found broken (free capacity alone cannot tell, as it is floored at zero).
        """
        state = self._states.get(name)
        if state is None:
            return 0
        return sum(u.cards.get(state.node.resource, 0) for u in self._by_node.get(name, {}).values())

    def __len__(self) -> int:
        return len(self._states)

    def snapshot(self) -> Inventory:
        """An independent copy to plan on while events keep changing this one (a scheduling cycle's view).

        Node states and pod usages are immutable, so copying the indexes is enough: O(nodes + pods).
        """
        copy = Inventory.__new__(Inventory)
        copy.settings = self.settings
        copy._states = dict(self._states)
        copy._skipped = dict(self._skipped)
        copy._pods = dict(self._pods)
        copy._by_node = {node: dict(pods) for node, pods in self._by_node.items()}
        copy._pools = {pool: dict(members) for pool, members in self._pools.items()}
        copy._available = {pool: dict(members) for pool, members in self._available.items()}
        copy._fingerprints = dict(self._fingerprints)
        copy.generation = self.generation
        return copy

    # -- internals ----------------------------------------------------------------------------------

    def _unbind(self, usage: PodUsage) -> None:
        del self._pods[usage.key]
        on_node = self._by_node.get(usage.node)
        if on_node is not None:
            on_node.pop(usage.key, None)
            if not on_node:
                del self._by_node[usage.node]

    def _refresh(self, *names: str | None) -> None:
        changed = False
        for name in dict.fromkeys(names):
            if name is not None and (state := self._states.get(name)) is not None:
                self._store(self._compute(state.node))
                changed = True
        if changed:
            self.generation += 1

    def _store(self, state: NodeState) -> None:
        node = state.node
        pool = (node.vendor, node.model)
        self._states[node.name] = state
        self._pools.setdefault(pool, {})[node.name] = state
        available = self._available.setdefault(pool, {})
        if node.schedulable and state.free_cards > 0:
            available[node.name] = state
        else:
            available.pop(node.name, None)

    def _drop_state(self, name: str) -> None:
        state = self._states.pop(name, None)
        if state is not None:
            key = (state.node.vendor, state.node.model)
            self._pools.get(key, {}).pop(name, None)
            self._available.get(key, {}).pop(name, None)

    def _compute(self, node: AcceleratorNode) -> NodeState:
        """Free capacity of ``node`` from scratch: cheap, since it reads only the pods bound to it."""
        vendor = VENDOR_BY_NAME[node.vendor]
        free = list(node.link_domains)
        cpu, memory = node.cpu_millis, node.memory_bytes
        annotated: list[tuple[tuple[int, ...], int]] = []
        plain: list[tuple[int, PodKey]] = []
        for usage in self._by_node.get(node.name, {}).values():
            cpu -= usage.cpu_millis
            memory -= usage.memory_bytes
            cards = sum(n for resource, n in usage.cards.items() if vendor.is_card_resource(resource))
            if not cards:
                continue
            domains = usage.link_domains
            if domains is not None and all(d < len(free) for d in domains):
                annotated.append((domains, cards))
            else:
                plain.append((cards, usage.key))
        over = 0
        # Pods we placed go back where we put them; others are fitted in largest-first, best-fit order,
        # which is deterministic whatever order the events came in.
        for domains, cards in annotated:
            for d in domains:
                take = min(cards, free[d])
                free[d] -= take
                cards -= take
            over += _take_best_fit(free, cards)
        for cards, _ in sorted(plain, key=lambda item: (-item[0], item[1])):
            over += _take_best_fit(free, cards)
        # Which cards are broken is not known at this level; assume they sit in already-broken rings.
        for _ in range(node.cards - node.usable_cards):
            _take_best_fit(free, 1)
        return NodeState(node=node, free=tuple(free), cpu_millis=cpu, memory_bytes=memory, overcommitted=over)


def _take_best_fit(free: list[int], cards: int) -> int:
    """Take ``cards`` from the fullest domain that holds them all, else spread; returns the shortfall."""
    if cards <= 0:
        return 0
    fitting = [i for i, f in enumerate(free) if f >= cards]
    if fitting:
        best = min(fitting, key=lambda i: free[i])
        free[best] -= cards
        return 0
    for i in sorted(range(len(free)), key=lambda i: -free[i]):
        take = min(cards, free[i])
        free[i] -= take
        cards -= take
    return cards


def _fingerprint(node: Mapping[str, Any]) -> Hashable:
    """Everything discovery reads from a Node, so unchanged heartbeats (most node events) cost little."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or () if c.get("type") == "Ready"), None)
    return (
        tuple(sorted((meta.get("labels") or {}).items())),
        bool(spec.get("unschedulable")),
        tuple((t.get("key"), t.get("value"), t.get("effect")) for t in spec.get("taints") or ()),
        tuple(sorted((k, str(v)) for k, v in (status.get("allocatable") or {}).items())),
        tuple(sorted((k, str(v)) for k, v in (status.get("capacity") or {}).items())),
        ready,
        hami_register_keys(meta.get("annotations") or {}),
    )
