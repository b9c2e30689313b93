"""How often the CartPole-v1 preset fails: the README's main command over many draws.

Runs ``python -m rlzoo.train --agent=ppo --env=gymnax/CartPole-v1 --num_seeds=N
--seed=S`` (5e5 env steps per seed, the shipped preset) for each base seed ``S``, and
pools the final deterministic evaluation returns: the number of runs >= 475 (the
target is every one of at least 128 runs), mean, IQM with its 95% stratified-bootstrap
interval (rliable, base seeds as tasks), and the minimum.

    python experiments/ppo_cartpole_robust.py [--base_seeds=0,1,2,3] [--num_seeds=32]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import record, train_cli

from rlzoo.analysis.stats import aggregate_intervals

TARGET = 475.0
COLUMNS = "runs | runs >= 475 | mean | IQM [95% CI] | min | returns below 475"


def pool_returns(scores: np.ndarray) -> dict:
    """Final returns ``[base seeds, seeds]`` pooled: runs >= 475, mean, IQM with its 95%
    stratified-bootstrap interval (rliable, base seeds as tasks), minimum, the failures."""
    pooled = scores.ravel()
    iqm = aggregate_intervals(scores.T, threshold=None)["iqm"]  # run matrix [seeds, tasks]
    return {
        "runs": int(pooled.size),
        "at_least_475": int((pooled >= TARGET).sum()),
        "mean": float(pooled.mean()),
        "iqm": iqm.estimate,
        "iqm_ci95": [iqm.low, iqm.high],
        "min": float(pooled.min()),
        "failures": sorted(float(r) for r in pooled if r < TARGET),
    }


def row_cells(row: dict) -> str:
    """The table cells of :func:`pool_returns`'s row, in :data:`COLUMNS` order."""
    low, high = row["iqm_ci95"]
    failures = ", ".join(f"{r:.1f}" for r in row["failures"]) or "none"
    return (
        f"{row['runs']} | {row['at_least_475']} | {row['mean']:.1f} | {row['iqm']:.1f} "
        f"[{low:.1f}, {high:.1f}] | {row['min']:.1f} | {failures}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base_seeds", default="0,1,2,3")
    parser.add_argument("--num_seeds", type=int, default=32)
    args = parser.parse_args()
    base_seeds = [int(s) for s in args.base_seeds.split(",")]
    per_base, walls = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for base in base_seeds:
            flags = [
                "--agent=ppo", "--env=gymnax/CartPole-v1", f"--num_seeds={args.num_seeds}",
                f"--seed={base}", "--tensorboard=false",
            ]  # fmt: skip
            summary, wall = train_cli(Path(tmp) / f"seed{base}", *flags)
            per_base[base] = summary["final_eval_per_seed"]["eval/deterministic_return"]
            walls[base] = wall
            print(base, f"{sum(r >= TARGET for r in per_base[base])}/{args.num_seeds} >= 475")
    scores = np.array([per_base[b] for b in base_seeds])  # [base seeds, seeds]
    row = pool_returns(scores)
    table = "\n".join(
        [
            f"Base seeds {args.base_seeds}, {args.num_seeds} seeds each, 5e5 env steps per seed.",
            "",
            f"| {COLUMNS} |",
            "|---|---|---|---|---|---|",
            f"| {row_cells(row)} |",
        ]
    )
    record(
        "ppo_cartpole_robust",
        {
            "per_base_seed": {str(b): per_base[b] for b in base_seeds},
            "process_wall_seconds": {str(b): walls[b] for b in base_seeds},
            **row,
            "table": table,
        },
    )
    print(table)


if __name__ == "__main__":
    main()
