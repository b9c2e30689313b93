"""Statistics over few runs: summaries over seeds and rliable's aggregates with intervals.

The aggregates, their stratified-bootstrap intervals, the probability of improvement and the
performance profiles are computed by ``rliable`` (Agarwal et al., "Deep Reinforcement Learning
at the Edge of the Statistical Precipice", NeurIPS 2021). What is left here is what rliable
lacks:

* :func:`iqm` and :func:`describe`, plain numpy, for the launcher's per-seed summaries (the
  IQM is rliable's definition, ``scipy.stats.trim_mean(x, 0.25)``, without importing scipy);
* :func:`curve_band`, a learning-curve band over seeds that tolerates gaps (NaN);
* score normalisation (:func:`normalize_scores`).

Scores of several *tasks* (envs) are given as one 1-D array of *runs* (seeds) per task, or as
a ``[runs, tasks]`` matrix, rliable's layout. Tasks may hold different numbers of runs: every
task is passed to rliable as an array of its own, which it resamples independently (the
stratified bootstrap). Every function taking ``seed`` is deterministic given it.

Importing this module imports numpy only: rliable (and with it scipy, pandas, arch and
matplotlib) is imported inside the functions that need it, because the launcher imports this
module at start-up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

# Per-env (random policy score, best achievable score) used for min-max normalisation:
# normalised = (score - low) / (high - low), so 0 is random play and 1 is the maximum.
# CartPole-v1: a uniformly random policy survives about 22 steps; episodes are cut at 500.
DEFAULT_NORMALIZERS: dict[str, tuple[float, float]] = {
    "gymnax/CartPole-v1": (22.0, 500.0),
}

# Names of the aggregates of :func:`aggregate_intervals`, as tables and plots print them.
AGGREGATE_NAMES = {
    "mean": "mean",
    "median": "median",
    "iqm": "IQM",
    "optimality_gap": "optimality gap",
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


# ----------------------------------------------------------------------------- per-seed summaries


def _vector(values: np.ndarray | Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("no values to summarise")
    return x


def iqm(values: np.ndarray | Sequence[float]) -> float:
    """Interquartile mean of ``values``: the mean after cutting ``int(n / 4)`` values at each
    end, which is ``rliable.metrics.aggregate_iqm`` (``scipy.stats.trim_mean(x, 0.25)``).

    NaN if any value is NaN.
    """
    x = np.sort(_vector(values))
    if np.isnan(x[-1]):  # sorting puts NaN last
        return math.nan
    cut = int(0.25 * x.size)
    return float(np.mean(x[cut : x.size - cut]))


def describe(values: np.ndarray | Sequence[float]) -> dict[str, float]:
    """``mean, std, iqm, min, max`` of per-seed scores (``std`` with ddof 0; a NaN seed makes
    every entry NaN)."""
    x = _vector(values)
    return {
        "mean": float(np.mean(x)),
        "std": float(np.std(x)),
        "iqm": iqm(x),
        "min": float(np.min(x)),
        "max": float(np.max(x)),
    }


def seed_summary(
    scores: np.ndarray | Sequence[float], reps: int = 2000, seed: int = 0
) -> dict[str, float | list[float]]:
    """Mean, IQM and a 95% bootstrap interval of the mean (``ci95``) of one config's
    per-seed scores. With a non-finite score the mean and IQM follow it and ``ci95`` is NaN.
    """
    x = _vector(scores)
    if not np.all(np.isfinite(x)):
        return {"mean": float(np.mean(x)), "iqm": iqm(x), "ci95": [math.nan, math.nan]}
    interval = mean_interval(x, reps=reps, confidence=0.95, seed=seed)
    return {"mean": interval.estimate, "iqm": iqm(x), "ci95": [interval.low, interval.high]}


# ----------------------------------------------------------------------------- normalisation


def normalize_scores(
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


# ----------------------------------------------------------------------------- rliable


def _tasks(scores: Scores) -> list[np.ndarray]:
    """Scores as one finite ``[runs, 1]`` array per task (rliable's layout, one task each)."""
    if isinstance(scores, np.ndarray):
        if scores.ndim != 2:
            raise ValueError(f"scores must be a [runs, tasks] matrix, got shape {scores.shape}")
        columns = [scores[:, j] for j in range(scores.shape[1])]
    else:
        columns = list(scores)
    if not columns:
        raise ValueError("scores hold no task")
    tasks = []
    for j, column in enumerate(columns):
        x = np.asarray(column, dtype=np.float64).ravel()
        if x.size == 0:
            raise ValueError(f"task {j} has no runs")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"task {j} has non-finite scores; drop or replace them first")
        tasks.append(x[:, None])
    return tasks


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for the duration, then restore it.

    rliable 1.2.0 draws its bootstrap indices from ``np.random.choice`` (the global generator)
    whatever ``random_state`` is given, so this is the one way to make its intervals
    reproducible without leaving the caller's global state changed.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _check(reps: int, confidence: float) -> None:
    if reps < 1:
        raise ValueError(f"reps must be positive, got {reps}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def _bootstrap(
    arrays: list[np.ndarray],
    func: Callable[..., np.ndarray],
    reps: int,
    confidence: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``func(*arrays)`` and its percentile interval: (estimates, lows, highs), each 1-D.

    rliable's ``get_interval_estimates`` with a list resamples the runs (rows) of each array
    independently: a stratified bootstrap when each array is one task.
    """
    from rliable import library

    _check(reps, confidence)
    with _numpy_seed(seed):
        estimates, intervals = library.get_interval_estimates(
            {"scores": arrays}, func, reps=reps, confidence_interval_size=confidence
        )
    low, high = intervals["scores"]
    return np.atleast_1d(estimates["scores"]).astype(np.float64), low, high


def mean_interval(
    scores: np.ndarray | Sequence[float],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean over the seeds of one task with a bootstrap percentile interval (rliable)."""
    from rliable import metrics

    func = lambda x: np.array([metrics.aggregate_mean(x)])
    (estimate,), (low,), (high,) = _bootstrap(_tasks([scores]), func, reps, confidence, seed)
    return Interval(float(estimate), float(low), float(high))


def _aggregates(threshold: float | None) -> Callable[..., np.ndarray]:
    """Aggregates of per-task ``[runs_j, 1]`` arrays, in :data:`AGGREGATE_NAMES` order.

    On equal runs per task each equals rliable's function on the ``[runs, tasks]`` matrix;
    on unequal runs the mean, median and gap keep every task's weight equal and the IQM pools
    all runs, as rliable's IQM does.
    """
    from rliable import metrics

    def func(*tasks: np.ndarray) -> np.ndarray:
        task_means = np.array([[t.mean() for t in tasks]])  # [1, tasks]
        out = [
            metrics.aggregate_mean(task_means),
            metrics.aggregate_median(task_means),
            metrics.aggregate_iqm(np.concatenate(tasks)),
        ]
        if threshold is not None:
            gaps = [metrics.aggregate_optimality_gap(t, threshold) for t in tasks]
            out.append(np.mean(gaps))
        return np.array(out, dtype=np.float64)

    return func


def aggregate_intervals(
    scores: Scores,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    threshold: float | None = 1.0,
) -> dict[str, Interval]:
    """Mean, median (of task means), IQM and (unless ``threshold`` is None) optimality gap
    below ``threshold``, each with a stratified bootstrap percentile interval (rliable).

    All aggregates share the same resamples, so their intervals are mutually consistent.
    """
    names = [n for n in AGGREGATE_NAMES if threshold is not None or n != "optimality_gap"]
    estimates, lows, highs = _bootstrap(
        _tasks(scores), _aggregates(threshold), reps, confidence, seed
    )
    return {
        name: Interval(float(e), float(lo), float(hi))
        for name, e, lo, hi in zip(names, estimates, lows, highs, strict=True)
    }


def probability_of_improvement(
    x: Scores, y: Scores, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """P(X > Y) with a stratified bootstrap interval (rliable).

    Per task, the chance that a random run of X scores above a random run of Y (ties count
    1/2; rliable's Mann-Whitney statistic), averaged over tasks. ``x`` and ``y`` must cover
    the same tasks in the same order; runs of X and of Y are resampled independently.
    """
    from rliable import metrics

    xs, ys = _tasks(x), _tasks(y)
    if len(xs) != len(ys):
        raise ValueError(f"x has {len(xs)} tasks and y has {len(ys)}; they must match")
    n = len(xs)

    def func(*arrays: np.ndarray) -> np.ndarray:
        per_task = [metrics.probability_of_improvement(arrays[j], arrays[n + j]) for j in range(n)]
        return np.array([np.mean(per_task)])

    (estimate,), (low,), (high,) = _bootstrap(xs + ys, func, reps, confidence, seed)
    return Interval(float(estimate), float(low), float(high))


def performance_profile(
    scores: Scores,
    taus: np.ndarray | Sequence[float],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of runs with score > tau at each tau, with a pointwise stratified bootstrap
    band: (profile, low, high), each ``[taus]``.

    rliable's score distribution (``library.score_distributions``) per task, averaged over
    tasks; on equal runs per task this is ``library.create_performance_profile``.
    """
    from rliable import library

    taus = np.asarray(taus, dtype=np.float64)
    func = lambda *tasks: np.mean([library.score_distributions(t, taus) for t in tasks], axis=0)
    return _bootstrap(_tasks(scores), func, reps, confidence, seed)


# ----------------------------------------------------------------------------- curves (own code)


def curve_band(
    values: np.ndarray | Sequence[Sequence[float]],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of a learning curve, with a bootstrap percentile band at every point.

    ``values`` is ``[seeds, points]``; NaN marks a point a seed did not log (or logged as
    non-finite) and is left out of that point. Seeds are resampled whole, one index set for
    all points, so each resample is a set of complete curves. rliable has no equivalent: its
    bootstrap would resample every point separately and its percentiles do not skip NaN.
    Returns (mean, low, high), each ``[points]``.
    """
    _check(reps, confidence)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"values must be [seeds, points] with at least one seed, got {x.shape}")
    idx = np.random.default_rng(seed).integers(0, x.shape[0], size=(reps, x.shape[0]))
    tail = 100 * (1 - confidence) / 2
    with warnings.catch_warnings():
        # A point no (resampled) seed logged stays NaN; numpy's warning about it adds nothing.
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(x, axis=0)
        low, high = np.nanpercentile(np.nanmean(x[idx], axis=1), [tail, 100 - tail], axis=0)
    return mean, low, high
