"""Masked reductions (padding and token masks) and polyak averaging."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def masked_sum(x: jax.Array, mask: jax.Array, axis: Any = None) -> jax.Array:
    """Sum of ``x`` where ``mask`` is true (``mask`` broadcasts against ``x``)."""
    return jnp.sum(jnp.where(mask, x, 0.0), axis=axis)


def masked_mean(x: jax.Array, mask: jax.Array, axis: Any = None) -> jax.Array:
    """Mean of ``x`` over the entries where ``mask`` is true; 0 where nothing is masked in."""
    mask = jnp.broadcast_to(mask, x.shape)
    count = jnp.sum(mask, axis=axis)
    return masked_sum(x, mask, axis) / jnp.maximum(count, 1)


def standardize(x: jax.Array, mask: jax.Array | None = None, eps: float = 1e-8) -> jax.Array:
    """``(x - mean) / (std + eps)`` over the batch (over the masked-in entries if given).

    Batch standardisation, e.g. of advantages; for running statistics across batches see
    ``rlzoo.envs.normalize``.
    """
    if mask is None:
        return (x - x.mean()) / (x.std() + eps)
    mean = masked_mean(x, mask)
    std = jnp.sqrt(masked_mean(jnp.square(x - mean), mask))
    return jnp.where(mask, (x - mean) / (std + eps), 0.0)


def polyak(target: Any, online: Any, tau: float | jax.Array) -> Any:
    """``(1 - tau) * target + tau * online`` leaf by leaf (soft target-network update)."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)
