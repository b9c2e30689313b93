"""DSRL and DPPO fine-tune a diffusion BC policy online, on gymnax Pendulum-v1.

    python experiments/diffusion_finetune.py --seeds=5 --dsrl_steps=6000 --dppo_steps=20000

1. A medium dataset (D4RL's recipe, as experiments/offline_suite.py): SAC trained in chunks
   until its deterministic return first reaches ``--medium_return``; that snapshot's
   stochastic policy collects ``--dataset_size`` transitions.
2. diffusion_bc on it (one base policy, seed 0).
3. DSRL and DPPO, ``--seeds`` seeds each, start from that base (its EMA weights and
   ``obs_scale`` as ``data``) and fine-tune online for their env-step budgets.
Reports the base's return (its own evaluation: DDIM from zero noise; and DPPO's evaluation
sampler on the untouched base, DPPO's iteration 0) and each method's final return: mean,
95% bootstrap interval and min over seeds, 32 episodes per seed and mode.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from common import record

from rlzoo import envs
from rlzoo.agents import diffusion_bc, dppo, dsrl, sac
from rlzoo.analysis.stats import mean_interval
from rlzoo.core import diffusion_base
from rlzoo.data import collect_transitions

ENV = "gymnax/Pendulum-v1"
BASE_SHAPE = dict(hidden_size=64, num_blocks=2, num_denoising_steps=5, time_dim=16)


def summary(returns) -> dict:
    x = np.asarray(returns, np.float64)
    ci = mean_interval(x)
    return {"per_seed": x.round(1).tolist(), "mean": float(x.mean()), "ci95": [ci.low, ci.high],
            "min": float(x.min())}  # fmt: skip


def medium_dataset(env, params, args):
    """SAC chunks until the first snapshot at the medium level; its stochastic rollouts."""
    cfg = sac.Config(
        total_steps=args.sac_steps, num_steps=200, learning_starts=1_000, buffer_size=20_000,
        hidden_sizes=(64, 64), batch_size=128, num_eval_episodes=16,
    )  # fmt: skip
    agent = sac.make_agent(cfg, env, params)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), cfg, None)
    update, evaluate = jax.jit(agent.update), jax.jit(agent.evaluate)
    for i in range(agent.num_iterations):
        state, _ = update(state, None)
        score = float(evaluate(state, jax.random.PRNGKey(i))[agent.score_key])
        print(f"  sac {(i + 1) * 200} steps: {score:.1f}", flush=True)
        if score >= args.medium_return:
            break
    else:
        raise SystemExit("SAC never reached --medium_return; raise --sac_steps")
    data, stats = jax.jit(
        lambda k: collect_transitions(
            k, env, params, agent.act, agent.policy_params(state), 8, args.dataset_size // 8
        )
    )(jax.random.PRNGKey(1))
    return jax.device_get(data), score, float(stats["episode_return"]), (i + 1) * 200


def evaluate_seeds(agent, state, data, seeds):
    keys = jax.random.split(jax.random.PRNGKey(99), seeds)
    scores = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, 0, None)))(state, keys, data)
    return {k: np.asarray(v) for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sac_steps", type=int, default=20_000)
    parser.add_argument("--medium_return", type=float, default=-700.0)
    parser.add_argument("--dataset_size", type=int, default=16_000)
    parser.add_argument("--bc_steps", type=int, default=4_000)
    parser.add_argument("--dsrl_steps", type=int, default=6_000)
    parser.add_argument("--dppo_steps", type=int, default=20_000)
    parser.add_argument("--methods", default="dsrl,dppo")
    parser.add_argument("--record_name", default="diffusion_finetune_pendulum")
    args = parser.parse_args()
    env, params = envs.make(ENV)
    timings, results = {}, {}

    # 1. MEDIUM DATASET
    start = time.perf_counter()
    data, sac_score, data_return, sac_steps = medium_dataset(env, params, args)
    timings["dataset"] = time.perf_counter() - start
    print(f"medium SAC snapshot {sac_score:.1f} after {sac_steps} steps; dataset episodes "
          f"{data_return:.1f}", flush=True)  # fmt: skip

    # 2. DIFFUSION BC BASE
    start = time.perf_counter()
    bc_cfg = diffusion_bc.Config(
        total_steps=args.bc_steps, updates_per_iteration=args.bc_steps, num_eval_episodes=32,
        **BASE_SHAPE,
    )  # fmt: skip
    bc_agent = diffusion_bc.make_agent(bc_cfg, env, params)
    bc_state, _ = jax.jit(diffusion_bc.make_train(bc_cfg, env, params))(
        jax.random.PRNGKey(0), bc_cfg, data
    )
    base_eval = jax.jit(bc_agent.evaluate)(bc_state, jax.random.PRNGKey(98), data)
    base_return = float(base_eval[bc_agent.score_key])
    timings["diffusion_bc"] = time.perf_counter() - start
    print(f"diffusion_bc base: deterministic {base_return:.1f}, stochastic "
          f"{float(base_eval['eval/stochastic_return']):.1f}", flush=True)  # fmt: skip
    base = jax.device_get(diffusion_base.base_data(bc_state.obs_scale, bc_state.ema_params))
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)

    # 3. ONLINE FINE-TUNING
    configs = {
        "dsrl": dsrl.Config(
            total_steps=args.dsrl_steps, num_envs=1, num_steps=200, utd_ratio=1.0,
            learning_starts=1_000, buffer_size=args.dsrl_steps, batch_size=128,
            latent_hidden_sizes=(64, 64), num_eval_episodes=32, **BASE_SHAPE,
        ),
        "dppo": dppo.Config(
            total_steps=args.dppo_steps, num_envs=10, num_steps=200, num_epochs=5,
            num_minibatches=4, ft_denoising_steps=5, value_hidden_sizes=(64, 64),
            noise_schedule="vp", activation="silu", num_eval_episodes=32, **BASE_SHAPE,
        ),
    }  # fmt: skip
    for name in args.methods.split(","):
        module, cfg = {"dsrl": dsrl, "dppo": dppo}[name], configs[name]
        agent = module.make_agent(cfg, env, params)
        start = time.perf_counter()
        init = jax.jit(jax.vmap(agent.init, in_axes=(0, None, None)))
        first = evaluate_seeds(agent, init(keys, cfg, base), base, args.seeds)
        train = jax.jit(jax.vmap(module.make_train(cfg, env, params), in_axes=(0, None, None)))
        state, _ = jax.block_until_ready(train(keys, cfg, base))
        final = evaluate_seeds(agent, state, base, args.seeds)
        timings[name] = time.perf_counter() - start
        results[name] = {
            "env_steps_per_seed": cfg.total_steps,
            "start_deterministic": summary(first["eval/deterministic_return"]),
            "final_deterministic": summary(final["eval/deterministic_return"]),
            "final_stochastic": summary(final["eval/stochastic_return"]),
        }
        f = results[name]["final_deterministic"]
        print(f"{name}: start {results[name]['start_deterministic']['mean']:.1f} -> final "
              f"{f['mean']:.1f} [{f['ci95'][0]:.1f}, {f['ci95'][1]:.1f}] min {f['min']:.1f} "
              f"after {cfg.total_steps} env steps ({timings[name]:.0f} s)", flush=True)  # fmt: skip

    lines = [
        "| method | env steps / seed | start return | final return, mean [95% CI] | min "
        "| margin over base |",
        "|---|---|---|---|---|---|",
        f"| diffusion_bc base (DDIM, zero noise) | 0 | {base_return:.1f} | - | - | - |",
    ]
    for name, r in results.items():
        f = r["final_deterministic"]
        lines.append(
            f"| {name} | {r['env_steps_per_seed']:,} | {r['start_deterministic']['mean']:.1f} | "
            f"{f['mean']:.1f} [{f['ci95'][0]:.1f}, {f['ci95'][1]:.1f}] | {f['min']:.1f} | "
            f"{f['mean'] - base_return:+.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    record(args.record_name, {
        "args": vars(args), "medium_sac_return": sac_score, "medium_sac_steps": sac_steps,
        "dataset_episode_return": data_return, "base_deterministic": base_return,
        "base_stochastic": float(base_eval["eval/stochastic_return"]), "results": results,
        "seconds": timings, "table": table,
    })  # fmt: skip


if __name__ == "__main__":
    main()
