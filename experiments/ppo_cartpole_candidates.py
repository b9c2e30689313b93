"""Candidate CartPole-v1 PPO settings, each over many draws, in one program per base seed.

For each base seed ``S`` runs ``python -m rlzoo.sweep --agent=ppo --env=gymnax/CartPole-v1
--num_seeds=N --seed=S --sweep.<field>=...`` (the main command's preset and budget, 5e5
env steps per seed, with the swept fields changed: every candidate x seed trains in one
compiled program, or one per value of a swept static switch such as
``normalize_advantages``) and pools each candidate's final deterministic evaluation returns
over the base seeds: runs >= 475 (the target is every one of at least 128 runs), mean, IQM
with its 95% stratified-bootstrap interval (rliable, base seeds as tasks), and the minimum.

    python experiments/ppo_cartpole_candidates.py [--base_seeds=0,1,2,3] [--num_seeds=32] \
        [--sweep=learning_rate=5e-4,7e-4,1e-3] [--record_name=ppo_cartpole_candidates]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from common import PYTHON, record, timed_process
from ppo_cartpole_robust import COLUMNS, TARGET, pool_returns, row_cells


def sweep_flags(spec: str) -> list[str]:
    """``field=v1,v2;field2=...`` -> ``--sweep.field=v1,v2`` flags (``;`` between fields)."""
    return [f"--sweep.{part.strip()}" for part in spec.split(";") if part.strip()]


def candidate_name(config: dict) -> str:
    parts = (f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items())
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base_seeds", default="0,1,2,3")
    parser.add_argument("--num_seeds", type=int, default=32)
    parser.add_argument("--sweep", default="learning_rate=5e-4,7e-4,1e-3")
    parser.add_argument("--record_name", default="ppo_cartpole_candidates")
    args = parser.parse_args()
    base_seeds = [int(s) for s in args.base_seeds.split(",")]
    per_candidate: dict[str, dict[int, list[float]]] = {}
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for base in base_seeds:
            run_dir = Path(tmp) / f"seed{base}"
            command = [
                PYTHON, "-m", "rlzoo.sweep", "--agent=ppo", "--env=gymnax/CartPole-v1",
                f"--num_seeds={args.num_seeds}", f"--seed={base}", f"--run_dir={run_dir}",
                "--tensorboard=false", "--progress=false", *sweep_flags(args.sweep),
            ]  # fmt: skip
            walls[base] = timed_process(command)["wall_seconds"]
            rows = json.loads((run_dir / "results.json").read_text())["rows"]
            for row in rows:
                per_seed = per_candidate.setdefault(candidate_name(row["config"]), {})
                per_seed[base] = row["per_seed"]
            print(base, {n: sum(r >= TARGET for r in s[base]) for n, s in per_candidate.items()})
    results, lines = {}, []
    for name, by_base in per_candidate.items():
        scores = np.array([by_base[b] for b in base_seeds])  # [base seeds, seeds]
        results[name] = {
            "per_base_seed": {str(b): by_base[b] for b in base_seeds},
            **pool_returns(scores),
        }
        lines.append(f"| {name} | {row_cells(results[name])} |")
    table = (
        f"Base seeds {args.base_seeds}, {args.num_seeds} seeds each per candidate, 5e5 env "
        "steps per seed; the rest of the shipped preset unchanged.\n\n"
        f"| candidate | {COLUMNS} |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(lines)
    )
    print(table)
    record(
        args.record_name,
        {"args": vars(args), "results": results, "process_wall_seconds": walls, "table": table},
    )


if __name__ == "__main__":
    main()
