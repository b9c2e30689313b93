"""Time for GRPO to reach 90% held-out pass@1 on tokens/reverse-8 from an SFT base.

The base: ``--sft_steps`` gradient steps on demonstrations with ``--demo_noise`` of the
answer tokens random (a moderate sampled pass@1). GRPO (default config: ``ppo_clip``,
16 prompts x 8 completions, 2 epochs x 2 minibatches) then runs in jitted chunks of
``--eval_every`` iterations, ``--num_seeds`` seeds in one program, until the mean
held-out pass@1 over seeds is >= 0.9 or ``--max_iterations`` pass. Wall time counts GRPO
only (compilation included, reported apart from the first chunk's time).

    python experiments/grpo_reverse8.py [--num_seeds=8]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from common import record

from rlzoo import envs
from rlzoo.agents import grpo, sft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num_seeds", type=int, default=8)
    parser.add_argument("--sft_steps", type=int, default=600)
    parser.add_argument("--demo_noise", type=float, default=0.15)
    parser.add_argument("--eval_every", type=int, default=5)
    parser.add_argument("--max_iterations", type=int, default=200)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    args = parser.parse_args()

    env, params = envs.make("tokens/reverse-8")
    base_cfg = sft.Config(
        total_steps=args.sft_steps, updates_per_iteration=args.sft_steps, demo_noise=args.demo_noise
    )
    base_agent = sft.make_agent(base_cfg, env, params)
    start = time.perf_counter()
    base_state, _ = jax.jit(sft.make_train(base_cfg, env, params))(jax.random.PRNGKey(0))
    base_eval = jax.jit(base_agent.evaluate)(base_state, jax.random.PRNGKey(1), None)
    sft_seconds = time.perf_counter() - start
    base_eval = {k: float(v) for k, v in base_eval.items()}
    print("base", base_eval, f"{sft_seconds:.1f}s")
    data = grpo.data_from_sft_state(base_state)

    cfg = grpo.Config(
        total_steps=args.max_iterations * 128, learning_rate=args.learning_rate, kl_coef=0.0
    )
    agent = grpo.make_agent(cfg, env, params)
    keys = jax.random.split(jax.random.PRNGKey(2), args.num_seeds)
    state = jax.jit(jax.vmap(agent.init, in_axes=(0, None, None)))(keys, cfg, data)
    chunk = jax.jit(
        jax.vmap(
            lambda s, d: jax.lax.scan(lambda c, _: agent.update(c, d), s, None, args.eval_every),
            in_axes=(0, None),
        )
    )
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, None, None)))
    curve, reached, first_chunk = [], None, None
    start = time.perf_counter()
    for i in range(1, args.max_iterations // args.eval_every + 1):
        state, _ = chunk(state, data)
        pass1 = np.asarray(evaluate(state, jax.random.PRNGKey(3), data)["eval/pass@1"])
        elapsed = time.perf_counter() - start
        first_chunk = first_chunk or elapsed
        curve.append([i * args.eval_every, float(pass1.mean()), float(pass1.min()), elapsed])
        print(curve[-1])
        if pass1.mean() >= 0.9:
            reached = curve[-1]
            break
    record(
        "grpo_reverse8",
        {
            "args": vars(args),
            "base": base_eval,
            "sft_seconds_incl_compile": sft_seconds,
            "curve": curve,
            "curve_columns": ["iteration", "mean_pass@1", "min_pass@1", "seconds"],
            "reached_0.9": reached,
            "first_chunk_seconds_incl_compile": first_chunk,
            "completions_to_0.9_per_seed": reached[0] * 128 if reached else None,
        },
    )


if __name__ == "__main__":
    main()
