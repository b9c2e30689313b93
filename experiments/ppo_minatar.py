"""PPO on MinAtar games, 8 seeds in one program each, next to the random-action ceiling.

For each game: ``python -m rlzoo.train --env=gymnax/<game>-MinAtar --num_seeds=8
--total_steps=N`` with the shipped MinAtar preset (``ppo.PRESETS["gymnax/minatar"]``),
or with the preset changed by ``--set=field=value,...`` (for example
``--set=torso=cnn,hidden_sizes=(64,),learning_rate=5e-4``, the shape it replaced).
Records the final deterministic evaluation per seed (mean, IQM with its 95% bootstrap
interval over seeds, minimum), the training env steps/s (training chunks only) and the
same env's random-action steps/s at the same vmapped shape, measured in this script.

    python experiments/ppo_minatar.py [--games=Breakout,SpaceInvaders] [--total_steps=2000000]
        [--set=...] [--record_name=...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from common import PYTHON, ROOT, eval_curve, record, train_cli

from rlzoo.agents import ppo
from rlzoo.analysis.stats import aggregate_intervals
from rlzoo.sweep import split_top_level

NUM_SEEDS = 8
# The ceiling is stepped at the preset's rollout shape.
NUM_ENVS = ppo.PRESETS["gymnax/minatar"]["num_envs"]
NUM_STEPS = ppo.PRESETS["gymnax/minatar"]["num_steps"]


def ceiling(env_id: str) -> float:
    """In a fresh process, so that it gets one host device per core like the runs."""
    code = (
        "import os, json\nfrom rlzoo.launch.devices import request_cpu_devices\n"
        "request_cpu_devices(os.cpu_count() or 1)\nfrom common import random_action_ceiling\n"
        f"print(json.dumps(random_action_ceiling({env_id!r}, {NUM_ENVS}, {NUM_STEPS * 16}, "
        f"{NUM_SEEDS})))"
    )
    out = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT / "experiments", capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["env_steps_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--games", default="Breakout,SpaceInvaders")
    parser.add_argument("--total_steps", type=int, default=2_000_000)
    parser.add_argument("--set", default="", help="preset changes: field=value,...")
    parser.add_argument("--record_name", default="", help="default: ppo_minatar_<steps>")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for game in args.games.split(","):
        env_id = f"gymnax/{game}-MinAtar"
        flags = [
            "--agent=ppo", f"--env={env_id}", f"--num_seeds={NUM_SEEDS}", f"--seed={args.seed}",
            f"--total_steps={args.total_steps}", "--tensorboard=false",
        ]  # fmt: skip
        flags += [f"--config.{change}" for change in split_top_level(args.set)]
        with tempfile.TemporaryDirectory() as tmp:
            summary, wall = train_cli(Path(tmp) / "run", *flags)
            curve = eval_curve(Path(tmp) / "run", "eval/deterministic_return")
        scores = summary["final_eval_per_seed"]["eval/deterministic_return"]
        iqm = aggregate_intervals([scores], threshold=None)["iqm"]
        train_sps = NUM_SEEDS * summary["steps_per_seed"] / summary["chunk_seconds"]
        # The last evaluation is the final one, so this holds under --set num_envs/num_steps.
        steps_per_iteration = summary["steps_per_seed"] / curve[-1]["iteration"]
        limit = ceiling(env_id)
        rows.append(
            {
                "env": env_id,
                "command": "python -m rlzoo.train " + " ".join(flags),
                "per_seed": scores,
                "mean": sum(scores) / len(scores),
                "iqm": iqm.estimate,
                "iqm_ci95": [iqm.low, iqm.high],
                "min": min(scores),
                "train_env_steps_per_second": train_sps,
                "ceiling_env_steps_per_second": limit,
                "process_wall_seconds": wall,
                "compile_seconds": summary["compile_seconds"],
                "eval_seconds": summary["eval_seconds"],
                # Evaluations during the run (ten by default): env steps per seed, mean.
                "curve": [
                    {
                        "env_steps": round(c["iteration"] * steps_per_iteration),
                        "mean": sum(c["per_seed"]) / len(c["per_seed"]),
                        "per_seed": c["per_seed"],
                    }
                    for c in curve
                ],
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "curve"}), flush=True)
    lines = [
        "| game | env steps / seed | mean | IQM [95% CI] | min | training env steps/s | "
        "random-action env steps/s | wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {args.total_steps:,} | {r['mean']:.1f} | {r['iqm']:.1f} "
            f"[{r['iqm_ci95'][0]:.1f}, {r['iqm_ci95'][1]:.1f}] | {r['min']:.1f} | "
            f"{r['train_env_steps_per_second']:,.0f} | {r['ceiling_env_steps_per_second']:,.0f} "
            f"| {r['process_wall_seconds']:.0f} |"
        )
    preset = ppo.PRESETS["gymnax/minatar"]
    shape = ", ".join(f"{k}={v}" for k, v in preset.items() if k != "total_steps")
    changed = f"; changed: {args.set}" if args.set else ""
    curves = [
        f"{r['env']}: "
        + ", ".join(f"{c['env_steps'] / 1e6:.1f}M {c['mean']:.1f}" for c in r["curve"])
        for r in rows
    ]
    table = (
        f"PPO, {NUM_SEEDS} seeds per game; preset {shape}{changed}.\n\n"
        + "\n".join(lines)
        + "\n\nMean deterministic return over seeds at each evaluation (env steps per seed):\n\n"
        + "\n".join(f"- {c}" for c in curves)
    )
    name = args.record_name or f"ppo_minatar_{args.total_steps}"
    record(name, {"rows": rows, "preset": preset, "changes": args.set, "table": table})
    print(table)


if __name__ == "__main__":
    main()
