"""Policy-gradient surrogates and value losses shared by the PPO family."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def clipped_surrogate(
    log_ratio: jax.Array,
    advantages: jax.Array,
    clip_low: float | jax.Array,
    clip_high: float | jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Per-sample PPO clipped surrogate loss (to minimise) and whether the sample clipped.

    ``ratio`` is clipped to ``[1 - clip_low, 1 + clip_high]``; ``clip_high`` defaults to
    ``clip_low`` (the symmetric rule of PPO). Asymmetric rules (clip-higher) pass both.
    """
    clip_high = clip_low if clip_high is None else clip_high
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantages
    loss = -jnp.minimum(unclipped, clipped)
    was_clipped = (ratio < 1.0 - clip_low) | (ratio > 1.0 + clip_high)
    return loss, was_clipped


def value_loss(
    values: jax.Array,
    old_values: jax.Array,
    returns: jax.Array,
    clip_eps: float | jax.Array | None = None,
) -> jax.Array:
    """Per-sample squared value error, ``0.5 * (v - R)^2``; optionally PPO value clipping."""
    loss = jnp.square(values - returns)
    if clip_eps is not None:
        clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        loss = jnp.maximum(loss, jnp.square(clipped - returns))
    return 0.5 * loss


def approx_kl(log_ratio: jax.Array) -> jax.Array:
    """Low-variance estimator of KL(old || new): ``E[(r - 1) - log r]``."""
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)
