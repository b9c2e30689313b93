"""TD3+BC gradient updates per second at batch 256, for 1, 8 and 32 seeds in one program.

    python experiments/offline_td3_bc_speed.py --seeds=1,8,32 --updates=2000

The dataset is synthetic with Brax hopper's shapes (11-dim states, 3-dim actions; 200k
transitions; the speed does not depend on the values) and the networks are the paper's
(256, 256). One timed call is ``--updates`` gradient steps of every seed in one jitted,
vmapped ``update`` (compiled beforehand; best of ``--repeats``). The last column is the
wall time 1e6 updates per seed would take at that rate (an extrapolation, not a run).
The update is compute-bound, so it is also given as FLOPs per update (XLA's count of one
update, from ``diffusion_offline_speed.flops_per_step``) times updates per second, next to a
jitted ``[256, 256] @ [256, 256]`` matmul (one layer's shape) measured in the same process.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from common import record

from rlzoo.agents import td3_bc
from rlzoo.envs import Box, Environment


class HopperShapes(Environment):
    """Only the spaces of brax/hopper (TD3+BC's update never steps the env)."""

    id = "shapes/hopper"

    def observation_space(self, params):
        return Box(-np.inf, np.inf, (11,))

    def action_space(self, params):
        return Box(-1.0, 1.0, (3,))


def synthetic_dataset(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "observations": rng.normal(size=(n, 11)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminated": rng.uniform(size=n) < 0.001,
        "truncated": np.zeros(n, bool),
        "next_observations": rng.normal(size=(n, 11)).astype(np.float32),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="1,8,32")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--transitions", type=int, default=200_000)
    args = parser.parse_args()
    # Here, not at the top: that module imports this one's HopperShapes.
    from diffusion_offline_speed import flops_per_step, matmul_gflops

    env = HopperShapes()
    data = jax.device_put(synthetic_dataset(args.transitions))
    config = td3_bc.Config(total_steps=args.updates, updates_per_iteration=args.updates)
    agent = td3_bc.make_agent(config, env)
    gflops = matmul_gflops(256)
    flops = flops_per_step(td3_bc, config, data)
    print(f"device: {jax.devices()[0].device_kind}; matmul 256x256: {gflops:.0f} GFLOP/s")
    results = []
    for seeds in (int(s) for s in args.seeds.split(",")):
        keys = jax.random.split(jax.random.PRNGKey(0), seeds)
        init = jax.jit(jax.vmap(agent.init, in_axes=(0, None, None)))
        update = jax.jit(jax.vmap(agent.update, in_axes=(0, None)), donate_argnums=0)
        state = init(keys, config, data)
        state, _ = jax.block_until_ready(update(state, data))  # compile
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            state, metrics = jax.block_until_ready(update(state, data))
            best = min(best, time.perf_counter() - start)
        per_seed = args.updates / best
        print(
            f"seeds={seeds:3d}: {per_seed:8.0f} updates/s per seed, {per_seed * seeds:9.0f} "
            f"updates/s in all; 1e6 updates/seed would take {1e6 / per_seed / 60:.1f} min "
            f"(critic loss {float(np.mean(metrics['loss/critic'])):.3f})"
        )
        results.append(
            {
                "seeds": seeds,
                "updates_per_second_per_seed": per_seed,
                "gflops_per_second": flops * per_seed * seeds / 1e9,
                "hours_for_1e6_updates_per_seed": 1e6 / per_seed / 3600,
            }
        )
    lines = [
        f"TD3+BC at batch 256, networks (256, 256), {flops / 1e6:.1f} MFLOP per update; "
        f"matmul probe: {gflops:.0f} GFLOP/s.",
        "",
        "| seeds in one program | updates/s per seed | updates/s, all seeds | GFLOP/s | share of "
        "the probe | 1e6 updates per seed would take (h) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['seeds']} | {r['updates_per_second_per_seed']:.0f} | "
            f"{r['updates_per_second_per_seed'] * r['seeds']:.0f} | {r['gflops_per_second']:.1f} "
            f"| {r['gflops_per_second'] / gflops:.0%} | {r['hours_for_1e6_updates_per_seed']:.1f} |"
        )
    record(
        "offline_td3_bc_speed",
        {
            "args": vars(args),
            "matmul_256_gflops": gflops,
            "flops_per_update": flops,
            "results": results,
            "table": "\n".join(lines),
        },
    )


if __name__ == "__main__":
    main()
