"""Cell scores with bootstrap confidence intervals over items, seeded so a rerun gives the same interval."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class Estimate:
    n: int
    score: float | None
    ci_low: float | None
    ci_high: float | None


def _rng(seed: int, key: str) -> np.random.Generator:
    """One stream per cell, from the evaluation's seed and the cell's name: independent of the order
    the cells are computed in."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def bootstrap(scores: Sequence[float], key: str, seed: int = 0, resamples: int = 1000,
              confidence: float = 0.95) -> Estimate:
    """Mean of `scores` with a percentile bootstrap interval (items resampled with replacement)."""
    values = np.asarray([s for s in scores if s is not None], dtype=np.float64)
    n = int(values.size)
    if n == 0:
        return Estimate(0, None, None, None)
    mean = float(values.mean())
    if n == 1:
        return Estimate(1, mean, mean, mean)
    draws = _rng(seed, key).integers(0, n, size=(resamples, n))
    means = values[draws].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Estimate(n, mean, float(min(low, mean)), float(max(high, mean)))
