"""Aggregate statistics over few runs, with stratified bootstrap confidence intervals.

The methods follow Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS 2021): with a handful of seeds per task, report interval estimates of
robust aggregates (interquartile mean, optimality gap) rather than point estimates of the mean,
and compare agents by the probability of improvement and by performance profiles.

Scores are given per task: either a ``[runs, tasks]`` matrix or a sequence of 1-D arrays, one
per task, when tasks hold different numbers of runs. A *task* is an environment; a *run* is one
seed. The bootstrap is stratified: each replicate resamples runs with replacement within every
task separately, so every task keeps its weight in every replicate.

Everything here is plain numpy and deterministic given ``seed`` (``np.random.default_rng``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np

# Per-env (random policy score, best achievable score) used for min-max normalisation:
# normalised = (score - low) / (high - low), so 0 is random play and 1 is the maximum.
# CartPole-v1: a uniformly random policy survives about 22 steps; episodes are cut at 500.
DEFAULT_NORMALIZERS: dict[str, tuple[float, float]] = {
    "gymnax/CartPole-v1": (22.0, 500.0),
}

Scores = np.ndarray | Sequence[Sequence[float] | np.ndarray]


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with the low and high ends of its confidence interval."""

    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


# ----------------------------------------------------------------------------- normalisation


def normalize(
    scores: np.ndarray | Sequence[float],
    env: str,
    normalizers: Mapping[str, tuple[float, float]] | None = None,
) -> np.ndarray:
    """Min-max normalise ``scores`` of ``env`` with ``normalizers`` (default: the built-ins).

    Returns the raw scores (as a float array) when no normaliser is known for ``env``; use
    :func:`has_normalizer` to tell the cases apart.
    """
    table = DEFAULT_NORMALIZERS if normalizers is None else normalizers
    x = np.asarray(scores, dtype=np.float64)
    if env not in table:
        return x
    low, high = table[env]
    if high == low:
        raise ValueError(f"normaliser for {env} has equal min and max ({low}); cannot scale")
    return (x - low) / (high - low)


def has_normalizer(env: str, normalizers: Mapping[str, tuple[float, float]] | None = None) -> bool:
    """Whether ``env`` has a normaliser in ``normalizers`` (default: the built-ins)."""
    return env in (DEFAULT_NORMALIZERS if normalizers is None else normalizers)


# ----------------------------------------------------------------------------- point statistics


def _iqm_weights(n: int) -> np.ndarray:
    """Weights of the sorted samples in the interquartile mean of ``n`` samples.

    Each sorted sample i covers the interval [i, i + 1) of the ranks; its weight is its overlap
    with [n/4, 3n/4]. When n is a multiple of 4 this is exactly the 25% trimmed mean; otherwise
    the samples that straddle a quartile count fractionally instead of being all in or all out.
    """
    lo, hi = n / 4, 3 * n / 4
    edges = np.arange(n + 1)
    weights = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None)
    return weights / weights.sum()


def iqm(values: np.ndarray | Sequence[float], axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% of ``values`` (along ``axis``).

    ``axis=None`` pools every value. Matches ``rlzoo.launch.stats.iqm`` on 1-D input.
    """
    x = np.asarray(values, dtype=np.float64)
    if axis is None:
        x, axis = x.ravel(), 0
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("interquartile mean of no values")
    result = np.sort(x, axis=-1) @ _iqm_weights(n)
    return float(result) if np.ndim(result) == 0 else result


def optimality_gap(
    values: np.ndarray | Sequence[float], threshold: float = 1.0, axis: int | None = None
) -> np.ndarray | float:
    """Mean shortfall below ``threshold``: ``mean(max(threshold - x, 0))``; lower is better.

    Unlike the mean, scores above the threshold earn nothing extra, so one run far above the
    target cannot hide other runs that fail.
    """
    x = np.asarray(values, dtype=np.float64)
    result = np.mean(np.maximum(threshold - x, 0.0), axis=axis)
    return float(result) if np.ndim(result) == 0 else result


# ----------------------------------------------------------------------------- per-task layout


def _columns(scores: Scores) -> list[np.ndarray]:
    """Scores as one finite 1-D float array per task."""
    if isinstance(scores, np.ndarray):
        if scores.ndim != 2:
            raise ValueError(f"scores must be a [runs, tasks] matrix, got shape {scores.shape}")
        columns = [scores[:, j].astype(np.float64) for j in range(scores.shape[1])]
    else:
        columns = [np.asarray(c, dtype=np.float64).ravel() for c in scores]
    if not columns:
        raise ValueError("scores hold no task")
    for j, column in enumerate(columns):
        if column.size == 0:
            raise ValueError(f"task {j} has no runs")
        if not np.all(np.isfinite(column)):
            raise ValueError(f"task {j} has non-finite scores; drop or replace them first")
    return columns


def _resample(columns: list[np.ndarray], reps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``reps`` stratified bootstrap replicates: per task an array [reps, runs of that task]."""
    out = []
    for column in columns:
        idx = rng.integers(0, column.size, size=(reps, column.size))
        out.append(column[idx])
    return out


# Aggregates take per-task arrays shaped [..., runs_j] and reduce the run axis and the tasks.
# The mean and the optimality gap average per-task means, so each task weighs the same even
# with unequal runs; the median and IQM pool all runs of all tasks, as in Agarwal et al.
def _mean(columns: list[np.ndarray]) -> np.ndarray:
    return np.mean([c.mean(axis=-1) for c in columns], axis=0)


def _median(columns: list[np.ndarray]) -> np.ndarray:
    return np.median(np.concatenate(columns, axis=-1), axis=-1)


def _iqm(columns: list[np.ndarray]) -> np.ndarray:
    return iqm(np.concatenate(columns, axis=-1), axis=-1)


def _gap(threshold: float) -> Callable[[list[np.ndarray]], np.ndarray]:
    def gap(columns: list[np.ndarray]) -> np.ndarray:
        return np.mean([optimality_gap(c, threshold, axis=-1) for c in columns], axis=0)

    return gap


def aggregate_functions(
    threshold: float | None = 1.0,
) -> dict[str, Callable[[list[np.ndarray]], np.ndarray]]:
    """Mean, median, IQM and (unless ``threshold`` is None) optimality gap over per-task runs."""
    functions = {"mean": _mean, "median": _median, "iqm": _iqm}
    if threshold is not None:
        functions["optimality_gap"] = _gap(threshold)
    return functions


def aggregate_scores(scores: Scores, threshold: float | None = 1.0) -> dict[str, float]:
    """Point estimates of every aggregate of :func:`aggregate_functions`."""
    columns = _columns(scores)
    return {name: float(f(columns)) for name, f in aggregate_functions(threshold).items()}


# ----------------------------------------------------------------------------- intervals


def _percentile_interval(
    replicates: np.ndarray, confidence: float, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(replicates, [tail, 100 - tail], axis=axis)
    return low, high


def stratified_bootstrap(
    scores: Scores,
    statistic: Callable[[list[np.ndarray]], np.ndarray],
    reps: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """``reps`` bootstrap replicates of ``statistic``, resampling runs within each task.

    ``statistic`` gets one array per task shaped ``[reps, runs_j]`` and returns ``[reps, ...]``.
    """
    if reps < 1:
        raise ValueError(f"reps must be positive, got {reps}")
    rng = np.random.default_rng(seed)
    return np.asarray(statistic(_resample(_columns(scores), reps, rng)))


def aggregate_intervals(
    scores: Scores,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    threshold: float | None = 1.0,
) -> dict[str, Interval]:
    """Every aggregate's point estimate with a stratified bootstrap percentile interval.

    All aggregates share the same replicates, so their intervals are mutually consistent.
    """
    columns = _columns(scores)
    rng = np.random.default_rng(seed)
    samples = _resample(columns, reps, rng)
    out = {}
    for name, f in aggregate_functions(threshold).items():
        low, high = _percentile_interval(np.asarray(f(samples)), confidence)
        out[name] = Interval(float(f(columns)), float(low), float(high))
    return out


# ----------------------------------------------------------------------------- improvement


def _pairwise_win_rate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mann-Whitney count along the last axis: P(x > y) with ties worth one half."""
    diff = x[..., :, None] - y[..., None, :]
    return np.mean((np.sign(diff) + 1) / 2, axis=(-2, -1))


def probability_of_improvement(x: Scores, y: Scores) -> float:
    """P(X > Y): per task, the chance a random run of X beats a random run of Y (ties count
    1/2), averaged over tasks. ``x`` and ``y`` must cover the same tasks in the same order.
    """
    xs, ys = _columns(x), _columns(y)
    if len(xs) != len(ys):
        raise ValueError(f"x has {len(xs)} tasks and y has {len(ys)}; they must match")
    return float(np.mean([_pairwise_win_rate(a, b) for a, b in zip(xs, ys, strict=True)]))


def probability_of_improvement_interval(
    x: Scores, y: Scores, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """:func:`probability_of_improvement` with a bootstrap interval.

    Runs of X and of Y are resampled independently, each within its task.
    """
    xs, ys = _columns(x), _columns(y)
    if len(xs) != len(ys):
        raise ValueError(f"x has {len(xs)} tasks and y has {len(ys)}; they must match")
    rng = np.random.default_rng(seed)
    xb, yb = _resample(xs, reps, rng), _resample(ys, reps, rng)
    replicates = np.mean(
        [_pairwise_win_rate(a, b) for a, b in zip(xb, yb, strict=True)], axis=0
    )  # [reps]
    low, high = _percentile_interval(replicates, confidence)
    return Interval(probability_of_improvement(xs, ys), float(low), float(high))


# ----------------------------------------------------------------------------- profiles, curves


def _profile(columns: list[np.ndarray], taus: np.ndarray) -> np.ndarray:
    # Fraction of runs above each tau per task, then averaged over tasks: [..., taus].
    per_task = [np.mean(c[..., :, None] > taus, axis=-2) for c in columns]
    return np.mean(per_task, axis=0)


def performance_profile(scores: Scores, taus: np.ndarray | Sequence[float]) -> np.ndarray:
    """Fraction of runs with score > tau, for each tau (per task, then averaged over tasks)."""
    return _profile(_columns(scores), np.asarray(taus, dtype=np.float64))


def performance_profile_band(
    scores: Scores,
    taus: np.ndarray | Sequence[float],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Performance profile with a pointwise stratified bootstrap band: (profile, low, high)."""
    taus = np.asarray(taus, dtype=np.float64)
    columns = _columns(scores)
    rng = np.random.default_rng(seed)
    replicates = _profile(_resample(columns, reps, rng), taus)  # [reps, taus]
    low, high = _percentile_interval(replicates, confidence)
    return _profile(columns, taus), low, high


def curve_band(
    values: np.ndarray | Sequence[Sequence[float]],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of a learning curve and a bootstrap band at every x point.

    ``values`` is ``[seeds, points]``; NaN marks a point a seed did not log and is ignored.
    Seeds are resampled whole (one index set for all points), so each replicate is a set of
    complete curves. Returns (mean, low, high), each ``[points]``.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"values must be [seeds, points] with at least one seed, got {x.shape}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], size=(reps, x.shape[0]))
    with warnings.catch_warnings():
        # A point no seed logged stays NaN; numpy's "mean of empty slice" warning adds nothing.
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(x, axis=0)
        replicates = np.nanmean(x[idx], axis=1)  # [reps, points]
        low, high = _percentile_interval(replicates, confidence)
    return mean, low, high
