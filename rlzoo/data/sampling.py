"""A dataset on the device: minibatches (uniform, or weighted by trajectory as in Hong et
al., 2023), episode returns, and the state normalisation offline agents share.

"Harnessing Mixed Offline RL Datasets via Trajectory Weighting" samples each transition with
probability ``softmax(w / temperature)`` over all transitions, where ``w`` is its episode's
return (``"return"``, their RW) or the return minus a linear fit of the return on the
episode's first observation (``"advantage"``, their AW), min-max normalised over episodes
to [0, 1]; temperature 0.1 is theirs. An episode's total probability thus also grows with
its length, as in their code.

Episodes are read from the flat arrays: a transition with ``terminated | truncated`` ends
one, and a trailing run without an end is an episode of its own. Everything here is pure
and jittable; :func:`sampling_cdf` is O(N) and is meant to run once per iteration (or
once), :func:`sample_batch` is O(batch log N) per gradient step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

SAMPLERS = ("uniform", "return", "advantage")


def episode_ids(terminated: jax.Array, truncated: jax.Array) -> jax.Array:
    """Index of the episode each transition belongs to (0, 1, ...; ends belong to theirs)."""
    ends = (jnp.asarray(terminated) | jnp.asarray(truncated)).astype(jnp.int32)
    return jnp.cumsum(ends) - ends


def episode_returns(data: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(ids, per-episode return, per-episode valid mask)``, all padded to length N."""
    ids = episode_ids(data["terminated"], data["truncated"])
    n = ids.shape[0]
    returns = jax.ops.segment_sum(data["rewards"].astype(jnp.float32), ids, num_segments=n)
    valid = jnp.arange(n) <= ids[-1]
    return ids, returns, valid


def _min_max(x: jax.Array, valid: jax.Array) -> jax.Array:
    low = jnp.min(jnp.where(valid, x, jnp.inf))
    high = jnp.max(jnp.where(valid, x, -jnp.inf))
    return jnp.where(high > low, (x - low) / jnp.where(high > low, high - low, 1.0), 0.0)


def start_state_baseline(
    data: dict[str, jax.Array], ids: jax.Array, returns: jax.Array, valid: jax.Array
) -> jax.Array:
    """Least-squares linear fit of episode return on the episode's first observation."""
    n = ids.shape[0]
    first = jnp.concatenate([jnp.ones((1,), bool), ids[1:] != ids[:-1]])
    flat_obs = data["observations"].reshape((n, -1)).astype(jnp.float32)
    # Row e of ``starts`` is episode e's first observation (zeros for padding rows).
    starts = jax.ops.segment_sum(jnp.where(first[:, None], flat_obs, 0.0), ids, num_segments=n)
    features = jnp.concatenate([starts, jnp.ones((n, 1))], axis=1) * valid[:, None]
    gram = features.T @ features + 1e-6 * jnp.eye(features.shape[1])
    coef = jnp.linalg.solve(gram, features.T @ (returns * valid))
    return features @ coef


def sampling_cdf(
    data: dict[str, jax.Array], sampler: str, temperature: float | jax.Array = 0.1
) -> jax.Array | None:
    """The cumulative sampling distribution over transitions, or None for uniform."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; one of {SAMPLERS}")
    if sampler == "uniform":
        return None
    ids, returns, valid = episode_returns(data)
    score = returns
    if sampler == "advantage":
        score = returns - start_state_baseline(data, ids, returns, valid)
    score = _min_max(score, valid)
    logits = score[ids] / temperature
    probs = jax.nn.softmax(logits)
    return jnp.cumsum(probs)


def sample_batch(
    key: jax.Array, data: dict[str, Any], batch_size: int, cdf: jax.Array | None = None
) -> dict[str, Any]:
    """``batch_size`` transitions with replacement: uniform, or by inverse CDF."""
    size = jax.tree.leaves(data)[0].shape[0]
    if cdf is None:
        index = jax.random.randint(key, (batch_size,), 0, size)
    else:
        u = jax.random.uniform(key, (batch_size,)) * cdf[-1]
        index = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), size - 1)
    return jax.tree.map(lambda x: jnp.take(x, index, axis=0), data)


@struct.dataclass
class ObsScale:
    """``(s - mean) / std`` with the dataset's mean and ``std + 1e-3`` (identity: 0 and 1)."""

    mean: jax.Array
    std: jax.Array

    def __call__(self, obs: jax.Array) -> jax.Array:
        return (obs - self.mean) / self.std


def dataset_scale(observations: jax.Array, eps: float = 1e-3) -> ObsScale:
    """TD3+BC's state normalisation: the dataset's mean and population std + ``eps``."""
    obs = observations.astype(jnp.float32)
    return ObsScale(obs.mean(axis=0), obs.std(axis=0) + eps)


def nearest_neighbour(
    queries: jax.Array, keys: jax.Array, chunk_size: int = 4096
) -> tuple[jax.Array, jax.Array]:
    """Index and squared distance of each query's nearest key (exact, Euclidean).

    ``queries [B, d]`` against ``keys [N, d]``, in chunks of ``chunk_size`` keys so that
    memory stays at ``B x chunk_size`` whatever N is (a dataset of millions fits). Ties go
    to the lowest index.
    """
    n, d = keys.shape
    chunk_size = min(chunk_size, n)
    num_chunks = -(-n // chunk_size)
    padded = jnp.zeros((num_chunks * chunk_size, d), keys.dtype).at[:n].set(keys)
    valid = jnp.arange(num_chunks * chunk_size) < n
    query_norms = jnp.sum(jnp.square(queries), axis=1, keepdims=True)

    def scan_chunk(carry, chunk):
        best_distance, best_index = carry
        block, block_valid, offset = chunk
        distance = query_norms - 2.0 * queries @ block.T + jnp.sum(jnp.square(block), axis=1)
        distance = jnp.where(block_valid, distance, jnp.inf)
        index = jnp.argmin(distance, axis=1)
        value = jnp.take_along_axis(distance, index[:, None], axis=1)[:, 0]
        better = value < best_distance
        return (
            jnp.where(better, value, best_distance),
            jnp.where(better, index + offset, best_index),
        ), None

    chunks = (
        padded.reshape((num_chunks, chunk_size, d)),
        valid.reshape((num_chunks, chunk_size)),
        jnp.arange(num_chunks) * chunk_size,
    )
    start = (jnp.full((queries.shape[0],), jnp.inf), jnp.zeros((queries.shape[0],), jnp.int32))
    (distance, index), _ = jax.lax.scan(scan_chunk, start, chunks)
    return index, jnp.maximum(distance, 0.0)
