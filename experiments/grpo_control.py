"""GRPO on control vs PPO, on the same env-step budget, many seeds in one program each.

    python experiments/grpo_control.py [--num_seeds=8] [--cartpole_steps=500000] \
        [--pendulum_steps=1000000] [--brax_steps=1000000]

Envs: gymnax CartPole-v1 and Pendulum-v1, and Brax inverted_pendulum (1000-step episodes,
positional backend); a budget of 0 leaves an env out. Per env, each method trains
``--num_seeds`` seeds in one compiled program (``jit(vmap(make_train))``) and is then
evaluated by the shared evaluator (deterministic policy, 32 episodes per seed). PPO runs its
shipped config for the env
(``ppo.default_config``; on gymnax the classic-control preset these rows were made with,
4 envs at lr 1e-3, pinned); GRPO on control (``rlzoo.agents.grpo_control``) runs its defaults
(4 groups of 8 members, 4 epochs x 4 minibatches, lr 3e-3, symmetric clip, grpo advantages),
chosen from a handful of 2-seed trials on these two envs.

The budget is env steps *stepped*, the step unit of both agents. GRPO steps every member for
the whole episode limit and masks the steps after its first episode ends, so on CartPole it
learns from fewer real transitions than it steps; those are reported as ``valid`` env steps.
Wall times include compilation (one program per method and env) on a shared machine.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from common import CLASSIC_PRESET_BEFORE_2026_12_06, record

from rlzoo import envs
from rlzoo.agents import grpo_control, ppo
from rlzoo.analysis import stats
from rlzoo.core import hparams


def train_and_evaluate(module, env_id: str, budget: int, num_seeds: int, seed: int) -> dict:
    env, params = envs.make(env_id)
    config = module.default_config(env_id).replace(total_steps=budget)
    if module is ppo and env_id.startswith("gymnax/"):
        config = config.replace(**CLASSIC_PRESET_BEFORE_2026_12_06)
    agent = module.make_agent(config, env, params)
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    start = time.perf_counter()
    train = jax.jit(jax.vmap(module.make_train(config, env, params))).lower(keys).compile()
    compile_seconds = time.perf_counter() - start
    state, metrics = jax.block_until_ready(train(keys))
    wall = time.perf_counter() - start
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, 0, None)))
    eval_keys = jax.random.split(jax.random.PRNGKey(seed + 1000), num_seeds)
    scores = np.asarray(evaluate(state, eval_keys, None)[agent.score_key], np.float64)
    returns = np.asarray(metrics["rollout/episode_return"]).mean(0)  # mean over seeds
    points = np.unique(np.linspace(0, len(returns) - 1, 11).astype(int))
    result = {
        "env_steps_per_seed": agent.num_iterations * agent.steps_per_iteration,
        "iterations": agent.num_iterations,
        "final_return_per_seed": scores.round(2).tolist(),
        "mean": float(scores.mean()),
        "iqm": stats.aggregate_intervals(scores[:, None], threshold=None)["iqm"].to_dict(),
        "min": float(scores.min()),
        "wall_seconds_incl_compile": wall,
        "compile_seconds": compile_seconds,
        "training_return_curve": {
            "env_steps": [int((i + 1) * agent.steps_per_iteration) for i in points],
            "mean_over_seeds": returns[points].round(1).tolist(),
        },
        "config": hparams.to_dict(config),
    }
    if "rollout/valid_steps" in metrics:
        valid = np.asarray(metrics["rollout/valid_steps"]).sum(1)
        result["valid_env_steps_per_seed_mean"] = float(valid.mean())
    return result


def table(results: dict, num_seeds: int) -> str:
    lines = [
        f"| env | method | env steps / seed (valid) | final return mean | IQM [95% CI] | min "
        f"| wall incl. compile, {num_seeds} seeds (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for env_id, by_method in results.items():
        for method, r in by_method.items():
            steps = f"{r['env_steps_per_seed']:,}"
            if "valid_env_steps_per_seed_mean" in r:
                steps += f" ({r['valid_env_steps_per_seed_mean']:,.0f})"
            iqm = r["iqm"]
            lines.append(
                f"| {env_id} | {method} | {steps} | {r['mean']:.1f} | {iqm['estimate']:.1f} "
                f"[{iqm['low']:.1f}, {iqm['high']:.1f}] | {r['min']:.1f} | "
                f"{r['wall_seconds_incl_compile']:.0f} |"
            )
    return "\n".join(lines) + (
        "\n\nFinal return: deterministic policy, 32 evaluation episodes per seed. GRPO's "
        "valid steps are those inside the members' first episodes (the rest are stepped "
        "and masked)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num_seeds", type=int, default=8)
    parser.add_argument("--cartpole_steps", type=int, default=500_000)
    parser.add_argument("--pendulum_steps", type=int, default=1_000_000)
    parser.add_argument("--brax_steps", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    budgets = {
        "gymnax/CartPole-v1": args.cartpole_steps,
        "gymnax/Pendulum-v1": args.pendulum_steps,
        "brax/inverted_pendulum": args.brax_steps,
    }
    budgets = {env_id: steps for env_id, steps in budgets.items() if steps > 0}
    results: dict = {}
    for env_id, budget in budgets.items():
        results[env_id] = {}
        for name, module in (("grpo_control", grpo_control), ("ppo", ppo)):
            r = train_and_evaluate(module, env_id, budget, args.num_seeds, args.seed)
            results[env_id][name] = r
            print(
                f"{env_id} {name}: mean {r['mean']:.1f} IQM {r['iqm']['estimate']:.1f} "
                f"min {r['min']:.1f} in {r['wall_seconds_incl_compile']:.0f} s",
                flush=True,
            )
    text = table(results, args.num_seeds)
    print(text)
    record("grpo_control", {"args": vars(args), "results": results, "table": text})


if __name__ == "__main__":
    main()
