"""Polynomial hashes of n-grams over code points or token hashes: what the copy, repetition and
contamination filters compare, from one definition."""

from __future__ import annotations

import numpy as np

MIX = np.uint64(0x9E3779B97F4A7C15)
_BASE = 1099511628211  # odd, so invertible modulo 2^64
_POWERS: list[np.ndarray] = [np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)]  # BASE^i, BASE^-i


def powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE^i and BASE^-i modulo 2^64 for i < size (grown on demand, kept)."""
    if _POWERS[0].size < size:
        grown = max(size, 2 * _POWERS[0].size)
        with np.errstate(over="ignore"):
            up = np.full(grown, _BASE, dtype=np.uint64)
            down = np.full(grown, pow(_BASE, -1, 2**64), dtype=np.uint64)
            up[0] = down[0] = 1
            _POWERS[:] = [np.cumprod(up, dtype=np.uint64), np.cumprod(down, dtype=np.uint64)]
    return _POWERS[0][:size], _POWERS[1][:size]


def gram_hashes(codes: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """64-bit hash of the n codes (code points, or token hashes) from each position in `at`.

    Polynomial hashes from one prefix sum (sum of c_j * BASE^j, times BASE^-i), modulo 2^64, then
    mixed: two passes over the characters whatever n is, and the rest only at the positions asked."""
    up, down = powers(codes.size + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(codes.size + 1, dtype=np.uint64)
        np.cumsum(codes * up[:codes.size], out=prefix[1:])
        h = prefix[at + n]
        h -= prefix[at]
        h *= down[at]
        h ^= h >> np.uint64(29)
        h *= MIX
        h ^= h >> np.uint64(32)
    return h
