"""Throughput: cached vs uncached generation, and whole GRPO iterations for 1 and 8 seeds.

* Generation: ``--batch`` prompts of 8 tokens completed with 64 tokens by the default-size
  transformer (d_model 64, 2 layers), with the key-value cache (``nets.transformer.sample``)
  and by recomputing the prefix at every step (``sample_without_cache``); tokens per second.
  Target: the cache at least 5x faster at length 64.
* GRPO: one jitted iteration (sample, score, advantages, 2 epochs x 2 minibatches) on
  ``tokens/reverse-8`` with the default config (16 prompts x 8 completions), for 1 seed
  and for 8 seeds vmapped in one program; completions and completion tokens per second.

Each timing is the best of ``--repeats`` runs after one compile-and-warm-up call.

    python experiments/grpo_speed.py [--repeats=5]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from common import record

from rlzoo import envs
from rlzoo.agents import grpo
from rlzoo.nets.transformer import Transformer, sample, sample_without_cache


def best_time(fn, args, repeats):
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def generation(batch, repeats):
    prompt_length, num_tokens = 8, 64
    model = Transformer(vocab_size=16, max_length=prompt_length + num_tokens)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, model.max_length), jnp.int32))
    prompts = jax.random.randint(jax.random.PRNGKey(1), (batch, prompt_length), 4, 16)
    key = jax.random.PRNGKey(2)
    out = {}
    for name, sampler in (("cache", sample), ("no_cache", sample_without_cache)):
        fn = jax.jit(lambda p, x, k, s=sampler: s(model, p, x, k, num_tokens, 1.0, eos=-1))
        seconds = best_time(fn, (params, prompts, key), repeats)
        out[name] = {"seconds": seconds, "tokens_per_second": batch * num_tokens / seconds}
    out["speedup"] = out["cache"]["tokens_per_second"] / out["no_cache"]["tokens_per_second"]
    return out


def grpo_iterations(repeats):
    env, params = envs.make("tokens/reverse-8")
    cfg = grpo.Config()
    agent = grpo.make_agent(cfg, env, params)
    per_iteration = cfg.num_prompts * cfg.group_size
    tokens = per_iteration * env.task.completion_length
    out = {}
    for seeds in (1, 8):
        keys = jax.random.split(jax.random.PRNGKey(0), seeds)
        state = jax.jit(jax.vmap(agent.init, in_axes=(0, None, None)))(keys, cfg, None)
        update = jax.jit(jax.vmap(agent.update, in_axes=(0, None)))
        seconds = best_time(update, (state, None), repeats)
        out[f"{seeds}_seeds"] = {
            "seconds_per_iteration": seconds,
            "completions_per_second": seeds * per_iteration / seconds,
            "completion_tokens_per_second": seeds * tokens / seconds,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    gen = generation(args.batch, args.repeats)
    print("generation", gen)
    it = grpo_iterations(args.repeats)
    print("grpo", it)
    record("grpo_speed", {"args": vars(args), "generation": gen, "grpo_iteration": it})


if __name__ == "__main__":
    main()
