"""Dataset measures from "A Dataset Perspective on Offline Reinforcement Learning"
(Schweighofer et al., 2022): trajectory quality (TQ) and state-action coverage (SACo).

* ``TQ = (mean episode return - R_random) / (R_expert - R_random)``: the normalised
  average trajectory return (the paper normalises by the random and the expert (best
  behaviour) datasets' average returns).
* ``SACo = unique (s, a) pairs in the dataset / unique (s, a) pairs in a reference
  dataset`` (the paper's reference: the replay buffer of the online run, the dataset with
  the most unique pairs). Exact on discrete data (integer / boolean arrays). Continuous
  values are discretised first: each coordinate ``x`` becomes ``floor(x / resolution)``,
  a grid of cells of side ``resolution`` in the data's own units, and pairs are counted
  by cell. The count depends on the resolution; compare datasets at one resolution only.

Host-side numpy: these describe a dataset once, outside any compiled program.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def episode_returns(data: dict[str, Any]) -> np.ndarray:
    """Return of every episode (an end is ``terminated | truncated``; a trailing run counts)."""
    rewards = np.asarray(data["rewards"], np.float64)
    ends = np.asarray(data["terminated"], bool) | np.asarray(data["truncated"], bool)
    ids = np.cumsum(ends) - ends
    return np.bincount(ids, weights=rewards)


def trajectory_quality(data: dict[str, Any], random_return: float, expert_return: float) -> float:
    """TQ: the dataset's mean episode return on the scale random = 0, expert = 1."""
    mean = float(episode_returns(data).mean())
    return (mean - random_return) / (expert_return - random_return)


def _cells(x: Any, resolution: float | None) -> np.ndarray:
    x = np.asarray(x)
    x = x.reshape((x.shape[0], -1))
    if x.dtype.kind in "biu":
        return x.astype(np.int64)
    if resolution is None:
        raise ValueError(
            "continuous observations or actions need a resolution for SACo (the side of "
            "the grid cells each coordinate is binned into)."
        )
    return np.floor(x / resolution).astype(np.int64)


def unique_state_actions(data: dict[str, Any], resolution: float | None = None) -> int:
    """Distinct (state, action) pairs: exact for discrete data, by grid cell otherwise."""
    pairs = np.concatenate(
        [_cells(data["observations"], resolution), _cells(data["actions"], resolution)], axis=1
    )
    return int(np.unique(pairs, axis=0).shape[0])


def state_action_coverage(
    data: dict[str, Any], reference: dict[str, Any] | int, resolution: float | None = None
) -> float:
    """SACo: unique pairs of ``data`` over those of ``reference`` (a dataset or a count)."""
    ref = reference if isinstance(reference, int) else unique_state_actions(reference, resolution)
    return unique_state_actions(data, resolution) / ref
