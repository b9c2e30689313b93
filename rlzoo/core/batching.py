"""Minibatches: shuffled splits of an on-policy batch, and uniform samples of a dataset."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def shuffled_minibatches(key: jax.Array, batch: PyTree, num_minibatches: int) -> PyTree:
    """Permute the leading (sample) axis of every leaf and split it into minibatches.

    Every leaf ``[N, ...]`` becomes ``[num_minibatches, N // num_minibatches, ...]``; each
    sample lands in exactly one minibatch. ``N`` must divide by ``num_minibatches``.
    """
    size = jax.tree.leaves(batch)[0].shape[0]
    if size % num_minibatches:
        raise ValueError(f"{size} samples do not split into {num_minibatches} minibatches")
    order = jax.random.permutation(key, size)

    def split(x):
        return jnp.take(x, order, axis=0).reshape(
            (num_minibatches, size // num_minibatches, *x.shape[1:])
        )

    return jax.tree.map(split, batch)


def sample_minibatch(key: jax.Array, data: PyTree, batch_size: int) -> PyTree:
    """``batch_size`` samples drawn uniformly with replacement from a dataset pytree."""
    size = jax.tree.leaves(data)[0].shape[0]
    index = jax.random.randint(key, (batch_size,), 0, size)
    return jax.tree.map(lambda x: jnp.take(x, index, axis=0), data)
