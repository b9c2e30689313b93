"""Speed of the optional on-device suites: random-action steps/s at 1024 envs, and rlzoo's
PPO training steps/s on the same env next to it.

One env per suite (the ``ppo_suites.py`` ones). Each suite runs in a fresh process:

* random actions: ``VectorEnv(EpisodeStatistics(env), 1024)`` stepped ``--steps`` times in
  one jitted ``lax.scan`` (uniform over the allowed actions where the observation carries an
  action mask, else the action space's ``sample``; every observation is read, as a policy
  would); the second call is timed;
* PPO: the suite's preset (``ppo.PRESETS``) with ``num_envs=1024`` and ``num_steps=16``;
  one ``update`` (rollout, GAE, ``num_epochs x num_minibatches`` SGD steps) is compiled and
  run once, the next ``--ppo_iterations`` are timed; env steps/s = 1024 * 16 per update.

Compile times are reported apart (default XLA settings). One seed, no ``vmap`` over seeds.

An env that declares optimistic resets (Craftax: ``optimistic_reset_ratio`` 16, see
``rlzoo.envs.wrappers.VectorEnv``) is measured on that path, as PPO runs it, and, in the
same process, its random actions again with the per-env reset of every step
(``optimistic_reset_ratio=None``, the former path), with the ratio new / old.

    python experiments/suites_speed.py [--suites=jumanji,craftax,...] [--steps=64]

A run of some suites only should take its own ``--record_name`` (e.g.
``--suites=craftax --record_name=suites_speed_craftax``), so that the full record
``suites_speed.json``, whose table the README quotes, stays whole.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import record
from ppo_suites import ENV_IDS, row_in_fresh_process

NUM_ENVS = 1024
PPO_NUM_STEPS = 16


def random_actions(env, params, num_envs: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    from rlzoo import envs
    from rlzoo.nets.actor_critic import action_mask, masked_logits

    venv = envs.VectorEnv(envs.EpisodeStatistics(env), num_envs)
    space = env.action_space(params)

    def sample(key, obs):
        mask = action_mask(obs)
        if mask is not None and isinstance(space, envs.Discrete):
            logits = masked_logits(jnp.zeros(mask.shape), mask)
            return jax.random.categorical(key, logits).astype(jnp.int32)
        return jax.vmap(space.sample)(jax.random.split(key, num_envs))

    def run(key):
        obs, state = venv.reset(key, params)

        def step(carry, _):
            obs, state, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            obs, state, reward, *_ = venv.step(step_key, state, sample(act_key, obs), params)
            # Read the observations too, or XLA drops what only they need (a grid
            # world's rendering of its view) and the random policy looks faster than it is.
            seen = sum(jnp.sum(leaf.astype(jnp.float32)) for leaf in jax.tree.leaves(obs))
            return (obs, state, key), (reward.sum(), seen)

        rewards, seen = jax.lax.scan(step, (obs, state, key), None, steps)[1]
        return rewards.sum(), seen.sum()

    key = jax.random.key(0)
    start = time.perf_counter()
    compiled = jax.jit(run).lower(key).compile()
    compile_seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(key))
    start, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(compiled(jax.random.key(1)))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return {
        "compile_seconds": compile_seconds,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "env_steps_per_second": num_envs * steps / seconds,
        "env_steps_per_cpu_second": num_envs * steps / cpu_seconds,
    }


def ppo_training(env_id: str, env, params, iterations: int) -> dict:
    import dataclasses

    import jax

    from rlzoo.agents import ppo

    preset = ppo.default_config(env_id)
    cfg = dataclasses.replace(
        preset,
        num_envs=NUM_ENVS,
        num_steps=PPO_NUM_STEPS,
        total_steps=NUM_ENVS * PPO_NUM_STEPS * (iterations + 1),
    )
    agent = ppo.make_agent(cfg, env, params)
    start = time.perf_counter()
    state = jax.jit(agent.init)(jax.random.key(0))
    update = jax.jit(agent.update, donate_argnums=0)
    state, _ = jax.block_until_ready(update(state))
    first_call_seconds = time.perf_counter() - start  # compile + one update
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(iterations):
        state, metrics = update(state)
    jax.block_until_ready(metrics)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    steps = NUM_ENVS * PPO_NUM_STEPS * iterations
    return {
        "compile_and_first_update_seconds": first_call_seconds,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "env_steps_per_second": steps / seconds,
        "env_steps_per_cpu_second": steps / cpu_seconds,
        "sgd_steps_per_update": cfg.num_epochs * cfg.num_minibatches,
        "minibatch_size": NUM_ENVS * PPO_NUM_STEPS // cfg.num_minibatches,
        "hidden_sizes": list(cfg.hidden_sizes),
    }


def one_suite(suite: str, steps: int, ppo_iterations: int) -> dict:
    from rlzoo import envs

    env_id = ENV_IDS[suite]
    env, params = envs.make(env_id)
    row = {"env_id": env_id, "random": random_actions(env, params, NUM_ENVS, steps)}
    if env.optimistic_reset_ratio is not None:
        # The same random actions with every env resetting inside its own step.
        per_env_env, _ = envs.make(env_id, optimistic_reset_ratio=None)
        per_env = random_actions(per_env_env, params, NUM_ENVS, steps)
        new = row["random"]
        row["optimistic_resets"] = {
            "reset_ratio": env.optimistic_reset_ratio,
            "fresh_starts_per_step": envs.VectorEnv(env, NUM_ENVS).num_starts,
            "random_per_env_reset": per_env,
            "speedup": new["env_steps_per_second"] / per_env["env_steps_per_second"],
            "speedup_per_cpu_second": new["env_steps_per_cpu_second"]
            / per_env["env_steps_per_cpu_second"],
        }
    row["ppo"] = ppo_training(env_id, env, params, ppo_iterations)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suites", default=",".join(ENV_IDS))
    parser.add_argument("--steps", type=int, default=64, help="random-action steps per env")
    parser.add_argument("--ppo_iterations", type=int, default=2, help="timed PPO updates")
    parser.add_argument(
        "--record_name",
        default="suites_speed",
        help="experiments/results/<record_name>.json; give a run of some suites its own",
    )
    parser.add_argument("--_suite", default="", help=argparse.SUPPRESS)
    parser.add_argument("--_out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._suite:  # the row goes to a file: it is longer than timed_process's output tail
        row = one_suite(args._suite, args.steps, args.ppo_iterations)
        Path(args._out).write_text(json.dumps(row))
        return

    rows = {}
    for suite in args.suites.split(","):
        flags = [f"--_suite={suite}", f"--steps={args.steps}"]
        flags.append(f"--ppo_iterations={args.ppo_iterations}")
        rows[suite] = row_in_fresh_process(__file__, flags, timeout=1800)
        print(suite, json.dumps(rows[suite]), flush=True)

    lines = [
        f"| suite | env | random-action steps/s ({NUM_ENVS} envs) | per CPU-second | "
        f"PPO training steps/s ({NUM_ENVS} envs x {PPO_NUM_STEPS}) | per CPU-second | "
        "PPO / random (CPU) | compile: random, PPO + 1st update (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for suite, r in rows.items():
        rnd, p = r["random"], r["ppo"]
        lines.append(
            f"| {suite} | `{r['env_id']}` | {rnd['env_steps_per_second']:,.0f} | "
            f"{rnd['env_steps_per_cpu_second']:,.0f} | {p['env_steps_per_second']:,.0f} | "
            f"{p['env_steps_per_cpu_second']:,.0f} | "
            f"{p['env_steps_per_cpu_second'] / rnd['env_steps_per_cpu_second']:.3f} | "
            f"{rnd['compile_seconds']:.0f}, {p['compile_and_first_update_seconds']:.0f} |"
        )
    for suite, r in rows.items():
        if "optimistic_resets" in r:
            opt = r["optimistic_resets"]
            old = opt["random_per_env_reset"]
            lines.append(
                f"\n{suite}: optimistic resets (reset ratio {opt['reset_ratio']}, "
                f"{opt['fresh_starts_per_step']} fresh start states per batch step) against "
                f"the per-env reset in every step: {old['env_steps_per_second']:,.0f} "
                f"random-action steps/s ({old['env_steps_per_cpu_second']:,.0f} per "
                f"CPU-second) before, {opt['speedup']:.1f}x faster "
                f"({opt['speedup_per_cpu_second']:.1f}x per CPU-second)."
            )
    table = "\n".join(lines) + (
        f"\n\nOne seed, 1024 envs, CPU only: 2 cores shared with other jobs, so "
        "wall-clock rates vary several-fold between runs; the per-CPU-second rates (process "
        "CPU time, all threads) are the steadier comparison. "
        f"Random: {args.steps} steps per env, second call timed. PPO: the suite's preset "
        f"with num_envs=1024, num_steps={PPO_NUM_STEPS}; {args.ppo_iterations} updates timed "
        "after the first (SGD included)."
    )
    record(
        args.record_name,
        {"num_envs": NUM_ENVS, "steps": args.steps, "rows": rows, "table": table},
    )
    print(table)


if __name__ == "__main__":
    main()
