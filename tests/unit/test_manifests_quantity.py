"""Kubernetes quantities: exact parsing of every suffix, rounding up, and clean errors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshd.manifests.quantity import (
    QuantityError,
    format_cpu,
    format_memory,
    parse_cpu,
    parse_memory,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "millicores"),
    [
        ("500m", 500),
        ("1", 1000),
        ("2", 2000),
        ("0.5", 500),
        (".5", 500),
        ("1.5", 1500),
        (2, 2000),
        (0.25, 250),
        ("100u", 1),  # below a millicore rounds up, as Kubernetes' MilliValue
        ("1n", 1),
        ("0", 0),
        ("1e-3", 1),
        ("1k", 1_000_000),
        ("+1", 1000),
    ],
)
def test_parse_cpu(text: str | float, millicores: int) -> None:
    assert parse_cpu(text) == millicores


@pytest.mark.parametrize(
    ("text", "num_bytes"),
    [
        ("64Mi", 64 * 2**20),
        ("1Ki", 1024),
        ("1.5Gi", 3 * 2**29),
        ("2Ti", 2 * 2**40),
        ("1Pi", 2**50),
        ("1Ei", 2**60),
        ("1k", 1000),
        ("1M", 10**6),
        ("1G", 10**9),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1E", 10**18),
        ("129e6", 129_000_000),
        ("1E3", 1000),
        ("12e+2", 1200),
        ("1000", 1000),
        (1048576, 2**20),
        (1e9, 10**9),
        ("500m", 1),  # 0.5 bytes rounds up
        ("0", 0),
    ],
)
def test_parse_memory(text: str | float, num_bytes: int) -> None:
    assert parse_memory(text) == num_bytes


@pytest.mark.parametrize(
    "text",
    [
        "",
        "m",
        "Mi",
        "1.2.3",
        "1Ki2",
        "abc",
        "1 Mi",
        "0x10",
        "64MB",
        "1mi",
        "1KI",
        "1e",
        "--1",
        "1e99",
        "9Ei",
        "1" * 80,
        True,
        None,
        [],
        float("nan"),
        float("inf"),
    ],
)
def test_bad_quantities(text: object) -> None:
    with pytest.raises(QuantityError):
        parse_memory(text)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse_cpu(text)  # type: ignore[arg-type]


def test_negative_is_refused() -> None:
    assert parse_quantity("-1") == Decimal(-1)
    with pytest.raises(QuantityError, match="must not be negative"):
        parse_cpu("-100m")
    with pytest.raises(QuantityError, match="must not be negative"):
        parse_memory("-1Mi")


@pytest.mark.parametrize(("millicores", "text"), [(500, "500m"), (2000, "2"), (1500, "1500m"), (0, "0")])
def test_format_cpu(millicores: int, text: str) -> None:
    assert format_cpu(millicores) == text


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [(64 * 2**20, "64Mi"), (10**9, "1G"), (1000, "1k"), (1500, "1500"), (0, "0"), (2**30, "1Gi")],
)
def test_format_memory(num_bytes: int, text: str) -> None:
    assert format_memory(num_bytes) == text


@given(st.integers(min_value=0, max_value=2**62))
def test_memory_format_round_trips(num_bytes: int) -> None:
    assert parse_memory(format_memory(num_bytes)) == num_bytes


@given(st.integers(min_value=0, max_value=2**50))
def test_cpu_format_round_trips(millicores: int) -> None:
    assert parse_cpu(format_cpu(millicores)) == millicores


@given(st.text(alphabet="0123456789.+-eEnumkKMGTPi ", max_size=20) | st.text(max_size=20))
def test_parsers_only_raise_quantity_error(text: str) -> None:
    for parse in (parse_cpu, parse_memory):
        try:
            value = parse(text)
        except QuantityError:
            continue
        assert isinstance(value, int) and value >= 0
