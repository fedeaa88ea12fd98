"""Kubernetes resource quantities (``"500m"``, ``"16Gi"``, ``"8"``) as integers.

CPU is kept in millicores and memory in bytes so that sums over thousands of pods stay exact.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}


class QuantityError(ValueError):
    """A quantity string that Kubernetes would not accept either."""


def parse_quantity(value: object) -> Decimal:
    """Parse a quantity (string or number) into an exact Decimal in base units."""
    if isinstance(value, bool):
        raise QuantityError(f"quantity {value!r} is a boolean, expected a number such as '8' or '16Gi'")
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str) or not value.strip():
        raise QuantityError(f"quantity {value!r} is not a number such as '8', '500m' or '16Gi'")
    text = value.strip()
    suffix = ""
    if text[-2:] in _BINARY:
        suffix = text[-2:]
    elif text[-1:] in _DECIMAL and not text[-1:].isdigit() and text[-1:] not in "eE":
        suffix = text[-1:]
    number = text[: len(text) - len(suffix)]
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise QuantityError(f"quantity {value!r} is not a number such as '8', '500m' or '16Gi'") from None
    if not amount.is_finite() or amount < 0:
        raise QuantityError(f"quantity {value!r} must be a finite, non-negative number")
    scale = Decimal(_BINARY[suffix]) if suffix in _BINARY else _DECIMAL[suffix]
    return amount * scale


def cpu_millis(value: object) -> int:
    """CPU in millicores, rounded up as the kubelet does."""
    return _cached_millis(value) if type(value) is str else _millis(value)


def bytes_of(value: object) -> int:
    """Memory (or any countable resource) in base units, rounded up."""
    return _cached_units(value) if type(value) is str else _units(value)


def _millis(value: object) -> int:
    return int((parse_quantity(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def _units(value: object) -> int:
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))


# Every pod event re-reads its pod's requests, and a cluster uses a handful of distinct strings ("1", "4Gi",
# "8"): remembering the last few thousand takes Decimal arithmetic off the watch path (a few per cent of the
# operator's CPU under py-spy in bench/e2e.py). Bounded, so pods with ever-new strings cannot grow it; errors
# are not remembered.
_cached_millis = lru_cache(maxsize=4096)(_millis)
_cached_units = lru_cache(maxsize=4096)(_units)
