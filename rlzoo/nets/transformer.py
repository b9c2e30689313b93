"""A small causal transformer (pre-LayerNorm, learned positions) with a key-value cache.

    model = Transformer(vocab_size=16, max_length=32)
    params = model.init(key, jnp.zeros((1, 8), jnp.int32))
    logits = model.apply(params, tokens)                        # [B, T, V], full recompute
    completions, log_probs = sample(model, params, prompts, key, num_tokens=8)

:func:`sample` fills the cache with the prompt in one call, then writes one token per step
of a ``lax.scan``: each step attends to the cached keys and values instead of recomputing
the prefix. Tokens after an ``eos`` token are ``pad`` and carry log-probability 0.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Cache = Any  # per layer: (keys [B, L, H, Dh], values [B, L, H, Dh])


class SelfAttention(nn.Module):
    num_heads: int
    d_model: int

    @nn.compact
    def __call__(self, x, cache=None, position=None):
        """``x [B, T, D]``; with ``cache`` the tokens sit at ``position .. position + T - 1``."""
        b, t, _ = x.shape
        head = self.d_model // self.num_heads
        qkv = nn.Dense(3 * self.d_model, name="qkv")(x).reshape(b, t, 3, self.num_heads, head)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if cache is None:
            keys, values = k, v
            query_pos, key_pos = jnp.arange(t), jnp.arange(t)
        else:
            cached_k, cached_v = cache
            keys = jax.lax.dynamic_update_slice(cached_k, k, (0, position, 0, 0))
            values = jax.lax.dynamic_update_slice(cached_v, v, (0, position, 0, 0))
            cache = (keys, values)
            query_pos, key_pos = position + jnp.arange(t), jnp.arange(keys.shape[1])
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, keys) / jnp.sqrt(head).astype(x.dtype)
        causal = key_pos[None, :] <= query_pos[:, None]
        scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)
        mixed = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), values)
        return nn.Dense(self.d_model, name="out")(mixed.reshape(b, t, self.d_model)), cache


class Block(nn.Module):
    num_heads: int
    d_model: int
    mlp_ratio: int = 4

    @nn.compact
    def __call__(self, x, cache=None, position=None):
        attended, cache = SelfAttention(self.num_heads, self.d_model, name="attention")(
            nn.LayerNorm(name="ln_attention")(x), cache, position
        )
        x = x + attended
        h = nn.Dense(self.mlp_ratio * self.d_model, name="mlp_in")(nn.LayerNorm(name="ln_mlp")(x))
        return x + nn.Dense(self.d_model, name="mlp_out")(nn.gelu(h)), cache


class Transformer(nn.Module):
    """Decoder-only transformer over ``vocab_size`` tokens, at most ``max_length`` long."""

    vocab_size: int
    max_length: int
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4

    def setup(self):
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} must divide by num_heads {self.num_heads}")
        self.embed = nn.Embed(self.vocab_size, self.d_model)
        self.positions = self.param(
            "positions", nn.initializers.normal(0.02), (self.max_length, self.d_model)
        )
        self.blocks = [Block(self.num_heads, self.d_model) for _ in range(self.num_layers)]
        self.ln_final = nn.LayerNorm()
        self.head = nn.Dense(self.vocab_size)

    def __call__(self, tokens, cache=None, position=0):
        """Logits ``[B, T, V]``; with ``cache`` also returns the updated cache."""
        t = tokens.shape[1]
        if cache is None and t > self.max_length:
            raise ValueError(f"{t} tokens exceed the model context of {self.max_length}")
        pos = jax.lax.dynamic_slice_in_dim(self.positions, position, t)
        x = self.embed(tokens) + pos[None]
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, None if cache is None else cache[i], position)
            new_cache.append(layer_cache)
        logits = self.head(self.ln_final(x))
        return logits if cache is None else (logits, tuple(new_cache))

    def empty_cache(self, batch_size: int, dtype=jnp.float32) -> Cache:
        shape = (batch_size, self.max_length, self.num_heads, self.d_model // self.num_heads)
        return tuple(
            (jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(self.num_layers)
        )


def check_context(model: Transformer, prompt_length: int, num_tokens: int) -> None:
    if prompt_length + num_tokens > model.max_length:
        raise ValueError(
            f"prompts of {prompt_length} tokens plus {num_tokens} completion tokens exceed the "
            f"model context of {model.max_length}; raise max_length or shorten the task."
        )


def sample(
    model: Transformer,
    params: Any,
    prompts: jax.Array,
    key: jax.Array,
    num_tokens: int,
    temperature: float | jax.Array = 1.0,
    eos: int = 3,
    pad: int = 0,
    greedy: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """Complete ``prompts [B, P]`` with ``num_tokens`` tokens, with the KV cache.

    Returns ``(completions [B, N], log_probs [B, N])``: the log-probability of each token
    under ``softmax(logits / temperature)`` (0 after ``eos``). ``greedy`` takes the argmax.
    """
    b, p = prompts.shape
    check_context(model, p, num_tokens)
    logits, cache = model.apply(params, prompts, model.empty_cache(b), 0)

    def pick(logits, key, finished):
        scaled = jax.nn.log_softmax(logits / temperature, axis=-1)
        token = jnp.argmax(scaled, -1) if greedy else jax.random.categorical(key, scaled)
        log_prob = jnp.take_along_axis(scaled, token[:, None], axis=-1)[:, 0]
        token = jnp.where(finished, pad, token)
        return token, jnp.where(finished, 0.0, log_prob), finished | (token == eos)

    def step(carry, inputs):
        logits, cache, finished = carry
        key, position = inputs
        token, log_prob, done = pick(logits, key, finished)
        next_logits, cache = model.apply(params, token[:, None], cache, position)
        return (next_logits[:, 0], cache, done), (token, log_prob)

    keys = jax.random.split(key, num_tokens)
    positions = p + jnp.arange(num_tokens)
    carry = (logits[:, -1], cache, jnp.zeros((b,), bool))
    _, (tokens, log_probs) = jax.lax.scan(step, carry, (keys, positions))
    return tokens.T, log_probs.T


def sample_without_cache(
    model, params, prompts, key, num_tokens, temperature=1.0, eos=3, pad=0, greedy=False
):
    """The same sampler recomputing the whole prefix at every step (a reference and a
    baseline for the cache's speed-up). Same keys give the same tokens as :func:`sample`."""
    b, p = prompts.shape
    check_context(model, p, num_tokens)
    buffer = jnp.concatenate([prompts, jnp.full((b, num_tokens), pad, prompts.dtype)], axis=1)

    def step(carry, inputs):
        buffer, finished = carry
        key, position = inputs
        logits = model.apply(params, buffer)
        last = jax.lax.dynamic_index_in_dim(logits, position - 1, axis=1, keepdims=False)
        scaled = jax.nn.log_softmax(last / temperature, axis=-1)
        token = jnp.argmax(scaled, -1) if greedy else jax.random.categorical(key, scaled)
        log_prob = jnp.take_along_axis(scaled, token[:, None], axis=-1)[:, 0]
        token = jnp.where(finished, pad, token)
        buffer = jax.lax.dynamic_update_slice(
            buffer, token[:, None].astype(buffer.dtype), (0, position)
        )
        return (buffer, finished | (token == eos)), (token, jnp.where(finished, 0.0, log_prob))

    keys = jax.random.split(key, num_tokens)
    positions = p + jnp.arange(num_tokens)
    _, (tokens, log_probs) = jax.lax.scan(step, (buffer, jnp.zeros((b,), bool)), (keys, positions))
    return tokens.T, log_probs.T


def completion_log_probs(
    model: Transformer,
    params: Any,
    prompts: jax.Array,
    completions: jax.Array,
    temperature: float | jax.Array = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """One full forward pass: ``(log_probs [B, N], entropy [B, N])`` of each completion token
    under ``softmax(logits / temperature)``, with gradients (training uses this)."""
    check_context(model, prompts.shape[1], completions.shape[1])
    tokens = jnp.concatenate([prompts, completions.astype(prompts.dtype)], axis=1)
    logits = model.apply(params, tokens[:, :-1])[:, prompts.shape[1] - 1 :]
    scaled = jax.nn.log_softmax(logits / temperature, axis=-1)
    log_probs = jnp.take_along_axis(scaled, completions[..., None], axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(scaled) * scaled, axis=-1)
    return log_probs, entropy
