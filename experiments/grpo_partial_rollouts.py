"""Partial rollouts on and off in GRPO, on a token task, from one SFT base.

The base policy (noisy demonstrations, as in ``grpo_clipping.py``) is the start and KL
reference of every run. Each setting trains ``--num_seeds`` seeds in one program
(``jit(vmap(...))``) for the same number of iterations (so the same number of SGD steps):
``partial_rollout_tokens = 0`` samples whole completions every iteration; ``K > 0``
writes at most ``K`` new tokens per completion per iteration, carries unfinished ones to the
next iteration (continued by the newer policy) and trains only on the groups that finished.

Recorded per setting: held-out pass@1 at the end (mean and a 95% bootstrap interval over
seeds), the share of groups that entered the loss per iteration, the share of loss tokens
sampled by an earlier policy, the mean importance ratio and KL(behaviour || pi), completion
tokens generated, and wall time.

    python experiments/grpo_partial_rollouts.py [--task=tokens/reverse-3] [--num_seeds=4]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from common import record
from grpo_clipping import bootstrap_mean, train_base

from rlzoo import envs
from rlzoo.agents import grpo

# Flags and their defaults; the SFT base and network ones as in grpo_clipping.py.
DEFAULTS = dict(
    task="tokens/reverse-3", vocab=4, extra_length=2,
    budgets="0,2",  # partial_rollout_tokens values, comma-separated
    num_seeds=4, iterations=40, num_prompts=8, group_size=8, num_epochs=2, num_minibatches=2,
    policy_loss="bapo", learning_rate=1e-3, sft_steps=300, demo_noise=0.3,
    d_model=32, num_layers=1, num_heads=2, eval_prompts=64, seed=0,
)  # fmt: skip


def run_setting(budget, env, params, data, args):
    fields = ("policy_loss", "num_prompts", "group_size", "num_epochs", "num_minibatches",
              "learning_rate", "d_model", "num_layers", "num_heads")  # fmt: skip
    cfg = grpo.Config(
        partial_rollout_tokens=budget,
        total_steps=args.iterations * args.num_prompts * args.group_size,
        num_eval_episodes=args.eval_prompts,
        **{name: getattr(args, name) for name in fields},
    )
    agent = grpo.make_agent(cfg, env, params)
    train = jax.jit(jax.vmap(grpo.make_train(cfg, env, params), in_axes=(0, None, None)))
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, None, None)))
    keys = jax.random.split(jax.random.PRNGKey(args.seed + 1), args.num_seeds)
    start = time.perf_counter()
    state, metrics = jax.block_until_ready(train(keys, cfg, data))
    seconds = time.perf_counter() - start
    evaluation = jax.device_get(evaluate(state, jax.random.PRNGKey(777), data))
    metrics = jax.device_get(metrics)  # [seeds, iterations]
    n = env.task.completion_length
    per_iteration = min(budget, n) if budget else n  # at most, per slot
    return {
        "heldout_pass@1": bootstrap_mean(evaluation["eval/pass@1"]),
        "final_pass@1_per_seed": np.round(evaluation["eval/pass@1"], 4).tolist(),
        "complete_groups": float(metrics.get("rollout/complete_groups", np.ones(1)).mean()),
        "carried_tokens": float(metrics.get("rollout/carried_tokens", np.zeros(1)).mean()),
        "ratio": float(metrics["policy/ratio"].mean()),
        "approx_kl": float(metrics["policy/approx_kl"].mean()),
        "max_tokens_generated": args.iterations * cfg.num_prompts * cfg.group_size * per_iteration,
        "seconds_with_compile": seconds,
    }


def table(results, num_seeds):
    lines = [
        f"| partial_rollout_tokens | held-out pass@1 ({num_seeds} seeds, 95% CI) | groups in "
        "loss / iteration | loss tokens from older policies | ratio | KL(b, pi) | "
        "tokens generated (at most) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for budget, res in results.items():
        mean, low, high = res["heldout_pass@1"]
        lines.append(
            f"| {budget} | {mean:.3f} [{low:.3f}, {high:.3f}] | {res['complete_groups']:.2f} | "
            f"{res['carried_tokens']:.2f} | {res['ratio']:.4f} | {res['approx_kl']:.5f} | "
            f"{res['max_tokens_generated']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name, default in DEFAULTS.items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    args = parser.parse_args()

    env, params = envs.make(args.task, vocab=args.vocab, extra_length=args.extra_length)
    data, base_eval = train_base(env, params, args)
    print("base", base_eval)
    results = {}
    for budget in (int(b) for b in args.budgets.split(",")):
        results[budget] = run_setting(budget, env, params, data, args)
        print(budget, results[budget])
    text = table(results, args.num_seeds)
    print(text)
    name = f"grpo_partial_rollouts_{args.task.split('/', 1)[1]}"
    record(name, {"args": vars(args), "base": base_eval, "results": results, "table": text})


if __name__ == "__main__":
    main()
