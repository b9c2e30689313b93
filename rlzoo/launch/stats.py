"""Summary statistics over seeds."""

from __future__ import annotations

import numpy as np

from rlzoo.launch.bootstrap import iqm


def describe(values) -> dict[str, float]:
    x = np.asarray(values, dtype=np.float64).ravel()
    return {
        "mean": float(np.mean(x)),
        "std": float(np.std(x)),
        "iqm": float(iqm(x)),
        "min": float(np.min(x)),
        "max": float(np.max(x)),
    }
