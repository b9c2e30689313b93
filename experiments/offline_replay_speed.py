"""Replay-buffer speed: flashbax's trajectory buffer against rlzoo's own ring, vmapped over seeds.

    python experiments/offline_replay_speed.py --seeds=8 --iterations=2000

One iteration adds one step of ``num_envs`` envs (Pendulum-sized transitions) and samples
a batch of 256, as an off-policy agent does per env step; ``seeds`` buffers run in one
vmapped program. Prints iterations per second after compilation, best of three.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from common import record

from rlzoo.data.replay import BACKENDS, ReplayBuffer


def transition(key, num_envs, obs_dim=3, action_dim=1):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "observations": jax.random.normal(k1, (num_envs, obs_dim)),
        "actions": jax.random.normal(k2, (num_envs, action_dim)),
        "rewards": jax.random.normal(k3, (num_envs,)),
        "terminated": jnp.zeros((num_envs,), bool),
        "truncated": jnp.zeros((num_envs,), bool),
        "next_observations": jax.random.normal(k1, (num_envs, obs_dim)),
    }


def program(buffer: ReplayBuffer, iterations: int, batch_size: int, n_step: int):
    def run(key):
        example = jax.tree.map(lambda x: x[0], transition(key, buffer.num_envs))
        state = buffer.init(example)

        def body(carry, _):
            state, key, total = carry
            key, add_key, sample_key = jax.random.split(key, 3)
            state = buffer.add(state, transition(add_key, buffer.num_envs))
            batch = buffer.sample(state, sample_key, batch_size, n_step=n_step)
            return (state, key, total + batch["rewards"].sum()), None

        (_, _, total), _ = jax.lax.scan(body, (state, key, 0.0), None, iterations)
        return total

    return jax.jit(jax.vmap(run))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--num_envs", type=int, default=4)
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--n_step", type=int, default=1)
    args = parser.parse_args()
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    rates = {}
    for backend in BACKENDS:
        buffer = ReplayBuffer(args.capacity, args.num_envs, backend)
        run = program(buffer, args.iterations, args.batch_size, args.n_step)
        run(keys).block_until_ready()  # compile
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            run(keys).block_until_ready()
            best = min(best, time.perf_counter() - start)
        print(
            f"{backend:9s} seeds={args.seeds} envs={args.num_envs} capacity={args.capacity} "
            f"batch={args.batch_size} n_step={args.n_step}: "
            f"{args.iterations / best:,.0f} add+sample iterations/s per program "
            f"({args.iterations * args.seeds / best:,.0f} over all seeds)"
        )
        rates[backend] = args.iterations / best
    table = (
        "| replay backend | seeds in one program | n-step | add + sample iterations/s |\n"
        "|---|---|---|---|\n"
        + "\n".join(
            f"| {name} | {args.seeds} | {args.n_step} | {rate:,.0f} |"
            for name, rate in rates.items()
        )
        + f"\n\nEach iteration adds {args.num_envs} transitions and samples {args.batch_size}; "
        "best of three timings after compilation."
    )
    record(
        f"offline_replay_speed_seeds{args.seeds}_n{args.n_step}",
        {"args": vars(args), "iterations_per_second": rates, "table": table},
    )


if __name__ == "__main__":
    main()
