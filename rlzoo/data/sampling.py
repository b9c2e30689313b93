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
    queries: jax.Array, keys: jax.Array, chunk_size: int = 256
) -> tuple[jax.Array, jax.Array]:
    """Index and squared distance of each query's nearest key (exact, Euclidean).

    ``queries [B, d]`` against ``keys [N, d]`` in two passes. The first scans chunks of
    ``chunk_size`` keys and keeps only each chunk's smallest distance per query; the second
    recomputes the distances inside each query's best chunk and takes the index there.
    Memory stays at ``B x chunk_size x (d + 1)`` whatever N is (a dataset of millions fits).
    Ties go to the lowest index.

    Why two passes: XLA on CPU fuses a matmul with a ``min`` over its output but not with an
    ``argmin`` or an elementwise term in between, so the one-pass search (distances, then a
    running argmin) is several times slower. Writing the distance as one matmul,
    ``[q, 1] . [-2k, |k|^2]`` (+ ``|q|^2`` afterwards, which does not change the argmin),
    keeps the first pass a bare matmul-min.
    """
    n, d = keys.shape
    chunk_size = min(chunk_size, n)
    num_chunks = -(-n // chunk_size)
    padded = jnp.zeros((num_chunks * chunk_size, d), keys.dtype).at[:n].set(keys)
    # Padding keys get an infinite norm, hence an infinite distance.
    key_norms = jnp.where(
        jnp.arange(num_chunks * chunk_size) < n, jnp.sum(jnp.square(padded), axis=1), jnp.inf
    )
    augmented_keys = jnp.concatenate([-2.0 * padded, key_norms[:, None]], axis=1)
    augmented_keys = augmented_keys.reshape((num_chunks, chunk_size, d + 1))
    augmented_queries = jnp.concatenate(
        [queries, jnp.ones((*queries.shape[:-1], 1), queries.dtype)], axis=1
    )

    def chunk_min(carry, block):
        return carry, jnp.min(augmented_queries @ block.T, axis=1)

    _, chunk_minima = jax.lax.scan(chunk_min, None, augmented_keys)  # [num_chunks, B]
    best_chunk = jnp.argmin(chunk_minima, axis=0)
    distance = jnp.einsum("bd,bcd->bc", augmented_queries, augmented_keys[best_chunk])
    index = best_chunk * chunk_size + jnp.argmin(distance, axis=1)
    distance = jnp.min(distance, axis=1) + jnp.sum(jnp.square(queries), axis=1)
    return index.astype(jnp.int32), jnp.maximum(distance, 0.0)
