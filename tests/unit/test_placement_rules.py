"""Allocation rules as data: each family's rule read by the same few functions."""

from __future__ import annotations

import pytest

from suanli.inventory import family_of
from suanli.placement.rules import replicas_fitting, shape_problem, take_domains


@pytest.mark.parametrize(
    ("model", "cards", "layout", "per_replica", "allowed"),
    [
        ("Ascend910B", 8, (4, 4), 1, True),
        ("Ascend910B", 8, (4, 4), 2, True),
        ("Ascend910B", 8, (4, 4), 4, True),
        ("Ascend910B", 8, (4, 4), 8, True),
        ("Ascend910B", 8, (4, 4), 3, False),
        ("Ascend910B", 8, (4, 4), 6, False),
        ("Ascend910", 8, (4, 4), 5, False),
        ("Ascend910C", 16, (16,), 2, True),
        ("Ascend910C", 16, (16,), 1, False),
        ("Ascend910C", 16, (16,), 16, True),
        ("H100", 8, (8,), 3, True),
        ("H100", 8, (8,), 9, False),
        ("DCU-K100-AI", 8, (8,), 5, True),
    ],
)
def test_which_sizes_a_replica_may_take(
    model: str, cards: int, layout: tuple[int, ...], per_replica: int, allowed: bool
) -> None:
    vendor = "huawei" if model.startswith("Ascend") else "hygon" if model.startswith("DCU") else "nvidia"
    assert (shape_problem(family_of(vendor, model), model, cards, layout, per_replica) is None) is allowed


@pytest.mark.parametrize(
    ("free", "per_replica", "strict", "fits"),
    [
        ((4, 4), 8, True, 1),
        ((4, 3), 8, True, 0),
        ((3, 3), 2, True, 2),
        ((3, 3), 2, False, 3),
        ((4, 1), 4, True, 1),
        ((2, 2), 4, True, 0),
        ((2, 2), 4, False, 1),
        ((1, 0), 1, True, 1),
    ],
)
def test_replicas_fitting_a_free_shape(
    free: tuple[int, ...], per_replica: int, strict: bool, fits: int
) -> None:
    assert replicas_fitting(free, (4, 4), per_replica, strict) == fits


def test_gang_inside_one_link_domain_uses_the_roomiest_domain() -> None:
    assert replicas_fitting((3, 4), (4, 4), 2, True, within_one_domain=True) == 2
    assert replicas_fitting((4, 4), (4, 4), 8, True, within_one_domain=True) == 0
    assert replicas_fitting((8,), (8,), 8, False, within_one_domain=True) == 1


def test_take_domains_best_fit_and_spill() -> None:
    free = [3, 4]
    assert take_domains(free, 2, True, 8) == (0,) and free == [1, 4]
    free = [2, 2]
    assert take_domains(free, 3, False, 4) == (0, 1) and sum(free) == 1
    free = [4, 4]
    assert take_domains(free, 8, True, 8) == (0, 1) and free == [0, 0]
