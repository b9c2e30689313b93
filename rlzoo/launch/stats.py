"""Summary statistics over seeds."""

from __future__ import annotations

import numpy as np


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50% (fractional weights at the edges)."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = len(x)
    if n == 0:
        return float("nan")
    # Weight each sorted sample by its overlap with the quantile range [n/4, 3n/4].
    lo, hi = n / 4, 3 * n / 4
    edges = np.arange(n + 1)
    weights = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None)
    return float(np.sum(weights * x) / np.sum(weights))


def describe(values) -> dict[str, float]:
    x = np.asarray(values, dtype=np.float64).ravel()
    return {
        "mean": float(np.mean(x)),
        "std": float(np.std(x)),
        "iqm": iqm(x),
        "min": float(np.min(x)),
        "max": float(np.max(x)),
    }
