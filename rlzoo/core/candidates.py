"""Acting by sampling ``N`` candidate actions per state and choosing among them by a critic.

Diffusion-QL and IDQL both act this way: a generative policy proposes ``N`` actions per state
in one batched call (``DiffusionPolicy.act(..., num_candidates=N)``), a critic scores them,
and one is kept, either the best (``argmax``) or one drawn with probabilities proportional to
``exp(score)`` (Diffusion-QL's ``softmax(Q)``; IDQL's expectile weights passed as log-weights).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def broadcast_states(obs: jax.Array, candidates: jax.Array) -> jax.Array:
    """``obs [..., D]`` repeated for each of the ``N`` candidates ``[..., N, A]``."""
    return jnp.broadcast_to(obs[..., None, :], (*candidates.shape[:-1], obs.shape[-1]))


def candidate_q(
    critic: Any, critic_params: Any, obs: jax.Array, candidates: jax.Array
) -> jax.Array:
    """``min_i Q_i(s, a_n)`` of every candidate: ``[..., N]`` (the critics stacked on axis 0)."""
    return critic.apply(critic_params, broadcast_states(obs, candidates), candidates).min(axis=0)


def choose_candidate(
    key: jax.Array, candidates: jax.Array, scores: jax.Array, greedy: bool
) -> jax.Array:
    """One action per state from ``candidates [..., N, A]``: the highest ``scores [..., N]``
    if ``greedy``, else index ``n`` drawn with probability ``softmax(scores)_n``."""
    index = jnp.argmax(scores, -1) if greedy else jax.random.categorical(key, scores, -1)
    return jnp.take_along_axis(candidates, index[..., None, None], axis=-2)[..., 0, :]


def scored_candidates(
    policy: Any,
    critic: Any,
    denoiser_params: Any,
    critic_params: Any,
    obs: jax.Array,
    key: jax.Array,
    num_candidates: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``num_candidates`` samples per state from a ``DiffusionPolicy`` (its stochastic path,
    one batched call) and their ``min_i Q_i``: ``(candidates, q, a key for choosing)``."""
    sample_key, choose_key = jax.random.split(key)
    candidates = policy.act(denoiser_params, obs, sample_key, False, num_candidates)
    return candidates, candidate_q(critic, critic_params, obs, candidates), choose_key
