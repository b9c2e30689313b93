"""rlzoo.analysis.stats: hand-computed values, agreement with rliable, lazy imports."""

import json
import math
import subprocess
import sys
from itertools import product

import numpy as np
import pytest
from rliable import metrics as rl_metrics

from rlzoo.analysis import stats

pytestmark = pytest.mark.timeout(120)

REPS = 300  # enough for the checks below, and fast


# ----------------------------------------------------------------------------- per-seed summaries


def test_describe_by_hand():
    d = stats.describe([1, 2, 3, 4, 5, 6, 7, 8])
    assert d == pytest.approx(
        {"mean": 4.5, "std": math.sqrt(5.25), "iqm": 4.5, "min": 1.0, "max": 8.0}
    )
    assert all(type(v) is float for v in d.values())
    assert stats.describe([100, 0, 3, 1, 4, 2, 100, 0])["iqm"] == pytest.approx(2.5)  # 1..4
    # n = 6: int(6 / 4) = 1 value cut at each end, the mean of 2..5 is left.
    assert stats.describe([6, 5, 4, 3, 2, 1])["iqm"] == pytest.approx(3.5)
    assert stats.describe(np.array([[7.0]])) == {
        "mean": 7.0,
        "std": 0.0,
        "iqm": 7.0,
        "min": 7.0,
        "max": 7.0,
    }
    assert math.isnan(stats.describe([1.0, math.nan, 3.0])["iqm"])
    with pytest.raises(ValueError, match="no values"):
        stats.describe([])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 40])
def test_iqm_equals_rliable(n):
    x = np.random.default_rng(n).normal(size=n)
    assert stats.iqm(x) == pytest.approx(rl_metrics.aggregate_iqm(x))
    # rliable pools a [runs, tasks] matrix; so does describe (it flattens).
    m = np.random.default_rng(100 + n).normal(size=(n, 3))
    assert stats.iqm(m) == pytest.approx(rl_metrics.aggregate_iqm(m))


def test_seed_summary_by_hand():
    s = stats.seed_summary([1.0, 2.0, 3.0, 4.0, 5.0], reps=REPS)
    assert set(s) == {"mean", "iqm", "ci95"}
    assert s["mean"] == pytest.approx(3.0) and s["iqm"] == pytest.approx(3.0)
    low, high = s["ci95"]
    assert 1.0 <= low < 3.0 < high <= 5.0
    assert stats.seed_summary([4.0, 4.0, 4.0], reps=REPS) == {
        "mean": 4.0,
        "iqm": 4.0,
        "ci95": [4.0, 4.0],
    }
    assert stats.seed_summary([2.5], reps=REPS)["ci95"] == [2.5, 2.5]
    json.dumps(s)  # goes into the sweep's results.json as it is
    nan = stats.seed_summary([1.0, math.nan], reps=REPS)
    assert math.isnan(nan["mean"]) and all(math.isnan(v) for v in nan["ci95"])


def test_seed_summary_is_seeded_and_leaves_numpy_global_state():
    x = np.random.default_rng(0).normal(size=6)
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    a = stats.seed_summary(x, reps=REPS, seed=7)
    assert np.random.random() == before  # rliable draws from np.random; the state is restored
    assert a == stats.seed_summary(x, reps=REPS, seed=7)
    assert a["ci95"] != stats.seed_summary(x, reps=REPS, seed=8)["ci95"]


def test_mean_interval_matches_normal_approximation():
    # For a large sample the percentile bootstrap of the mean is close to mean +- 1.96 s/sqrt(n).
    x = np.random.default_rng(3).normal(10.0, 2.0, size=200)
    iv = stats.mean_interval(x, reps=4000, seed=1)
    half = 1.96 * x.std() / math.sqrt(x.size)
    assert iv.estimate == pytest.approx(x.mean())
    assert iv.low == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert iv.high == pytest.approx(x.mean() + half, abs=0.15 * half)


# ----------------------------------------------------------------------------- aggregates


def test_aggregates_equal_rliable_on_a_matrix():
    m = np.random.default_rng(4).uniform(size=(5, 3))
    agg = stats.aggregate_intervals(m, reps=REPS)
    assert agg["mean"].estimate == pytest.approx(rl_metrics.aggregate_mean(m))
    assert agg["median"].estimate == pytest.approx(rl_metrics.aggregate_median(m))
    assert agg["iqm"].estimate == pytest.approx(rl_metrics.aggregate_iqm(m))
    assert agg["optimality_gap"].estimate == pytest.approx(rl_metrics.aggregate_optimality_gap(m))
    gap = stats.aggregate_intervals(m * 500, reps=REPS, threshold=400.0)["optimality_gap"]
    assert gap.estimate == pytest.approx(rl_metrics.aggregate_optimality_gap(m * 500, 400.0))
    assert set(stats.aggregate_intervals(m, reps=REPS, threshold=None)) == {
        "mean",
        "median",
        "iqm",
    }


def test_aggregates_with_unequal_runs_per_task():
    # The mean, median and gap weigh each task equally; the IQM pools all six runs.
    tasks = [[0.0, 1.0], [0.5, 0.5, 0.5, 0.5]]
    agg = stats.aggregate_intervals(tasks, reps=REPS)
    assert agg["mean"].estimate == pytest.approx(0.5)
    assert agg["median"].estimate == pytest.approx(0.5)
    assert agg["optimality_gap"].estimate == pytest.approx((0.5 + 0.5) / 2)
    assert agg["iqm"].estimate == pytest.approx(0.5)  # int(6/4) = 1 cut: 0.5 x 4
    with pytest.raises(ValueError, match="non-finite"):
        stats.aggregate_intervals([[1.0, math.nan]])
    with pytest.raises(ValueError, match="no runs"):
        stats.aggregate_intervals([[1.0], []])


def test_stratified_intervals_contain_estimate_and_shrink_with_runs():
    rng = np.random.default_rng(0)
    few = rng.normal(0.5, 0.2, size=(5, 3))
    many = rng.normal(0.5, 0.2, size=(100, 3))
    small = stats.aggregate_intervals(few, reps=1000, seed=0)
    large = stats.aggregate_intervals(many, reps=1000, seed=0)
    for name in stats.AGGREGATE_NAMES:
        for iv in (small[name], large[name]):
            assert iv.low <= iv.estimate <= iv.high, (name, iv)
        assert large[name].high - large[name].low < small[name].high - small[name].low, name


def test_bootstrap_is_stratified_and_seeded():
    # Constant within each task: resampling within tasks can never change the mean. Pooled
    # resampling across tasks would.
    iv = stats.aggregate_intervals(np.array([[0.0, 1.0]] * 6), reps=REPS)["mean"]
    assert (iv.estimate, iv.low, iv.high) == (0.5, 0.5, 0.5)
    x = np.random.default_rng(0).normal(size=(6, 2))
    a = stats.aggregate_intervals(x, reps=REPS, seed=7)
    assert a == stats.aggregate_intervals(x, reps=REPS, seed=7)
    assert a != stats.aggregate_intervals(x, reps=REPS, seed=8)


# ----------------------------------------------------------------------------- improvement


def _brute_force_poi(xs, ys):
    per_task = []
    for x, y in zip(xs, ys, strict=True):
        wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in product(x, y))
        per_task.append(wins / (len(x) * len(y)))
    return sum(per_task) / len(per_task)


def test_probability_of_improvement_by_hand():
    x = np.array([[5.0, 7.0], [6.0, 8.0], [9.0, 9.5]])
    y = np.array([[1.0, 2.0], [2.0, 3.0], [4.0, 6.9]])
    iv = stats.probability_of_improvement(x, y, reps=REPS)
    assert (iv.estimate, iv.low, iv.high) == (1.0, 1.0, 1.0)  # X always above Y
    assert stats.probability_of_improvement(y, x, reps=REPS).estimate == 0.0
    assert stats.probability_of_improvement(x, x, reps=REPS).estimate == 0.5
    # Random integer scores (many ties), unequal runs per task and between X and Y.
    rng = np.random.default_rng(5)
    xs = [rng.integers(0, 5, size=n).astype(float) for n in (3, 7, 4)]
    ys = [rng.integers(0, 5, size=n).astype(float) for n in (5, 2, 6)]
    expected = _brute_force_poi(xs, ys)
    iv = stats.probability_of_improvement(xs, ys, reps=REPS, seed=2)
    assert iv.estimate == pytest.approx(expected)
    assert 0 <= iv.low <= iv.estimate <= iv.high <= 1
    back = stats.probability_of_improvement(ys, xs, reps=REPS)
    assert back.estimate == pytest.approx(1 - expected)
    with pytest.raises(ValueError, match="tasks"):
        stats.probability_of_improvement(xs, ys[:2])


# ----------------------------------------------------------------------------- profiles, curves


def test_performance_profile_by_hand():
    tasks = [[0.1, 0.5, 0.9, 1.2], [0.2, 0.2, 0.6, 0.8]]
    taus = [0.0, 0.5, 1.0]
    # Task 1: 4/4, 2/4 (0.5 is not > 0.5), 1/4; task 2: 4/4, 2/4, 0/4.
    expected = [1.0, 0.5, (0.25 + 0.0) / 2]
    profile, low, high = stats.performance_profile(tasks, taus, reps=REPS)
    np.testing.assert_allclose(profile, expected)
    assert np.all(low <= profile) and np.all(profile <= high)
    assert low[0] == high[0] == 1.0  # every resample is above tau = 0


def test_curve_band():
    values = np.array([[1.0, 2.0, 5.0], [3.0, 2.0, np.nan], [5.0, 2.0, 7.0]])
    mean, low, high = stats.curve_band(values, reps=REPS)
    np.testing.assert_allclose(mean, [3.0, 2.0, 6.0])
    assert np.all(low <= mean) and np.all(mean <= high)
    assert low[1] == high[1] == 2.0  # no spread over seeds, no band
    assert low[0] >= 1.0 and high[0] <= 5.0
    mean, low, high = stats.curve_band([[np.nan, 1.0]], reps=10)
    assert math.isnan(mean[0]) and math.isnan(low[0]) and mean[1] == low[1] == high[1] == 1.0


def test_normalize_scores():
    np.testing.assert_allclose(
        stats.normalize_scores([22.0, 500.0, 261.0], "gymnax/CartPole-v1"), [0, 1, 0.5]
    )
    np.testing.assert_allclose(stats.normalize_scores([3.0], "brax/hopper"), [3.0])  # none known
    custom = {"brax/hopper": (0.0, 4.0)}
    np.testing.assert_allclose(stats.normalize_scores([3.0], "brax/hopper", custom), [0.75])
    assert stats.has_normalizer("brax/hopper", custom)
    assert not stats.has_normalizer("brax/hopper")
    with pytest.raises(ValueError, match="equal min and max"):
        stats.normalize_scores([1.0], "x", {"x": (2.0, 2.0)})


def test_importing_stats_loads_no_heavy_dependency():
    # The launcher imports rlzoo.analysis.stats at start-up.
    code = (
        "import sys, rlzoo.analysis.stats; "
        "print([m for m in ('rliable', 'scipy', 'pandas', 'matplotlib', 'arch', 'seaborn') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
