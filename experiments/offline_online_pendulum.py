"""SAC and TD3 on gymnax Pendulum-v1: returns and wall time for a few seeds in one program.

    python experiments/offline_online_pendulum.py --seeds=4 --total_steps=20000

Small networks (64, 64) and batch 128 so that it runs on a laptop CPU; random play scores
about -1200, a swing-up about -150. Prints the final deterministic return per seed.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from common import record

from rlzoo import envs
from rlzoo.agents import sac, td3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--total_steps", type=int, default=20_000)
    parser.add_argument("--agents", default="sac,td3")
    args = parser.parse_args()
    env, params = envs.make("gymnax/Pendulum-v1")
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    results = {}
    for name in args.agents.split(","):
        module = {"sac": sac, "td3": td3}[name]
        config = module.Config(
            total_steps=args.total_steps, num_steps=200, learning_starts=1_000,
            buffer_size=args.total_steps, hidden_sizes=(64, 64), batch_size=128,
            num_eval_episodes=16,
        )  # fmt: skip
        agent = module.make_agent(config, env, params)
        train = jax.jit(jax.vmap(module.make_train(config, env, params)))
        start = time.perf_counter()
        state, _ = jax.block_until_ready(train(keys))
        seconds = time.perf_counter() - start
        scores = jax.jit(jax.vmap(agent.evaluate))(state, jax.random.split(keys[0], args.seeds))
        returns = np.asarray(scores[agent.score_key])
        print(
            f"{name}: {args.seeds} seeds x {args.total_steps} env steps in {seconds:.1f} s "
            f"(compile included); final deterministic return per seed {np.round(returns, 1)}, "
            f"mean {returns.mean():.1f}"
        )
        results[name] = {"returns": returns.tolist(), "seconds_incl_compile": seconds}
    lines = [
        "| agent | seeds | env steps / seed | final deterministic return per seed | mean | min "
        "| wall incl. compile (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        returns = np.asarray(r["returns"])
        lines.append(
            f"| {name} | {args.seeds} | {args.total_steps:,} | "
            f"{', '.join(f'{x:.0f}' for x in returns)} | {returns.mean():.1f} | "
            f"{returns.min():.1f} | {r['seconds_incl_compile']:.0f} |"
        )
    table = "\n".join(lines) + "\n\nSAC and TD3 on gymnax/Pendulum-v1 (random play: about -1230)."
    record("offline_online_pendulum", {"args": vars(args), "results": results, "table": table})


if __name__ == "__main__":
    main()
