"""The report on synthetic run directories (format 2): reading, tables, plots, sweeps, CLI."""

import json
import re
import subprocess
import sys
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from rlzoo import report as cli
from rlzoo.analysis import report

pytestmark = pytest.mark.timeout(120)

REPS = 300  # enough for the checks below, and fast
SCORE = "eval/deterministic_return"
TRAIN = "rollout/episode_return"
STEPS = 32  # steps per iteration of the fake runs


def _config(agent, env, num_seeds, sweep=(), step_unit="env_steps", iterations=4):
    return {
        "format": 2,
        "run": {
            "agent": agent,
            "env": env,
            "env_kwargs": {},
            "dataset": "",
            "num_seeds": num_seeds,
            "seed": 0,
            "run_dir": "",
            "eval_every": 2,
            "checkpoint_every": 0,
            "num_devices": 0,
            "max_to_keep": 3,
            "sweep": list(sweep),
        },
        "config": {"learning_rate": 0.001},
        "agent": {
            "score_key": SCORE,
            "step_unit": step_unit,
            "steps_per_iteration": STEPS,
            "num_iterations": iterations,
        },
        "data": None,
        "devices": ["cpu:0"],
        "jax_version": "0.9.2",
    }


def _rows(finals, iterations, config=0, evals=True):
    """Training rows for every iteration, eval rows every second one; returns climb linearly
    to ``finals`` (None: a non-finite value, logged as null)."""
    rows = []
    for it in range(1, iterations + 1):
        values = [None if f is None else f * it / iterations for f in finals]
        for s, value in enumerate(values):
            rows.append(
                {"iteration": it, "seed": s, "config": config, "step": it * STEPS, TRAIN: value}
                | {"loss/total": 0.5, "policy/entropy": 0.6}
            )
        if evals and it % 2 == 0:
            for s, value in enumerate(values):
                rows.append(
                    {"iteration": it, "seed": s, "config": config, "step": it * STEPS}
                    | {"eval": True, SCORE: value, "eval/stochastic_return": value and value / 2}
                )
    return rows


def _summary(config, per_seed, num_configs=1):
    spec = config["run"]
    return {
        "format": 2,
        "agent": spec["agent"],
        "env": spec["env"],
        "score_key": SCORE,
        "step_unit": config["agent"]["step_unit"],
        "steps_per_seed": STEPS * config["agent"]["num_iterations"],
        "num_seeds": spec["num_seeds"],
        "num_configs": num_configs,
        "final_eval_per_seed": per_seed,
        "final_eval_per_config": [],
        "final_eval": {},
        "wall_seconds": 1.0,
    }


def write_run(path: Path, finals, agent="ppo", env="gymnax/CartPole-v1", iterations=4, **kw):
    """A run directory like rlzoo.train writes (``evals``, ``summary``, ``step_unit``)."""
    evals, summary = kw.pop("evals", True), kw.pop("summary", True)
    path.mkdir(parents=True)
    config = _config(agent, env, len(finals), iterations=iterations, **kw)
    (path / "config.json").write_text(json.dumps(config))
    rows = _rows(finals, iterations, evals=evals)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if summary and evals:
        per_seed = {SCORE: list(finals), "eval/stochastic_return": [f and f / 2 for f in finals]}
        (path / "summary.json").write_text(json.dumps(_summary(config, per_seed)))
    return path


def _brute_force_poi(x, y):
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in product(x, y))
    return wins / (len(x) * len(y))


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
    assert md.startswith(f"# rlzoo report: {SCORE}")
    assert "ppo_big" in md and "ppo_small" in md
    assert f"| {np.mean(good):.2f} |" in md  # 475.00
    assert f"| {np.mean(weak):.2f} |" in md  # 178.00

    saved = json.loads((out / "report.json").read_text())
    rows = {e["agent"]: e for e in saved["per_env"]}
    assert rows["ppo_big"]["mean"] == pytest.approx(475.0)
    assert rows["ppo_big"]["source"] == "summary.json"
    assert rows["ppo_small"]["source"] == "last evaluation"
    assert rows["ppo_small"]["num_seeds"] == 5
    assert rows["ppo_small"]["metric"] == SCORE
    assert rows["ppo_small"]["iqm"] == pytest.approx(scipy_stats.trim_mean(weak, 0.25))
    assert rows["ppo_small"]["ci_low"] <= 178.0 <= rows["ppo_small"]["ci_high"]
    assert saved["normalized"] is True
    agg = saved["aggregates"]["ppo_big"]
    assert agg["mean"]["estimate"] == pytest.approx((475.0 - 22) / 478)
    assert agg["optimality_gap"]["estimate"] == pytest.approx(
        np.mean([1 - (g - 22) / 478 for g in good])
    )
    for name in ("mean", "median", "iqm", "optimality_gap"):
        assert agg[name]["low"] <= agg[name]["estimate"] <= agg[name]["high"]
    poi = {(p["x"], p["y"]): p for p in saved["probability_of_improvement"]}
    expected = _brute_force_poi(good, weak)
    assert poi["ppo_big", "ppo_small"]["estimate"] == pytest.approx(expected)
    assert poi["ppo_small", "ppo_big"]["estimate"] == pytest.approx(1 - expected)
    forth, back = poi["ppo_big", "ppo_small"], poi["ppo_small", "ppo_big"]
    assert back["low"] == pytest.approx(1 - forth["high"])
    assert forth["low"] <= forth["estimate"] <= forth["high"]
    profile = saved["performance_profile"]
    assert len(profile["taus"]) == len(profile["agents"]["ppo_big"]["fraction"])
    assert saved == json.loads(json.dumps(report.jsonable(result)))


def test_report_labels_envs_and_curves(tmp_path, capsys):
    # Different agents keep their names; same-named run folders fall back to what tells them
    # apart (the parent folders here).
    write_run(tmp_path / "a" / "run", [400.0, 420.0], agent="ppo")
    write_run(tmp_path / "b" / "run", [300.0, 320.0], agent="ppo")
    hopper = {"agent": "bc", "env": "brax/hopper", "step_unit": "gradient_steps"}
    write_run(tmp_path / "c", [10.0, 20.0, 30.0], **hopper)
    result = cli.main([str(tmp_path), f"--out={tmp_path / 'out'}", "--reps=100", "--no_plots"])
    labels = {(r["agent"], r["env"]) for r in result["runs"]}
    assert labels == {
        ("a", "gymnax/CartPole-v1"),
        ("b", "gymnax/CartPole-v1"),
        ("bc", "brax/hopper"),
    }
    # Hopper has no normaliser: raw scores, no optimality gap, a note says so.
    assert result["normalized"] is False
    assert "optimality_gap" not in result["aggregates"]["bc"]
    assert result["aggregates"]["bc"]["mean"]["estimate"] == pytest.approx(20.0)
    assert any("brax/hopper" in n for n in result["notes"])
    assert "brax/hopper" in capsys.readouterr().out
    # No two agents share hopper, and the two CartPole runs compare with each other only.
    assert {(p["x"], p["y"]) for p in result["probability_of_improvement"]} == {
        ("a", "b"),
        ("b", "a"),
    }
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"report.md", "report.json"}
    # The x axis is the rows' step, in the agent's step unit.
    (run,) = report.load_runs(tmp_path / "c")
    assert run.step_unit == "gradient_steps" and run.score_key == SCORE
    steps, values = report.curve(run.eval_rows, SCORE)
    np.testing.assert_array_equal(steps, [2 * STEPS, 4 * STEPS])
    np.testing.assert_allclose(values, [[5, 10], [10, 20], [15, 30]])


def test_report_null_scores_fallback_and_mixed_step_units(tmp_path, capsys):
    write_run(tmp_path / "nulls", [400.0, None, 200.0])
    write_run(tmp_path / "noeval", [100.0, 300.0], agent="other", evals=False)
    write_run(tmp_path / "bc", [250.0, 350.0], agent="bc", step_unit="gradient_steps")
    result = report.build_report([tmp_path], out=tmp_path / "out", reps=100, plots=True)
    rows = {e["agent"]: e for e in result["per_env"]}
    assert rows["ppo"]["num_seeds"] == 2 and rows["ppo"]["mean"] == pytest.approx(300.0)
    assert rows["other"]["mean"] == pytest.approx(200.0)
    assert "fallback" in rows["other"]["source"] and TRAIN in rows["other"]["source"]
    printed = capsys.readouterr().out
    assert TRAIN in printed and "non-finite" in printed
    assert (tmp_path / "out" / "learning_curves.png").stat().st_size > 1000
    assert {r["step_unit"] for r in result["runs"]} == {"env_steps", "gradient_steps"}


def test_report_metric_flag_overrides_score_key(tmp_path):
    write_run(tmp_path / "r", [100.0, 300.0])
    result = report.build_report(
        [tmp_path / "r"], metric="eval/stochastic_return", reps=50, plots=False
    )
    assert result["metric"] == "eval/stochastic_return"
    assert result["per_env"][0]["mean"] == pytest.approx(100.0)
    # A training metric: the last training rows.
    result = report.build_report([tmp_path / "r"], metric=TRAIN, reps=50, plots=False)
    assert result["per_env"][0]["source"] == "last training iteration"
    assert result["per_env"][0]["mean"] == pytest.approx(200.0)


def test_runs_with_different_score_keys_are_noted(tmp_path):
    write_run(tmp_path / "a", [100.0, 300.0])
    write_run(tmp_path / "b", [100.0, 300.0], agent="bc")
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    config["agent"]["score_key"] = "eval/stochastic_return"
    (tmp_path / "b" / "config.json").write_text(json.dumps(config))
    (tmp_path / "b" / "summary.json").unlink()
    result = report.build_report([tmp_path], reps=50, plots=False)
    assert {e["agent"]: e["metric"] for e in result["per_env"]} == {
        "ppo": SCORE,
        "bc": "eval/stochastic_return",
    }
    assert any("different metrics" in n for n in result["notes"])


def test_report_with_no_runs_fails_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")  # half a run directory is none
    expected = re.escape("config.json and metrics/ (or metrics.jsonl)")
    with pytest.raises(ValueError, match=expected) as error:
        report.build_report([tmp_path / "empty"], out=tmp_path / "out", reps=10)
    assert str(tmp_path / "empty") in str(error.value)
    with pytest.raises(SystemExit) as exit_:
        cli.main([str(tmp_path / "empty")])
    assert "no run directory found" in str(exit_.value.code)
    assert not (tmp_path / "empty" / "report").exists()
    with pytest.raises(SystemExit, match="does not exist"):
        cli.main([str(tmp_path / "missing")])


def test_old_run_directory_format_is_refused(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"run": {"agent": "ppo"}, "agent_config": {}}))
    (old / "metrics.jsonl").write_text('{"iteration": 1, "seed": 0, "episode_return": 1.0}\n')
    with pytest.raises(SystemExit) as exit_:
        cli.main([str(old), "--no_plots"])
    message = str(exit_.value.code)
    assert "older rlzoo" in message and "re-run" in message and str(old) in message
    assert "\n" not in message


def write_sweep_run(path: Path, finals_per_point, points, iterations=2, summary=True):
    """One sweep program's run directory: ``config`` index in rows, results point by point."""
    path.mkdir(parents=True)
    n = len(finals_per_point[0])
    config = _config("ppo", "gymnax/CartPole-v1", n, sweep=points, iterations=iterations)
    (path / "config.json").write_text(json.dumps(config))
    rows = [r for c, f in enumerate(finals_per_point) for r in _rows(f, iterations, config=c)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    flat = [f for finals in finals_per_point for f in finals]
    per_seed = {SCORE: flat}
    (path / "summary.json").write_text(json.dumps(_summary(config, per_seed, len(points))))


def test_sweep_run_dir_is_one_run_per_point(tmp_path):
    points = [{"learning_rate": 0.001}, {"learning_rate": 0.0003}]
    write_sweep_run(
        tmp_path / "sweep" / "group-0", [[400.0, 500.0, 450.0], [100.0, 50.0, 0.0]], points
    )
    result = report.build_report([tmp_path / "sweep"], reps=100, plots=True)
    rows = {e["agent"]: e for e in result["per_env"]}
    assert set(rows) == {"learning_rate=0.001", "learning_rate=0.0003"}
    assert rows["learning_rate=0.001"]["mean"] == pytest.approx(450.0)
    assert rows["learning_rate=0.0003"]["mean"] == pytest.approx(50.0)
    assert rows["learning_rate=0.0003"]["num_seeds"] == 3
    assert {e["source"] for e in result["per_env"]} == {"summary.json"}
    assert "learning_curves.png" in result["files"]
    fast, slow = report.load_runs(tmp_path / "sweep" / "group-0")
    _, values = report.curve(slow.eval_rows, SCORE)
    np.testing.assert_allclose(values, [[100], [50], [0]])  # one eval, at the last iteration
    _, values = report.curve(slow.train_rows, TRAIN)
    np.testing.assert_allclose(values, [[50, 100], [25, 50], [0, 0]])
    assert fast.point == points[0]
    # Without summary.json the same numbers come from the last evaluation rows.
    (tmp_path / "sweep" / "group-0" / "summary.json").unlink()
    again = report.build_report([tmp_path / "sweep"], reps=100, plots=False)
    assert [e["mean"] for e in again["per_env"]] == [e["mean"] for e in result["per_env"]]
    assert {e["source"] for e in again["per_env"]} == {"last evaluation"}


def test_unknown_metric_names_the_logged_ones(tmp_path):
    write_run(tmp_path / "r", [1.0, 2.0])
    with pytest.raises(ValueError, match=re.escape(SCORE)) as error:
        report.build_report([tmp_path / "r"], metric="nope", reps=10, plots=False)
    assert "--metric" in str(error.value) and "loss/total" in str(error.value)
    assert "iteration" not in str(error.value).split("Logged metrics:")[1]


def test_labels_stay_distinct_across_agents(tmp_path):
    for agent in ("ppo", "dqn"):
        write_run(tmp_path / agent / "x" / "run", [1.0, 2.0], agent=agent)
        write_run(tmp_path / agent / "y" / "run", [3.0, 4.0], agent=agent)
    runs = report.read_runs([tmp_path])
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


def test_python_dash_m_rlzoo_report(tmp_path):
    write_run(tmp_path / "r", [1.0, 2.0, 3.0])
    out = subprocess.run(
        [sys.executable, "-m", "rlzoo.report", str(tmp_path / "r"), "--reps=20", "--no_plots"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote report.json, report.md" in out.stdout
    assert (tmp_path / "r" / "report" / "report.md").is_file()
