"""Sweeps: parsing, grids and groups, one program per static group, results table."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlzoo.agents import ppo
from rlzoo.analysis.logs import read_rows
from rlzoo.launch.runner import RunError, RunSpec, run
from rlzoo.sweep import expand, group_by_static, parse_sweep_flags, sweep

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]

TINY = dict(
    num_envs=4,
    num_steps=16,
    num_epochs=2,
    num_minibatches=2,
    num_eval_episodes=4,
    total_steps=4 * 64,
)


def test_grid_and_static_groups():
    config = ppo.Config()
    rest, dims = parse_sweep_flags(
        [
            "prog",
            "--num_seeds=2",
            "--sweep.learning_rate=1e-4,3e-4",
            "--sweep.num_envs=4,8",
            "--sweep.hidden_sizes=(64,64),(32,)",
        ],
        ppo.Config,
    )
    assert rest == ["prog", "--num_seeds=2"]
    points = expand(dims, "grid", 0, 0, config)
    assert len(points) == 8
    groups = group_by_static(points, config)
    assert len(groups) == 4  # num_envs x hidden_sizes
    assert all(len(traced) == 2 for _, traced in groups)
    assert {tuple(fixed["hidden_sizes"]) for fixed, _ in groups} == {(64, 64), (32,)}


def test_random_search_samples_inside_ranges():
    config = ppo.Config()
    _, dims = parse_sweep_flags(
        ["--sweep.learning_rate=loguniform(1e-4,1e-2)", "--sweep.clip_eps=0.1,0.2"], ppo.Config
    )
    points = expand(dims, "random", 50, 0, config)
    rates = np.array([p["learning_rate"] for p in points])
    assert len(points) == 50 and rates.min() >= 1e-4 and rates.max() <= 1e-2
    assert {p["clip_eps"] for p in points} <= {0.1, 0.2}
    assert np.median(rates) < 3e-3  # log-uniform, not uniform (median would be ~5e-3)


@pytest.mark.parametrize(
    "flag,message",
    [
        ("--sweep.learning_rat=1e-3", "learning_rate"),
        ("--sweep.learning_rate=", "empty"),
        ("--sweep.learning_rate=fast", "not a number"),
        ("--sweep.num_envs=uniform(1,4)", "static"),
        ("--sweep.num_envs=4.5", "holds a int"),
        ("--sweep.learning_rate=loguniform(0,1)", "bad range"),
    ],
)
def test_bad_sweep_values_are_refused(flag, message):
    with pytest.raises(ValueError, match=message):
        parse_sweep_flags([flag], ppo.Config)


def test_empty_sweep_and_grid_of_distributions_are_refused():
    config = ppo.Config()
    with pytest.raises(ValueError, match="nothing to sweep"):
        expand([], "grid", 0, 0, config)
    _, dims = parse_sweep_flags(["--sweep.learning_rate=uniform(0.1,0.2)"], ppo.Config)
    with pytest.raises(ValueError, match="--search=random"):
        expand(dims, "grid", 0, 0, config)


def test_sweep_trains_each_config_like_a_single_run(tmp_path):
    base = RunSpec(num_seeds=2, overrides=TINY, run_dir=str(tmp_path / "sweep"), eval_every=128)
    _, dims = parse_sweep_flags(["--sweep.learning_rate=1e-3,3e-2"], ppo.Config())
    rows = sweep(base, dims, "grid", 0, 0, "eval/deterministic_return", callbacks=list)
    assert len(rows) == 2 and rows[0]["mean"] >= rows[1]["mean"]
    table = (tmp_path / "sweep" / "results.md").read_text()
    assert "learning_rate" in table and "0.03" in table
    saved = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert len(saved["rows"]) == 2
    # The swept point equals a single run with that learning rate and the same seeds.

    single = run(
        RunSpec(
            num_seeds=2,
            overrides=dict(TINY, learning_rate=3e-2),
            run_dir=str(tmp_path / "single"),
            eval_every=128,
        ),
        callbacks=[],
    )
    row = next(r for r in rows if r["config"]["learning_rate"] == 3e-2)
    np.testing.assert_allclose(
        row["per_seed"], single["final_eval_per_seed"]["eval/deterministic_return"], rtol=1e-4
    )


def test_a_diverging_config_is_marked_and_the_others_finish_unchanged(tmp_path):
    def sweep_of(values, name):
        base = RunSpec(num_seeds=2, overrides=TINY, run_dir=str(tmp_path / name), eval_every=128)
        _, dims = parse_sweep_flags([f"--sweep.reward_scale={values}"], ppo.Config)
        return sweep(base, dims, "grid", 0, 0, "", callbacks=list)

    healthy = sweep_of("1,2", "healthy")
    broken = sweep_of("1,nan", "broken")
    ok = next(r for r in broken if r["config"]["reward_scale"] == 1)
    bad = next(r for r in broken if r["config"]["reward_scale"] != 1)
    same = next(r for r in healthy if r["config"]["reward_scale"] == 1)
    assert ok["diverged"] is None and ok["per_seed"] == same["per_seed"]
    assert bad["diverged"]["iteration"] == 1 and broken[-1] is bad  # ranked last
    assert "diverged at iteration 1" in (tmp_path / "broken" / "results.md").read_text()
    summary = json.loads((tmp_path / "broken" / "group-0" / "summary.json").read_text())
    assert len(summary["diverged"]) == 1
    assert np.isfinite(summary["final_eval"]["eval/deterministic_return"]["mean"])


def test_a_group_too_large_for_the_memory_limit_is_split(tmp_path):
    def sweep_with(limit, name):
        spec = RunSpec(num_seeds=2, overrides=TINY, run_dir=str(tmp_path / name), eval_every=128)
        spec.memory_limit = limit
        _, dims = parse_sweep_flags(["--sweep.learning_rate=1e-3,2e-3,3e-3,4e-3"], ppo.Config)
        return sweep(spec, dims, "grid", 0, 0, "", callbacks=list)

    whole = sweep_with(0, "whole")
    needed = json.loads((tmp_path / "whole" / "group-0" / "summary.json").read_text())[
        "compiled_bytes_per_device"
    ]
    split = sweep_with(needed - 1, "split")  # 8 agents no longer fit; 4 do
    assert {r["run_dir"] for r in split} == {"group-0-part-0", "group-0-part-1"}
    by_rate = {r["config"]["learning_rate"]: r["per_seed"] for r in whole}
    for row in split:
        np.testing.assert_allclose(
            row["per_seed"], by_rate[row["config"]["learning_rate"]], rtol=1e-4
        )


def test_a_killed_sweep_resumes_and_ends_like_an_uninterrupted_one(tmp_path):
    """SIGKILL in the first of two groups; --resume finishes it and runs the second."""
    flags = [
        "--num_seeds=2",
        "--cpu_devices=1",  # as in this process, so that the numbers compare bit for bit
        "--eval_every=128",
        "--progress=false",
        "--tensorboard=false",
        "--sweep.num_epochs=1,2",  # static: two groups, compiled one after the other
        *(f"--config.{k}={v}" for k, v in TINY.items()),
        "--total_steps=512",  # 8 iterations, a checkpoint every 2
    ]
    root = tmp_path / "killed"

    def cli(*args, **env):
        return subprocess.run(
            [sys.executable, "-m", "rlzoo.sweep", *flags, f"--run_dir={root}", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=500,
        )

    killed = cli(RLZOO_FAILPOINT="before_checkpoint@8")  # group 0's last checkpoint
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    # Saves are asynchronous: the one at 6 may be cut, the one at 4 was waited for.
    assert (root / "group-0" / "checkpoints" / "4").is_dir()
    assert not (root / "group-1").exists() and not (root / "results.json").exists()
    resumed = cli("--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert re.search(r"resumed from iteration [46]\b", resumed.stdout), resumed.stdout

    # The interrupted group equals an uninterrupted run of its config (same device count).
    overrides = dict(TINY, total_steps=512, num_epochs=1)
    whole = run(
        RunSpec(num_seeds=2, overrides=overrides, run_dir=str(tmp_path / "whole"), eval_every=128),
        callbacks=[],
    )
    rows = json.loads((root / "results.json").read_text())["rows"]
    assert sorted(r["config"]["num_epochs"] for r in rows) == [1, 2]
    row = next(r for r in rows if r["config"]["num_epochs"] == 1)
    assert row["per_seed"] == whole["final_eval_per_seed"]["eval/deterministic_return"]
    assert read_rows(root / "group-0") == read_rows(tmp_path / "whole")
    again = cli("--resume")  # finished: every group is read back, nothing trains
    assert again.returncode == 0 and again.stdout.count("already finished") == 2
    _, other = parse_sweep_flags(["--sweep.num_epochs=1,3"], ppo.Config)
    with pytest.raises(RunError, match="other configs than the sweep"):
        sweep(RunSpec(run_dir=str(root)), other, resume=True)
    with pytest.raises(RunError, match=r"sweep\.json cannot be read"):
        sweep(RunSpec(run_dir=str(tmp_path / "whole")), [], resume=True)
