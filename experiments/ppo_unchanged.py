"""Check that PPO's numbers are unchanged against an earlier commit, on this machine.

Runs the same jobs with the code at ``--ref`` (a git worktree in a temporary folder) and
with this checkout, then compares every per-seed final evaluation in ``summary.json`` and
every value of every training and evaluation row (``metrics.jsonl`` before run-directory
format 3, ``metrics/`` since). Metric names
changed with the agent contract v2 (``loss`` -> ``loss/total``, ``deterministic_return``
-> ``eval/deterministic_return``, ...) and ``--total_timesteps`` became ``--total_steps``;
both are mapped.

    python experiments/ppo_unchanged.py [--ref=2687117]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from common import CLASSIC_PRESET_FLAGS, PYTHON, ROOT, record

JOBS = {
    # The classic-control preset of the time, pinned (the Pendulum job keeps its 8 envs).
    "cartpole_main_job": ["--env=gymnax/CartPole-v1", "--num_seeds=8", *CLASSIC_PRESET_FLAGS],
    "pendulum_normalised": [
        "--env=gymnax/Pendulum-v1", "--num_seeds=4", "--seed=3", "--total_steps=40960",
        "--config.normalize_observations=true", "--config.normalize_rewards=true",
        "--config.num_envs=8", "--config.learning_rate=1e-3",
    ],
    "breakout_minatar_cnn": [
        "--env=gymnax/Breakout-MinAtar", "--num_seeds=2", "--total_steps=16384",
        "--config.num_envs=16", "--config.num_steps=32", "--config.num_minibatches=4",
        "--config.num_eval_episodes=4",
        # The MinAtar preset of the time (it is PureJaxRL's MLP now), pinned.
        "--config.torso=cnn", "--config.hidden_sizes=(64,)", "--config.learning_rate=5e-4",
    ],
}  # fmt: skip
# Old metric name -> new one (the launcher's own keys are compared as they are).
RENAMED = {
    "loss": "loss/total",
    "policy_loss": "loss/policy",
    "value_loss": "loss/value",
    "entropy": "policy/entropy",
    "approx_kl": "policy/approx_kl",
    "clip_fraction": "policy/clip_fraction",
    "explained_variance": "value/explained_variance",
    "episode_return": "rollout/episode_return",
    "episode_length": "rollout/episode_length",
    "episodes_completed": "rollout/episodes_completed",
    **{
        f"{mode}_{what}": f"eval/{mode}_{what}"
        for mode in ("deterministic", "stochastic")
        for what in ("return", "length")
    },
}


def train(code: Path, run_dir: Path, flags: list[str], old: bool) -> None:
    if old:
        flags = [f.replace("--total_steps=", "--total_timesteps=") for f in flags]
    cmd = [PYTHON, "-m", "rlzoo.train", "--agent=ppo", "--progress=false", "--tensorboard=false"]
    subprocess.run([*cmd, f"--run_dir={run_dir}", *flags], cwd=code, check=True)


def logged_rows(run_dir: Path) -> list[dict]:
    """Rows in one order for both layouts: ``metrics.jsonl`` (format 2) or ``metrics/``."""
    if (run_dir / "metrics").is_dir():
        from rlzoo.analysis.logs import read_rows

        rows = read_rows(run_dir)
    else:
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    order = lambda r: (bool(r.get("eval")), r["iteration"], r.get("config", 0), r["seed"])
    return sorted(rows, key=order)


def compare(old_dir: Path, new_dir: Path) -> dict:
    old = json.loads((old_dir / "summary.json").read_text())["final_eval_per_seed"]
    new = json.loads((new_dir / "summary.json").read_text())["final_eval_per_seed"]
    summary_equal = all(old[k] == new[RENAMED[k]] for k in old)
    rows = [logged_rows(d) for d in (old_dir, new_dir)]
    compared = differing = 0
    for a, b in zip(*rows, strict=True):
        for key, value in a.items():
            if key in RENAMED:
                compared += 1
                differing += b[RENAMED[key]] != value
    return {
        "summary_per_seed_equal": summary_equal,
        "rows": len(rows[0]),
        "values_compared": compared,
        "values_differing": differing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", default="2687117")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        worktree = tmp / "old"
        subprocess.run(
            ["git", "worktree", "add", "-f", str(worktree), args.ref], cwd=ROOT, check=True
        )
        try:
            for name, flags in JOBS.items():
                train(worktree, tmp / f"{name}-old", flags, old=True)
                train(ROOT, tmp / f"{name}-new", flags, old=False)
                results[name] = compare(tmp / f"{name}-old", tmp / f"{name}-new")
                print(name, results[name])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT)
    identical = all(
        r["summary_per_seed_equal"] and not r["values_differing"] for r in results.values()
    )
    lines = ["| job | metrics rows | values compared | values differing | summary per seed equal |"]
    lines.append("|---|---|---|---|---|")
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['rows']:,} | {r['values_compared']:,} | {r['values_differing']} | "
            f"{'yes' if r['summary_per_seed_equal'] else 'no'} |"
        )
    table = (
        "\n".join(lines)
        + f"\n\nAgainst commit `{args.ref}`: "
        + ("bit-identical." if identical else "**differences found**.")
    )
    record("ppo_unchanged", {"ref": args.ref, "jobs": JOBS, "results": results, "table": table})
    print(table)


if __name__ == "__main__":
    main()
