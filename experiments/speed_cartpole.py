"""Speed of PPO on gymnax CartPole-v1 with PureJaxRL's settings, next to its ceilings.

Settings: 4 envs x 128 steps, 4 epochs x 4 minibatches, 5e5 env steps per seed, 64x64
tanh MLPs, lr 2.5e-4 annealed. For 1, 8 and 32 seeds, each in a fresh process:

* rlzoo: ``python -m rlzoo.train`` (process start to summary, compile, training time,
  training env steps per second over all seeds; evaluation and checkpoints included);
* the env-only ceiling: the same vmapped env shape stepped with random actions, sharded
  over the same devices, in one jitted scan;
* rejax's PPO with the same hyperparameters (``experiments/peers/rejax_ppo_cartpole.py``
  in its own venv, made by ``experiments/peers/setup_rejax_venv.sh``), back to back.

    python experiments/speed_cartpole.py [--num_seeds=1,8,32] [--rejax_seeds=1,8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from common import PYTHON, ROOT, random_action_ceiling, record, timed_process, train_cli

NUM_ENVS, STEPS_PER_SEED = 4, 500_000
FLAGS = [
    "--env=gymnax/CartPole-v1",
    f"--total_steps={STEPS_PER_SEED}",
    "--config.learning_rate=0.00025",  # PureJaxRL's values (the shipped preset differs)
    f"--config.num_envs={NUM_ENVS}",
    "--tensorboard=false",
]


def ceiling(num_seeds: int) -> dict:
    """Random-action env steps per second at the training program's vmapped shape."""
    from rlzoo.launch.devices import request_cpu_devices

    request_cpu_devices(os.cpu_count() or 1)
    return random_action_ceiling(
        "gymnax/CartPole-v1", NUM_ENVS, STEPS_PER_SEED // NUM_ENVS, num_seeds
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num_seeds", default="1,8,32")
    parser.add_argument("--rejax_seeds", default="1,8", help="empty: skip rejax")
    parser.add_argument("--rejax_venv", default=str(ROOT / ".venv-rejax"))
    parser.add_argument("--_ceiling", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._ceiling:
        print(json.dumps(ceiling(args._ceiling)))
        return

    rows = {}
    for n in [int(s) for s in args.num_seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            summary, wall = train_cli(Path(tmp) / "run", f"--num_seeds={n}", *FLAGS)
        probe = timed_process([PYTHON, __file__, f"--_ceiling={n}"])
        env_only = json.loads(probe["stdout_tail"].strip().splitlines()[-1])
        train_sps = n * summary["steps_per_seed"] / summary["train_seconds_after_compile"]
        rows[n] = {
            "process_wall_seconds": wall,
            "compile_seconds": summary["compile_seconds"],
            "train_seconds_after_compile": summary["train_seconds_after_compile"],
            "train_env_steps_per_second": train_sps,
            "env_only_env_steps_per_second": env_only["env_steps_per_second"],
            "fraction_of_ceiling": train_sps / env_only["env_steps_per_second"],
            "devices": summary["devices"],
            "deterministic_return_mean": summary["final_eval"]["eval/deterministic_return"]["mean"],
        }
        print(n, json.dumps(rows[n]), flush=True)

    rejax = {}
    python = Path(args.rejax_venv) / "bin" / "python"
    if args.rejax_seeds and python.exists():
        out = Path(tempfile.mkdtemp()) / "rejax.json"
        timed_process(
            [
                str(python),
                "experiments/peers/rejax_ppo_cartpole.py",
                f"--num_seeds={args.rejax_seeds}",
                "--fresh_process",
                f"--out={out}",
            ],
            timeout=7200,
        )
        for r in json.loads(out.read_text())["results"]:
            rejax[r["num_seeds"]] = {
                "process_wall_seconds": r["process_wall_s"],
                "compile_seconds": r["lower_plus_compile_s"],
                "run_seconds": r["run_first_s"],
                "final_return_mean": r["final_return_mean"],
            }
    elif args.rejax_seeds:
        print(
            f"no rejax venv at {args.rejax_venv}; run experiments/peers/setup_rejax_venv.sh",
            file=sys.stderr,
        )

    ratios = {}
    if 1 in rows and 8 in rows:
        ratios["rlzoo_8_vs_1_seed_process_wall"] = (
            rows[8]["process_wall_seconds"] / rows[1]["process_wall_seconds"]
        )
    if 8 in rows and 8 in rejax:
        ratios["rejax_over_rlzoo_8_seed_process_wall"] = (
            rejax[8]["process_wall_seconds"] / rows[8]["process_wall_seconds"]
        )
        ratios["rejax_over_rlzoo_8_seed_train_after_compile"] = (
            rejax[8]["run_seconds"] / rows[8]["train_seconds_after_compile"]
        )
    table = [
        "| seeds | process wall (s) | compile (s) | train after compile (s) | train steps/s "
        "| env-only steps/s | rejax process wall (s) | rejax run (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, r in rows.items():
        rj = rejax.get(n, {})
        table.append(
            f"| {n} | {r['process_wall_seconds']:.1f} | {r['compile_seconds']:.1f} | "
            f"{r['train_seconds_after_compile']:.1f} | {r['train_env_steps_per_second']:,.0f} | "
            f"{r['env_only_env_steps_per_second']:,.0f} | "
            f"{rj.get('process_wall_seconds', float('nan')):.1f} | "
            f"{rj.get('run_seconds', float('nan')):.1f} |"
        )
    record(
        "speed_cartpole",
        {
            "rlzoo_flags": FLAGS,
            "rlzoo": rows,
            "rejax": rejax,
            "ratios": ratios,
            "table": "\n".join(table),
        },
    )
    print("\n".join(table))
    print(json.dumps(ratios, indent=1))


if __name__ == "__main__":
    main()
