"""Exact sums of float64 values, so that sums over all rows do not depend on how the rows are split.

A sum over every row (|SHAP| per feature, the SHAP sums' moments, the per-step metric terms) is computed per part
file and then merged. Floating-point addition is not associative, so float sums of the same rows split otherwise
would differ in their last bits, and a table printed from them could differ too. Instead every finite double is
an integer multiple of 2**-1126 here (2**-1074, the smallest subnormal, with 52 bits to spare so no shift is
negative), and the sums are Python integers in those units: exact, so any split merges to the same integer, and
the mean is that integer over the row count, rounded once (Python's int / int is correctly rounded).

Vectorised: numpy splits each value into its 53-bit integer mantissa (in two halves) and its exponent, sums the
halves per (column, exponent) with bincount (float64 sums of integers below 2**53, so exact), and Python adds the
few hundred grouped totals shifted into place.
"""

from __future__ import annotations

import math

import numpy as np

UNIT_BITS = 1126  # a value v is the integer v * 2**UNIT_BITS
_HALF_BITS = 26
_BLOCK = 1 << 20  # terms per bincount: |sum of halves| < 2**27 * 2**20, far below 2**53
_SPLIT = float(2**27 + 1)  # Veltkamp's constant: x = hi + lo with hi, lo of 26 bits


def exact_sums(values: np.ndarray) -> list[int]:
    """Per row of `values` (n_sums, n_terms), the exact sum of its terms in units of 2**-UNIT_BITS; a 1-D array
    is one row. float32 stays float32 (24-bit mantissas: one bincount); anything else is summed as float64.
    Non-finite terms are refused (they have no exact sum)."""
    matrix = np.asarray(values)
    if matrix.dtype != np.float32:
        matrix = matrix.astype(np.float64, copy=False)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    totals = [0] * matrix.shape[0]
    for row in range(matrix.shape[0]):
        for start in range(0, matrix.shape[1], _BLOCK):
            totals[row] += _block_sum(matrix[row, start: start + _BLOCK])
    return totals


def _block_sum(terms: np.ndarray) -> int:
    if terms.size == 0:
        return 0
    if not np.isfinite(terms).all():
        raise ValueError("a value to sum is not finite (NaN or infinity)")
    mantissa, exponent = np.frexp(terms)  # terms = mantissa * 2**exponent, 0.5 <= |mantissa| < 1
    low_exponent = int(exponent.min())
    keys = exponent - low_exponent
    total = 0
    if terms.dtype == np.float32:
        bits = 24  # the float32 integer mantissas (< 2**24) are exact float64 bincount weights, their sums too
        grouped = [np.bincount(keys, weights=mantissa * np.float32(2**bits))]
        widths = [0]
    else:
        bits = 53  # the 53-bit integer mantissa in two halves, each summing exactly in float64
        integer = (mantissa * 2.0**bits).astype(np.int64)
        grouped = [np.bincount(keys, weights=integer >> _HALF_BITS),
                   np.bincount(keys, weights=integer & ((1 << _HALF_BITS) - 1))]
        widths = [_HALF_BITS, 0]
    base = low_exponent - bits + UNIT_BITS  # >= 0 for every finite value
    for sums, width in zip(grouped, widths, strict=True):
        for offset in np.flatnonzero(sums).tolist():
            total += int(sums[offset]) << (offset + base + width)
    return total


def exact_square_sums(values: np.ndarray) -> int:
    """The exact sum of the squares of a 1-D array, in units of 2**-UNIT_BITS: each square is split exactly
    into two doubles (Dekker's product) before summing (exact barring underflow below 2**-1022, and then still the
    same for every split of the rows)."""
    x = np.asarray(values, dtype=np.float64)
    scaled = _SPLIT * x
    high = scaled - (scaled - x)
    low = x - high
    square = x * x
    error = ((high * high - square) + 2.0 * high * low) + low * low
    return sum(exact_sums(np.stack([square, error])))


def to_float(total: int, count: int = 1) -> float:
    """total * 2**-UNIT_BITS / count, correctly rounded."""
    return total / (count << UNIT_BITS)


def mean_and_std(total: int, square_total: int, count: int) -> tuple[float, float]:
    """Mean and population standard deviation of `count` values from their exact sum and sum of squares: the
    variance n * sum(x^2) - sum(x)^2 over n^2 is exact in integers and rounded once, then its square root."""
    variance_numerator = count * square_total * (1 << UNIT_BITS) - total * total
    variance = variance_numerator / ((count * count) << (2 * UNIT_BITS))
    return to_float(total, count), math.sqrt(max(variance, 0.0))
