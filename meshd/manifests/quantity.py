"""Kubernetes resource quantities ("500m", "64Mi", "1.5", "2e3"): exact decimal parsing, rounded up."""

from __future__ import annotations

import decimal
import math
import re
from decimal import Decimal

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_EXP = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_MAX_TEXT = 64
_MAX_EXPONENT = 30
_LIMIT = Decimal(2**63 - 1)
_CONTEXT = decimal.Context(prec=100, traps=[decimal.InvalidOperation, decimal.Overflow])


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity, or one out of range."""


def parse_quantity(value: str | float) -> Decimal:
    """The exact value of a quantity ("64Mi" -> 67108864, "500m" -> 0.5); raises QuantityError."""
    if isinstance(value, bool):
        raise QuantityError(f"expected a quantity such as 500m or 64Mi, got {value!r}")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"{value!r} is not a quantity")
        text = repr(value)
        if "e" in text:  # 1e+20 -> the decimal suffix form below understands it
            mantissa, exp = text.split("e")
            text = f"{mantissa}e{int(exp)}"
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise QuantityError(f"expected a quantity such as 500m or 64Mi, got {type(value).__name__}")
    if len(text) > _MAX_TEXT:
        raise QuantityError(f"quantity {text[:_MAX_TEXT]}... is too long")
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(f"{value!r} is not a quantity (examples: 500m, 0.5, 2, 64Mi, 1G, 1e3)")
    with decimal.localcontext(_CONTEXT):
        number = Decimal(match["number"])
        if match["binary"]:
            result = number * _BINARY[match["binary"]]
        else:
            exponent = int(match["exp"][1:]) if match["exp"] else _DECIMAL_EXP[match["decimal"] or ""]
            if abs(exponent) > _MAX_EXPONENT:
                raise QuantityError(f"{value!r}: exponent out of range")
            result = number.scaleb(exponent)
    if abs(result) > _LIMIT:
        raise QuantityError(f"{value!r} is too large")
    return result


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=decimal.ROUND_CEILING))


def _non_negative(value: str | float, what: str) -> Decimal:
    quantity = parse_quantity(value)
    if quantity < 0:
        raise QuantityError(f"{what} {value!r} must not be negative")
    return quantity


def parse_cpu(value: str | float) -> int:
    """CPU in millicores: "500m" -> 500, "2" -> 2000, 0.25 -> 250; fractions of a millicore round up."""
    with decimal.localcontext(_CONTEXT):
        return _ceil(_non_negative(value, "cpu") * 1000)


def parse_memory(value: str | float) -> int:
    """Memory in bytes: "64Mi" -> 67108864, "1G" -> 10**9, "1e3" -> 1000; fractions of a byte round up."""
    return _ceil(_non_negative(value, "memory"))


def format_cpu(millicores: int) -> str:
    """500 -> "500m", 2000 -> "2": the form Kubernetes prints."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def format_memory(num_bytes: int) -> str:
    """67108864 -> "64Mi", 10**9 -> "1G", 1000 -> "1k": the shortest exact form."""
    if num_bytes == 0:
        return "0"
    for suffix, factor in (
        ("Ei", 2**60),
        ("Pi", 2**50),
        ("Ti", 2**40),
        ("Gi", 2**30),
        ("Mi", 2**20),
        ("Ki", 2**10),
    ):
        if num_bytes % factor == 0:
            binary = f"{num_bytes // factor}{suffix}"
            break
    else:
        binary = str(num_bytes)
    for suffix, exponent in (("E", 18), ("P", 15), ("T", 12), ("G", 9), ("M", 6), ("k", 3)):
        if num_bytes % 10**exponent == 0:
            dec = f"{num_bytes // 10**exponent}{suffix}"
            return dec if len(dec) < len(binary) else binary
    return binary
