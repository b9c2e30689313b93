"""Held-out evaluation of a token policy: pass@1, pass@k and greedy accuracy.

Shared by the agents that write completions (``sft``, ``grpo``). Prompts come from the
task's held-out ``eval`` split; every metric is a mean over prompts.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlzoo.envs.tokens import EOS, PAD, TokenTask, completion_lengths
from rlzoo.nets.transformer import Transformer, sample

TOKEN_EVAL_METRICS = {
    "eval/pass@1": "share of sampled held-out completions that are exactly right",
    "eval/pass@k": "share of held-out prompts with at least one right completion among k",
    "eval/greedy_accuracy": "share of held-out prompts whose greedy completion is right",
    "eval/response_length": "mean sampled completion length in tokens (EOS included)",
}


def make_token_model(config: Any, task: TokenTask) -> Transformer:
    """The transformer the token agents share: ``config.d_model``, ``num_layers`` and
    ``num_heads`` over the task's vocabulary and context (same fields, same parameters)."""
    return Transformer(
        vocab_size=task.vocab_size,
        max_length=task.prompt_length + task.completion_length,
        d_model=config.d_model,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
    )


def pass_at_k(solved: jax.Array, k: int) -> jax.Array:
    """Unbiased pass@k of ``solved [num_prompts, n]`` (Chen et al. 2021), mean over prompts.

    ``1 - C(n - c, k) / C(n, k)`` with ``c`` right out of ``n`` samples.
    """
    n = solved.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n = {n} samples per prompt")
    c = solved.sum(axis=1)
    # C(n - c, k) / C(n, k) = prod_{i = n - k + 1}^{n} (1 - c / i), 0 when n - c < k.
    i = jnp.arange(n - k + 1, n + 1, dtype=jnp.float32)
    miss = jnp.prod(1.0 - c[:, None] / i[None, :], axis=1)
    return jnp.mean(jnp.where(n - c < k, 1.0, 1.0 - miss))


def evaluate_heldout(
    model: Transformer,
    params: Any,
    task: TokenTask,
    key: jax.Array,
    num_prompts: int,
    k: int,
    temperature: float | jax.Array = 1.0,
) -> dict[str, jax.Array]:
    """``TOKEN_EVAL_METRICS`` on ``num_prompts`` held-out prompts, ``k`` samples each."""
    prompt_key, sample_key = jax.random.split(key)
    prompts = task.prompts(prompt_key, num_prompts, "eval")
    repeated = jnp.repeat(prompts, k, axis=0)
    n = task.completion_length
    completions, _ = sample(model, params, repeated, sample_key, n, temperature, EOS, PAD)
    solved = task.solved(repeated, completions).reshape(num_prompts, k)
    greedy, _ = sample(model, params, prompts, sample_key, n, 1.0, EOS, PAD, greedy=True)
    return {
        "eval/pass@1": solved.mean(),
        "eval/pass@k": pass_at_k(solved, k),
        "eval/greedy_accuracy": task.solved(prompts, greedy).mean(),
        "eval/response_length": completion_lengths(completions).mean().astype(jnp.float32),
    }


def next_token(model: Transformer, params: Any, obs: jax.Array, prompt_length: int):
    """Logits of the next token for step-interface observations ``[..., L]`` (the prompt,
    then the completion so far, then ``PAD``)."""
    flat = obs.reshape(-1, obs.shape[-1])
    written = jnp.sum(flat[:, prompt_length:] != PAD, axis=-1)
    logits = model.apply(params, flat)
    last = jnp.take_along_axis(logits, (prompt_length + written - 1)[:, None, None], axis=1)
    return last[:, 0].reshape(*obs.shape[:-1], -1)
