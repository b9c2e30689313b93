"""Compute-bound speed of the offline diffusion agents' update: FLOPs per gradient step (XLA's
cost analysis of the jitted learn step) times gradient steps per second, next to a jitted
float32 matmul of the same layer width measured in the same process.

    python experiments/diffusion_offline_speed.py --agents=td3_bc,diffusion_ql,idql,fql \\
        --width=256 --updates=200

Shapes are Brax hopper's (``offline_td3_bc_speed.HopperShapes``: 11-dim states, 3-dim
actions; synthetic data, 200k transitions); every agent has its own defaults (batch,
denoising steps, critic sizes) except the width: ``--width`` for the denoiser
(``hidden_size``) and for every critic and actor layer. One timed call is ``--updates``
gradient steps of one seed in one jitted ``update`` (compiled first; best of ``--repeats``).
XLA's cost analysis counts a loop body once whatever its trip count, so the FLOPs are those
of a one-step ``update`` lowered with every ``lax.scan`` unrolled (the denoising chains
included; the timed program is the ordinary one); ``GFLOP/s`` = FLOPs per step x steps per
second, and ``of matmul`` its share of the probe's rate (a batch-256 ``width x width``
matmul chain, the densest layer these networks have).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time

import jax
import jax.numpy as jnp
from common import record
from offline_td3_bc_speed import HopperShapes, synthetic_dataset

from rlzoo import agents
from rlzoo.core.hparams import override

DIFFUSION = ("diffusion_ql", "idql", "fql", "diffusion_bc")


def matmul_gflops(width: int, batch: int = 256, repeats: int = 500) -> float:
    """``[batch, width] @ [width, width]`` in a jitted loop: the rate of one dense layer."""
    x = jnp.ones((batch, width), jnp.float32)
    w = jnp.ones((width, width), jnp.float32) / width
    f = jax.jit(lambda x: jax.lax.fori_loop(0, repeats, lambda _, h: jnp.tanh(h @ w), x))
    f(x).block_until_ready()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        f(x).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * batch * width * width * repeats / best / 1e9


@contextlib.contextmanager
def unrolled_scans():
    """Every ``jax.lax.scan`` traced inside is fully unrolled (for an exact FLOP count)."""
    original = jax.lax.scan
    jax.lax.scan = functools.partial(original, unroll=True)
    try:
        yield
    finally:
        jax.lax.scan = original


def flops_per_step(module, config, data) -> float:
    """XLA's FLOP count of one gradient step (a one-step ``update``, scans unrolled)."""
    config = override(config, total_steps=1, updates_per_iteration=1)
    agent = module.make_agent(config, HopperShapes())
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), config, data)
    with unrolled_scans():
        cost = jax.jit(agent.update).lower(state, data).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


def agent_config(name: str, width: int, updates: int):
    module = agents.get(name)
    changes = dict(total_steps=updates, updates_per_iteration=updates)
    if name in DIFFUSION:
        changes["hidden_size"] = width
        if name != "diffusion_bc":
            sizes = module.Config().critic_hidden_sizes
            changes["critic_hidden_sizes"] = (width,) * len(sizes)
    else:
        changes["hidden_sizes"] = (width,) * len(module.Config().hidden_sizes)
    return module, override(module.default_config("shapes/hopper"), **changes)


def measure(name: str, width: int, updates: int, repeats: int, data) -> dict:
    module, config = agent_config(name, width, updates)
    agent = module.make_agent(config, HopperShapes())
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), config, data)
    update = jax.jit(agent.update, donate_argnums=0)
    compiled = update.lower(state, data).compile()
    flops = flops_per_step(module, config, data)
    state, _ = jax.block_until_ready(compiled(state, data))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        state, _ = jax.block_until_ready(compiled(state, data))
        best = min(best, time.perf_counter() - start)
    steps_per_second = updates / best
    return {
        "agent": name,
        "batch_size": config.batch_size,
        "flops_per_step": flops,
        "steps_per_second": steps_per_second,
        "gflops_per_second": flops * steps_per_second / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", default="td3_bc,diffusion_ql,idql,fql")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--transitions", type=int, default=200_000)
    args = parser.parse_args()
    data = jax.device_put(synthetic_dataset(args.transitions))
    probe = matmul_gflops(args.width)
    print(f"device: {jax.devices()[0].device_kind}; matmul 256x{args.width}: {probe:.1f} GFLOP/s")
    print("| agent | batch | MFLOP / step | steps / s | GFLOP/s | of matmul |")
    print("|---|---|---|---|---|---|")
    results = []
    for name in args.agents.split(","):
        row = measure(name, args.width, args.updates, args.repeats, data)
        row["fraction_of_matmul"] = row["gflops_per_second"] / probe
        results.append(row)
        print(
            f"| {name} | {row['batch_size']} | {row['flops_per_step'] / 1e6:.1f} | "
            f"{row['steps_per_second']:.0f} | {row['gflops_per_second']:.1f} | "
            f"{row['fraction_of_matmul']:.0%} |",
            flush=True,
        )
    record(
        f"diffusion_offline_speed_w{args.width}",
        {"args": vars(args), "device": jax.devices()[0].device_kind,
         "matmul_gflops": probe, "results": results, "table": speed_table(results, probe)},
    )  # fmt: skip


def speed_table(results: list[dict], probe: float) -> str:
    """Markdown of the measured rows, with the probe's rate."""
    lines = [
        "| agent | batch | MFLOP / gradient step | gradient steps / s | GFLOP/s | share of the "
        f"matmul probe ({probe:.0f} GFLOP/s) |",
        "|---|---|---|---|---|---|",
    ]
    for row in results:
        lines.append(
            f"| {row['agent']} | {row['batch_size']} | {row['flops_per_step'] / 1e6:.1f} | "
            f"{row['steps_per_second']:.0f} | {row['gflops_per_second']:.1f} | "
            f"{row['fraction_of_matmul']:.0%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
