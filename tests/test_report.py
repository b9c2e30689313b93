"""Bootstrap statistics against hand-computed values, and the report on synthetic run dirs."""

import json
import math
import re
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from rlzoo import report
from rlzoo.launch import bootstrap
from rlzoo.launch.stats import iqm as stats_iqm

pytestmark = pytest.mark.timeout(120)

REPS = 300  # enough for the checks below, and fast


# ----------------------------------------------------------------------------- statistics


def test_iqm_known_arrays():
    assert bootstrap.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # mean of 3..6
    assert bootstrap.iqm([100, 0, 3, 1, 4, 2, 100, 0]) == pytest.approx(2.5)  # mean of 1..4
    # n = 6: ranks [1.5, 4.5] hold half of 2, all of 3 and 4, half of 5.
    assert bootstrap.iqm([6, 5, 4, 3, 2, 1]) == pytest.approx((1 + 3 + 4 + 2.5) / 3)
    rng = np.random.default_rng(1)
    x = rng.normal(size=12)
    assert bootstrap.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25))
    y = rng.normal(size=7)
    assert bootstrap.iqm(y) == pytest.approx(stats_iqm(y))
    # Along an axis: each row on its own.
    m = rng.normal(size=(3, 8))
    np.testing.assert_allclose(
        bootstrap.iqm(m, axis=1), [scipy_stats.trim_mean(r, 0.25) for r in m]
    )


def test_optimality_gap_by_hand():
    assert bootstrap.optimality_gap([0.5, 1.2, 0.8]) == pytest.approx((0.5 + 0 + 0.2) / 3)
    assert bootstrap.optimality_gap([300, 600], threshold=500) == pytest.approx(100)


def test_aggregate_point_estimates_per_task():
    # Unequal runs per task: the mean and the gap weigh each task equally.
    tasks = [[0.0, 1.0], [0.5, 0.5, 0.5, 0.5]]
    agg = bootstrap.aggregate_scores(tasks, threshold=1.0)
    assert agg["mean"] == pytest.approx((0.5 + 0.5) / 2)
    assert agg["median"] == pytest.approx(0.5)
    assert agg["optimality_gap"] == pytest.approx((0.5 + 0.5) / 2)
    assert "optimality_gap" not in bootstrap.aggregate_scores(tasks, threshold=None)
    matrix = np.array([[0.1, 0.9], [0.3, 0.2], [0.5, 0.4], [0.7, 0.6]])
    agg = bootstrap.aggregate_scores(matrix)
    assert agg["mean"] == pytest.approx(matrix.mean())
    assert agg["iqm"] == pytest.approx(scipy_stats.trim_mean(matrix.ravel(), 0.25))


def test_intervals_contain_estimate_and_shrink_with_runs():
    rng = np.random.default_rng(0)
    few = rng.normal(0.5, 0.2, size=(5, 3))
    many = rng.normal(0.5, 0.2, size=(100, 3))
    small = bootstrap.aggregate_intervals(few, reps=1000, seed=0)
    large = bootstrap.aggregate_intervals(many, reps=1000, seed=0)
    for name in ("mean", "median", "iqm", "optimality_gap"):
        for iv in (small[name], large[name]):
            assert iv.low <= iv.estimate <= iv.high, (name, iv)
        assert large[name].high - large[name].low < small[name].high - small[name].low, name
    assert small["mean"].estimate == pytest.approx(few.mean())


def test_mean_interval_matches_normal_approximation():
    # For a large sample the percentile bootstrap of the mean is close to mean +- 1.96 s/sqrt(n).
    rng = np.random.default_rng(3)
    x = rng.normal(10.0, 2.0, size=200)
    iv = bootstrap.aggregate_intervals(x[:, None], reps=4000, seed=1, threshold=None)["mean"]
    half = 1.96 * x.std() / math.sqrt(x.size)
    assert iv.low == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert iv.high == pytest.approx(x.mean() + half, abs=0.15 * half)


def test_bootstrap_is_stratified_and_seeded():
    # Constant within each task: resampling within tasks can never change the mean. Pooled
    # resampling across tasks would.
    tasks = np.array([[0.0, 1.0]] * 6)
    iv = bootstrap.aggregate_intervals(tasks, reps=REPS, seed=0)["mean"]
    assert (iv.estimate, iv.low, iv.high) == (0.5, 0.5, 0.5)
    x = np.random.default_rng(0).normal(size=(6, 2))
    a = bootstrap.aggregate_intervals(x, reps=REPS, seed=7)
    assert a == bootstrap.aggregate_intervals(x, reps=REPS, seed=7)
    assert a != bootstrap.aggregate_intervals(x, reps=REPS, seed=8)
    replicates = bootstrap.stratified_bootstrap(x, lambda cols: cols[0].mean(axis=-1), reps=50)
    assert replicates.shape == (50,)
    assert x[:, 0].min() <= replicates.min() <= replicates.max() <= x[:, 0].max()


def test_non_finite_scores_are_refused():
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap.aggregate_scores([[1.0, math.nan]])


def _brute_force_poi(xs, ys):
    per_task = []
    for x, y in zip(xs, ys, strict=True):
        wins = 0.0
        for a, b in product(x, y):
            wins += 1.0 if a > b else 0.5 if a == b else 0.0
        per_task.append(wins / (len(x) * len(y)))
    return sum(per_task) / len(per_task)


def test_probability_of_improvement():
    x = np.array([[5.0, 7.0], [6.0, 8.0], [9.0, 9.5]])
    y = np.array([[1.0, 2.0], [2.0, 3.0], [4.0, 6.9]])
    assert bootstrap.probability_of_improvement(x, y) == 1.0
    assert bootstrap.probability_of_improvement(y, x) == 0.0
    iv = bootstrap.probability_of_improvement_interval(x, y, reps=REPS)
    assert (iv.estimate, iv.low, iv.high) == (1.0, 1.0, 1.0)
    assert bootstrap.probability_of_improvement(x, x) == 0.5
    # Random integer scores (many ties), unequal runs per task and between X and Y.
    rng = np.random.default_rng(5)
    xs = [rng.integers(0, 5, size=n).astype(float) for n in (3, 7, 4)]
    ys = [rng.integers(0, 5, size=n).astype(float) for n in (5, 2, 6)]
    expected = _brute_force_poi(xs, ys)
    assert bootstrap.probability_of_improvement(xs, ys) == pytest.approx(expected)
    assert bootstrap.probability_of_improvement(ys, xs) == pytest.approx(1 - expected)
    iv = bootstrap.probability_of_improvement_interval(xs, ys, reps=REPS, seed=2)
    assert iv.estimate == pytest.approx(expected)
    assert 0 <= iv.low <= iv.estimate <= iv.high <= 1
    with pytest.raises(ValueError, match="tasks"):
        bootstrap.probability_of_improvement(xs, ys[:2])


def test_performance_profile_by_hand():
    tasks = [[0.1, 0.5, 0.9, 1.2], [0.2, 0.2, 0.6, 0.8]]
    taus = [0.0, 0.5, 1.0]
    # Task 1: 4/4, 2/4 (0.5 is not > 0.5), 1/4; task 2: 4/4, 2/4, 0/4.
    expected = [1.0, 0.5, (0.25 + 0.0) / 2]
    np.testing.assert_allclose(bootstrap.performance_profile(tasks, taus), expected)
    profile, low, high = bootstrap.performance_profile_band(tasks, taus, reps=REPS)
    np.testing.assert_allclose(profile, expected)
    assert np.all(low <= profile) and np.all(profile <= high)
    assert low[0] == high[0] == 1.0  # every resample is above tau = 0


def test_curve_band():
    values = np.array([[1.0, 2.0, 5.0], [3.0, 2.0, np.nan], [5.0, 2.0, 7.0]])
    mean, low, high = bootstrap.curve_band(values, reps=REPS)
    np.testing.assert_allclose(mean, [3.0, 2.0, 6.0])
    assert np.all(low <= mean) and np.all(mean <= high)
    assert low[1] == high[1] == 2.0  # no spread over seeds, no band
    assert low[0] >= 1.0 and high[0] <= 5.0


def test_normalize():
    np.testing.assert_allclose(
        bootstrap.normalize([22.0, 500.0, 261.0], "gymnax/CartPole-v1"), [0, 1, 0.5]
    )
    np.testing.assert_allclose(bootstrap.normalize([3.0], "brax/hopper"), [3.0])  # none known
    custom = {"brax/hopper": (0.0, 4.0)}
    np.testing.assert_allclose(bootstrap.normalize([3.0], "brax/hopper", custom), [0.75])
    assert bootstrap.has_normalizer("brax/hopper", custom)
    assert not bootstrap.has_normalizer("brax/hopper")


# ----------------------------------------------------------------------------- run directories


def write_run(
    path: Path,
    finals,
    agent="ppo",
    env="gymnax/CartPole-v1",
    iterations=4,
    evals=True,
    summary=True,
):
    """A run directory like rlzoo.train writes: returns climb linearly to ``finals``."""
    path.mkdir(parents=True)
    n = len(finals)
    config = {
        "run": {"agent": agent, "env": env, "num_seeds": n, "seed": 0, "config": {}},
        "agent_config": {"num_envs": 4, "num_steps": 8},
    }
    (path / "config.json").write_text(json.dumps(config))
    rows = []
    for it in range(1, iterations + 1):
        for s, final in enumerate(finals):
            value = None if final is None else final * it / iterations
            rows.append(
                {
                    "iteration": it,
                    "seed": s,
                    "env_steps": float(it * 32),
                    "episode_return": value,
                    "loss": 0.5,
                }
            )
        if evals and it % 2 == 0:
            for s, final in enumerate(finals):
                value = None if final is None else final * it / iterations
                rows.append(
                    {
                        "iteration": it,
                        "seed": s,
                        "eval": True,
                        "deterministic_return": value,
                        "stochastic_return": value and value / 2,
                    }
                )
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if summary and evals:
        per_seed = {"deterministic_return": list(finals)}
        per_seed["stochastic_return"] = [f and f / 2 for f in finals]
        (path / "summary.json").write_text(
            json.dumps(
                {
                    "agent": agent,
                    "env": env,
                    "num_seeds": n,
                    "env_steps_per_seed": iterations * 32,
                    "final_eval_per_seed": per_seed,
                }
            )
        )
    return path


FILES = {
    "learning_curves.png",
    "aggregates.png",
    "performance_profile.png",
    "probability_of_improvement.png",
    "report.md",
    "report.json",
}


def test_report_two_agents(tmp_path):
    good = [480.0, 500.0, 450.0, 470.0]
    weak = [100.0, 60.0, 140.0, 500.0, 90.0]
    write_run(tmp_path / "sweep" / "ppo_big", good)
    # No summary.json: the final scores come from the last evaluation rows.
    write_run(tmp_path / "sweep" / "ppo_small", weak, summary=False)
    result = report.build_report([tmp_path / "sweep"], reps=REPS, seed=0)

    out = tmp_path / "sweep" / "report"
    assert {p.name for p in out.iterdir()} == FILES
    assert all((out / f).stat().st_size > 1000 for f in FILES if f.endswith(".png"))
    md = (out / "report.md").read_text()
    assert "ppo_big" in md and "ppo_small" in md
    assert f"| {np.mean(good):.2f} |" in md  # 475.00
    assert f"| {np.mean(weak):.2f} |" in md  # 178.00

    saved = json.loads((out / "report.json").read_text())
    rows = {e["agent"]: e for e in saved["per_env"]}
    assert rows["ppo_big"]["mean"] == pytest.approx(475.0)
    assert rows["ppo_big"]["source"] == "summary.json"
    assert rows["ppo_small"]["source"] == "last evaluation"
    assert rows["ppo_small"]["num_seeds"] == 5
    assert rows["ppo_small"]["iqm"] == pytest.approx(stats_iqm(weak))
    assert rows["ppo_small"]["ci_low"] <= 178.0 <= rows["ppo_small"]["ci_high"]
    assert saved["normalized"] is True
    agg = saved["aggregates"]["ppo_big"]
    assert agg["mean"]["estimate"] == pytest.approx((475.0 - 22) / 478)
    assert agg["optimality_gap"]["estimate"] == pytest.approx(
        np.mean([1 - (g - 22) / 478 for g in good])
    )
    poi = {(p["x"], p["y"]): p["estimate"] for p in saved["probability_of_improvement"]}
    assert poi[("ppo_big", "ppo_small")] == pytest.approx(_brute_force_poi([good], [weak]))
    assert poi[("ppo_small", "ppo_big")] == pytest.approx(1 - _brute_force_poi([good], [weak]))
    assert saved == json.loads(json.dumps(report._jsonable(result)))


def test_report_labels_envs_and_curves(tmp_path, capsys):
    # Different agents keep their names; same-named run folders fall back to what tells them
    # apart (the parent folders here).
    write_run(tmp_path / "a" / "run", [400.0, 420.0], agent="ppo")
    write_run(tmp_path / "b" / "run", [300.0, 320.0], agent="ppo")
    write_run(tmp_path / "c", [10.0, 20.0, 30.0], agent="dqn", env="brax/hopper")
    result = report.main([str(tmp_path), f"--out={tmp_path / 'out'}", "--reps=100", "--no_plots"])
    labels = {(r["agent"], r["env"]) for r in result["runs"]}
    assert labels == {
        ("a", "gymnax/CartPole-v1"),
        ("b", "gymnax/CartPole-v1"),
        ("dqn", "brax/hopper"),
    }
    # Hopper has no normaliser: raw scores, no optimality gap, a note says so.
    assert result["normalized"] is False
    assert "optimality_gap" not in result["aggregates"]["dqn"]
    assert result["aggregates"]["dqn"]["mean"]["estimate"] == pytest.approx(20.0)
    assert any("brax/hopper" in n for n in result["notes"])
    assert "brax/hopper" in capsys.readouterr().out
    # No two agents share hopper, and the two CartPole runs compare with each other only.
    assert {(p["x"], p["y"]) for p in result["probability_of_improvement"]} == {
        ("a", "b"),
        ("b", "a"),
    }
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"report.md", "report.json"}
    # Env steps per seed on the x axis: logged env_steps (iteration x 4 x 8).
    (run,) = report.load_runs(tmp_path / "c")
    to_steps, label = report.steps_axis(run)
    its, values = report.curve(run.eval_rows, "deterministic_return")
    np.testing.assert_array_equal(its, [2, 4])
    np.testing.assert_allclose(to_steps(its), [64, 128])
    np.testing.assert_allclose(values, [[5, 10], [10, 20], [15, 30]])
    assert label == "env steps"


def test_report_null_scores_and_fallback(tmp_path, capsys):
    write_run(tmp_path / "nulls", [400.0, None, 200.0])
    write_run(tmp_path / "noeval", [100.0, 300.0], agent="other", evals=False)
    result = report.build_report([tmp_path], out=tmp_path / "out", reps=100, plots=True)
    rows = {e["agent"]: e for e in result["per_env"]}
    assert rows["ppo"]["num_seeds"] == 2 and rows["ppo"]["mean"] == pytest.approx(300.0)
    assert rows["other"]["mean"] == pytest.approx(200.0)
    assert "fallback" in rows["other"]["source"]
    printed = capsys.readouterr().out
    assert "episode_return" in printed and "non-finite" in printed
    assert (tmp_path / "out" / "learning_curves.png").exists()


def test_report_with_no_runs_fails_clearly(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")  # half a run directory is none
    with pytest.raises(ValueError, match=re.escape("config.json and metrics.jsonl")) as error:
        report.build_report([tmp_path / "empty"], out=tmp_path / "out", reps=10)
    assert str(tmp_path / "empty") in str(error.value)
    with pytest.raises(SystemExit) as exit_:
        report.main([str(tmp_path / "empty")])
    assert "no run directory found" in str(exit_.value.code)
    assert not (tmp_path / "empty" / "report").exists()
    with pytest.raises(SystemExit, match="does not exist"):
        report.main([str(tmp_path / "missing")])


def write_sweep_run(path: Path, finals_per_point, points, iterations=2):
    """One sweep program's run directory: ``config`` index in rows, results config by config."""
    path.mkdir(parents=True)
    n = len(finals_per_point[0])
    config = {
        "run": {"agent": "ppo", "env": "gymnax/CartPole-v1", "num_seeds": n, "sweep": points},
        "agent_config": {"num_envs": 2, "num_steps": 8},
    }
    (path / "config.json").write_text(json.dumps(config))
    rows = []
    for it in range(1, iterations + 1):
        for c, finals in enumerate(finals_per_point):
            for s, final in enumerate(finals):
                value = final * it / iterations
                rows.append({"iteration": it, "seed": s, "config": c, "episode_return": value})
                rows.append(
                    {
                        "iteration": it,
                        "seed": s,
                        "config": c,
                        "eval": True,
                        "deterministic_return": value,
                    }
                )
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    flat = [f for finals in finals_per_point for f in finals]
    summary = {"num_seeds": n, "final_eval_per_seed": {"deterministic_return": flat}}
    (path / "summary.json").write_text(json.dumps(summary))


def test_sweep_run_dir_is_one_run_per_config(tmp_path):
    points = [{"learning_rate": 0.001}, {"learning_rate": 0.0003}]
    write_sweep_run(
        tmp_path / "sweep" / "group-0", [[400.0, 500.0, 450.0], [100.0, 50.0, 0.0]], points
    )
    result = report.build_report([tmp_path / "sweep"], reps=100, plots=False)
    rows = {e["agent"]: e for e in result["per_env"]}
    assert set(rows) == {"learning_rate=0.001", "learning_rate=0.0003"}
    assert rows["learning_rate=0.001"]["mean"] == pytest.approx(450.0)
    assert rows["learning_rate=0.0003"]["mean"] == pytest.approx(50.0)
    assert rows["learning_rate=0.0003"]["num_seeds"] == 3
    fast, slow = report.load_runs(tmp_path / "sweep" / "group-0")
    _, values = report.curve(slow.eval_rows, "deterministic_return")
    np.testing.assert_allclose(values, [[50, 100], [25, 50], [0, 0]])
    assert fast.point == points[0]
    # Without summary.json the same numbers come from the last evaluation rows.
    (tmp_path / "sweep" / "group-0" / "summary.json").unlink()
    again = report.build_report([tmp_path / "sweep"], reps=100, plots=False)
    assert [e["mean"] for e in again["per_env"]] == [e["mean"] for e in result["per_env"]]
    assert {e["source"] for e in again["per_env"]} == {"last evaluation"}


def test_unknown_metric_names_the_logged_ones(tmp_path):
    write_run(tmp_path / "r", [1.0, 2.0])
    with pytest.raises(ValueError, match="deterministic_return") as error:
        report.build_report([tmp_path / "r"], metric="nope", reps=10, plots=False)
    assert "--metric" in str(error.value)


def test_labels_stay_distinct_across_agents(tmp_path):
    for agent in ("ppo", "dqn"):
        write_run(tmp_path / agent / "x" / "run", [1.0, 2.0], agent=agent)
        write_run(tmp_path / agent / "y" / "run", [3.0, 4.0], agent=agent)
    runs = [r for p in report.find_runs([tmp_path]) for r in report.load_runs(p)]
    report.assign_labels(runs)
    assert sorted(r.label for r in runs) == ["dqn/x", "dqn/y", "ppo/x", "ppo/y"]


def test_one_config_keeps_one_label_across_envs(tmp_path):
    # sweep/<config>/<env>: the config folder names the agent on every env, so aggregates
    # over envs are per config.
    for config, base in (("lr_high", 400.0), ("lr_low", 200.0)):
        write_run(tmp_path / config / "cartpole", [base, base + 20])
        write_run(tmp_path / config / "hopper", [base * 5, base * 6], env="brax/hopper")
    result = report.build_report(
        [tmp_path], reps=50, plots=False, normalizers={"brax/hopper": (0.0, 3000.0)}
    )
    assert set(result["aggregates"]) == {"lr_high", "lr_low"}
    assert result["aggregates"]["lr_low"]["envs"] == ["brax/hopper", "gymnax/CartPole-v1"]
    expected = np.mean([(210.0 - 22) / 478, 1100.0 / 3000])
    assert result["aggregates"]["lr_low"]["mean"]["estimate"] == pytest.approx(expected)
    poi = {(p["x"], p["y"]): p for p in result["probability_of_improvement"]}
    assert poi["lr_high", "lr_low"]["estimate"] == 1.0
    assert len(poi["lr_high", "lr_low"]["envs"]) == 2
