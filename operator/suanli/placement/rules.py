"""Vendor allocation rules applied to one node: may a replica take ``a`` cards here, and which ones.

The rules themselves are data in :mod:`suanli.inventory.models` (:class:`ModelFamily`); this module only
interprets them, so a new vendor or model never adds a branch here.
"""

from __future__ import annotations

from suanli.inventory.models import ModelFamily


def shape_problem(family: ModelFamily, model: str, node_cards: int, link_domains: tuple[int, ...],
                  per_replica: int) -> str | None:
    """Why ``per_replica`` cards can never be one replica on such a node; None when it can."""
    if per_replica > node_cards:
        return (f"a replica lives on one node and {model} nodes have {node_cards} cards; "
                f"asked {per_replica} per replica")
    if per_replica % family.multiple_of:
        return f"{model} allocates {family.rule}; asked {per_replica} per replica"
    allowed = family.per_replica.get(node_cards)
    if allowed is not None and per_replica not in allowed:
        return f"{model} allows {family.rule}; asked {per_replica} per replica"
    if family.strict_link_domain and per_replica != node_cards and per_replica > max(link_domains):
        return f"{model} allows {family.rule}; asked {per_replica} per replica"
    return None


def replicas_fitting(free: tuple[int, ...], link_domains: tuple[int, ...], per_replica: int,
                     strict: bool, within_one_domain: bool = False) -> int:
    """How many replicas of ``per_replica`` cards the free cards ``free`` (per link domain) hold.

    ``within_one_domain`` answers for a gang that must stay inside one link domain.
    """
    whole_node = per_replica == sum(link_domains)
    if whole_node:
        fits = sum(free) == per_replica and (not within_one_domain or len(link_domains) == 1)
        return 1 if fits else 0
    if within_one_domain:
        return max(f // per_replica for f in free)
    if strict:
        return sum(f // per_replica for f in free)
    return sum(free) // per_replica


def take_domains(free: list[int], per_replica: int, strict: bool, node_cards: int) -> tuple[int, ...]:
    """Pick the link domains for one replica and take its cards out of ``free``.

    Best fit: the fullest domain that still holds the replica, so whole rings stay free for later.
    """
    if per_replica == node_cards:
        for i in range(len(free)):
            free[i] = 0
        return tuple(range(len(free)))
    fitting = [i for i, f in enumerate(free) if f >= per_replica]
    if fitting:
        best = min(fitting, key=lambda i: (free[i], i))
        free[best] -= per_replica
        return (best,)
    if strict:
        raise AssertionError("replicas_fitting promised a domain that does not exist")
    used: list[int] = []
    need = per_replica
    for i in sorted(range(len(free)), key=lambda i: (-free[i], i)):
        if need == 0:
            break
        take = min(need, free[i])
        if take:
            free[i] -= take
            need -= take
            used.append(i)
    return tuple(sorted(used))
