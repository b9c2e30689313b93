"""Inference cost of each policy class: actions per second at batch 1 and batch 1024.

    python experiments/policy_inference_speed.py [--rounds=2]

Policies, all on hopper's shapes (11-D states, 3-D actions) with 256-unit layers:
``gaussian`` (``TanhGaussianActor``, two hidden layers, a sampled action),
``diffusion-ddpmK`` for K = 5, 10, 20 (``rlzoo.nets.diffusion``: the residual-MLP denoiser,
3 blocks, DDPM ancestral sampling through K steps of the VP schedule), ``flow-euler10``
(the same network as a rectified-flow velocity, 10 Euler steps) and ``flow-onestep`` (one
Euler step: the cost of a one-step flow policy of that network, as FQL's distilled policy).

Each is one jitted call per batch of states, timed over repeated calls after a warm-up; the
cost of a call is also given in FLOPs (XLA's cost analysis of one network call, times the
number of calls: 1 for the Gaussian, K for a K-step sampler), and at batch 1024 as achieved
GFLOP/s next to a jitted float32 matmul of the layers' shape ``[1024, 256] x [256, 256]``
measured in the same round. Every figure is measured ``--rounds`` times in one process; the
ratios to the Gaussian policy are what carries from one machine to another.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import record

from rlzoo.nets import TanhGaussianActor, sample_tanh_gaussian
from rlzoo.nets.diffusion import Denoiser, DiffusionPolicy

OBS_DIM, ACTION_DIM, WIDTH = 11, 3, 256


def gaussian_policy():
    actor = TanhGaussianActor(ACTION_DIM, (WIDTH, WIDTH))
    params = actor.init(jax.random.PRNGKey(0), jnp.zeros((1, OBS_DIM)))

    def act(params, obs, key):
        mean, log_std = actor.apply(params, obs)
        return sample_tanh_gaussian(key, mean, log_std)[0]

    def network(params, obs):
        return actor.apply(params, obs)

    return act, params, network, 1


def generative_policy(kind: str, steps: int):
    policy = DiffusionPolicy(Denoiser(ACTION_DIM, WIDTH, num_blocks=3), kind, steps, "vp")
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, OBS_DIM)))

    def act(params, obs, key):
        return policy.act(params, obs, key, deterministic=False)

    def network(params, obs):
        x = jnp.zeros((*obs.shape[:-1], ACTION_DIM))
        return policy.network.apply(params, obs, x, jnp.zeros(obs.shape[:-1]))

    return act, params, network, steps


POLICIES = {
    "gaussian": gaussian_policy,
    "diffusion-ddpm5": lambda: generative_policy("ddpm", 5),
    "diffusion-ddpm10": lambda: generative_policy("ddpm", 10),
    "diffusion-ddpm20": lambda: generative_policy("ddpm", 20),
    "flow-euler10": lambda: generative_policy("flow", 10),
    "flow-onestep": lambda: generative_policy("flow", 1),
}


def time_call(fn, *args, min_seconds: float = 1.0) -> float:
    """Seconds per call: repeated until ``min_seconds`` have passed, after a warm-up."""
    jax.block_until_ready(fn(*args))
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        out = fn(*args)
        calls += 1
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def flops(fn, *args) -> float:
    """XLA's FLOP count of one call of ``fn`` (a loop body is counted once, so samplers are
    counted as network FLOPs times the number of network calls)."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis.get("flops", float("nan")))


def matmul_gflops(batch: int) -> float:
    x = jax.random.normal(jax.random.PRNGKey(0), (batch, WIDTH))
    w = jax.random.normal(jax.random.PRNGKey(1), (WIDTH, WIDTH))
    fn = jax.jit(jnp.matmul)
    return 2 * batch * WIDTH * WIDTH / time_call(fn, x, w) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    built = {name: make() for name, make in POLICIES.items()}
    rounds = []
    for r in range(args.rounds):
        row = {"matmul_gflops_1024x256x256": matmul_gflops(1024)}
        for name, (act, params, network, calls) in built.items():
            for batch in (1, 1024):
                obs = jax.random.normal(jax.random.PRNGKey(batch), (batch, OBS_DIM))
                key = jax.random.PRNGKey(r)
                seconds = time_call(jax.jit(act), params, obs, key)
                call_flops = calls * flops(network, params, obs)
                row[f"{name}/batch{batch}/actions_per_second"] = batch / seconds
                row[f"{name}/batch{batch}/flops_per_call"] = call_flops
                row[f"{name}/batch{batch}/gflops"] = call_flops / seconds / 1e9
        rounds.append(row)
        print(f"round {r}: matmul {row['matmul_gflops_1024x256x256']:.0f} GFLOP/s")

    table = [
        "| policy | actions/s, batch 1 | x Gaussian | actions/s, batch 1024 | x Gaussian "
        "| MFLOP per action | GFLOP/s at 1024 (matmul: {mm}) |",
        "|---|---|---|---|---|---|---|",
    ]
    mm = " / ".join(f"{row['matmul_gflops_1024x256x256']:.0f}" for row in rounds)
    table[0] = table[0].format(mm=mm)
    for name in POLICIES:

        def cell(key, fmt, rounds=rounds, name=name):
            return " / ".join(format(row[f"{name}/{key}"], fmt) for row in rounds)

        def ratio(batch, rounds=rounds, name=name):
            key = f"batch{batch}/actions_per_second"
            return " / ".join(
                f"{row[f'{name}/{key}'] / row[f'gaussian/{key}']:.3f}" for row in rounds
            )

        per_action = rounds[0][f"{name}/batch1024/flops_per_call"] / 1024 / 1e6
        table.append(
            f"| {name} | {cell('batch1/actions_per_second', '.0f')} | {ratio(1)} "
            f"| {cell('batch1024/actions_per_second', '.0f')} | {ratio(1024)} "
            f"| {per_action:.3f} | {cell('batch1024/gflops', '.1f')} |"
        )
    print("\n".join(table))
    record("policy_inference_speed", {"rounds": rounds, "table": "\n".join(table)})


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
