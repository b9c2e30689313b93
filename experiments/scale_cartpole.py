"""Scale-out of PPO on gymnax CartPole-v1 (PureJaxRL settings, 5e5 env steps per agent).

1. Sweep: 8 learning rates x 8 seeds = 64 agents in one program
   (``python -m rlzoo.sweep``, process start to results table), next to the same 64
   agents trained one after another as single runs in one process (the single-agent
   program compiled once and called 64 times, so the sequential side pays no compile
   or start-up per run).
2. Sharding: 8 seeds with ``python -m rlzoo.train`` on 1 host device vs 2 (one per core).

    python experiments/scale_cartpole.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from common import CLASSIC_PRESET_FLAGS, PYTHON, record, timed_process, train_cli

RATES = [1e-4, 1.8e-4, 2.5e-4, 3.5e-4, 5e-4, 7e-4, 1e-3, 1.4e-3]
BASE = [
    "--env=gymnax/CartPole-v1",
    "--total_steps=500000",
    *CLASSIC_PRESET_FLAGS,
    "--tensorboard=false",
    "--progress=false",
]


def sequential_single_runs() -> dict:
    """64 single-agent trainings, one after another, one compiled program."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rlzoo import envs
    from rlzoo.agents import ppo

    env, params = envs.make("gymnax/CartPole-v1")
    config = ppo.Config()
    agent = ppo.make_agent(config, env, params)
    train = ppo.make_train(config, env, params)

    def train_and_evaluate(key, cfg):
        state, _ = train(key, cfg)
        return agent.evaluate(state, jax.random.fold_in(key, 1))["eval/deterministic_return"]

    start = time.perf_counter()
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    compiled = jax.jit(train_and_evaluate).lower(keys[0], config).compile()
    compile_seconds = time.perf_counter() - start
    returns = []
    for rate in RATES:
        cfg = config.replace(learning_rate=jnp.float32(rate))
        for key in keys:
            returns.append(float(compiled(key, cfg)))
    return {
        "wall_seconds": time.perf_counter() - start,
        "compile_seconds": compile_seconds,
        "mean_return": float(np.mean(returns)),
    }


def main() -> None:
    import sys

    if "--_sequential" in sys.argv:
        print(json.dumps(sequential_single_runs()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        rates = ",".join(str(r) for r in RATES)
        sweep_flags = [
            *BASE,
            "--num_seeds=8",
            f"--sweep.learning_rate={rates}",
            f"--run_dir={Path(tmp) / 'sweep'}",
        ]
        sweep_wall = timed_process([PYTHON, "-m", "rlzoo.sweep", *sweep_flags])["wall_seconds"]
        results = json.loads((Path(tmp) / "sweep" / "results.json").read_text())
        best = results["rows"][0]
        sharding = {}
        for devices in (1, 2):
            summary, wall = train_cli(
                Path(tmp) / f"d{devices}",
                *BASE,
                "--num_seeds=8",
                f"--num_devices={devices}",
                "--cpu_devices=2",
            )
            sharding[devices] = {
                "process_wall_seconds": wall,
                "compile_seconds": summary["compile_seconds"],
                "train_seconds_after_compile": summary["train_seconds_after_compile"],
            }
    probe = timed_process([PYTHON, __file__, "--_sequential"], timeout=7200)
    sequential = json.loads(probe["stdout_tail"].strip().splitlines()[-1])
    sequential["process_wall_seconds"] = probe["wall_seconds"]
    train_ratio = (
        sharding[2]["train_seconds_after_compile"] / sharding[1]["train_seconds_after_compile"]
    )
    table = [
        "| what | wall time (s) |",
        "|---|---|",
        f"| 64-agent sweep (8 learning rates x 8 seeds), one program, process start to "
        f"results table | {sweep_wall:.1f} |",
        f"| the same 64 agents as single runs one after another (one process, compiled "
        f"once) | {sequential['process_wall_seconds']:.1f} |",
        f"| 8 seeds, 1 host device (process start to summary) | "
        f"{sharding[1]['process_wall_seconds']:.1f} |",
        f"| 8 seeds, 2 host devices (one per core) | {sharding[2]['process_wall_seconds']:.1f} |",
        "",
        f"Sweep / sequential: {sweep_wall / sequential['process_wall_seconds']:.2f}x the "
        f"time. 2 devices / 1 device: "
        f"{sharding[2]['process_wall_seconds'] / sharding[1]['process_wall_seconds']:.2f}x "
        f"(training after compile: "
        f"{train_ratio:.2f}x). "
        f"Best learning rate: {best['config']['learning_rate']} (mean {best['mean']:.1f}).",
    ]
    record(
        "scale_cartpole",
        {
            "sweep": {
                "command": "python -m rlzoo.sweep " + " ".join(sweep_flags[:-1]),
                "process_wall_seconds": sweep_wall,
                "rows": results["rows"],
            },
            "sequential_single_runs": sequential,
            "sharding": sharding,
            "table": "\n".join(table),
        },
    )
    print("\n".join(table))


if __name__ == "__main__":
    main()
