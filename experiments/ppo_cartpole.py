"""PPO on gymnax CartPole-v1 with the shipped defaults: 8 seeds x 5e5 env steps.

Target: mean deterministic evaluation return >= 475 and every seed >= 400.

    python experiments/ppo_cartpole.py [--num_seeds=8] [--seed=0]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import record, train_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num_seeds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        flags = [
            "--agent=ppo",
            "--env=gymnax/CartPole-v1",
            f"--num_seeds={args.num_seeds}",
            f"--seed={args.seed}",
            "--total_steps=500000",
        ]
        summary, wall = train_cli(Path(tmp) / "run", *flags)
    det = summary["final_eval_per_seed"]["eval/deterministic_return"]
    stats = summary["final_eval"]["eval/deterministic_return"]
    passed = stats["mean"] >= 475 and min(det) >= 400
    rows.append(
        {
            "env": "gymnax/CartPole-v1",
            "seeds": args.num_seeds,
            "env_steps": summary["steps_per_seed"],
            "mean": stats["mean"],
            "iqm": stats["iqm"],
            "min": stats["min"],
            "target": "mean >= 475, every seed >= 400",
            "met": passed,
        }
    )
    table = [
        "| env | seeds | env steps / seed | mean | IQM | min seed | target | met |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['env']} | {r['seeds']} | {r['env_steps']:,} | {r['mean']:.1f} | "
            f"{r['iqm']:.1f} | {r['min']:.1f} | {r['target']} | {'yes' if r['met'] else 'NO'} |"
            for r in rows
        ],
    ]
    record(
        "ppo_cartpole",
        {
            "rlzoo_command": "python -m rlzoo.train " + " ".join(flags),
            "rows": rows,
            "deterministic_return_per_seed": det,
            "stochastic_return_per_seed": summary["final_eval_per_seed"]["eval/stochastic_return"],
            "process_wall_seconds": wall,
            "compile_seconds": summary["compile_seconds"],
            "train_seconds_after_compile": summary["train_seconds_after_compile"],
            "table": "\n".join(table),
        },
    )
    print("\n".join(table))


if __name__ == "__main__":
    main()
