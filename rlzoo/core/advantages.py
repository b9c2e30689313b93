"""Advantage estimators."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float | jax.Array,
    gae_lambda: float | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation over a time-major rollout ``[T, ...]``.

    ``next_values[t]`` is the value of the state transition ``t`` really led to: with
    auto-resetting envs that is the value of ``info["final_observation"]``, not of the
    next observation (which already belongs to a new episode after a reset).

    * ``terminated``: the episode really ended, so nothing is bootstrapped.
    * ``truncated``: a time limit cut the episode; bootstrap from ``next_values``.
    Either one ends the episode, so the GAE trace does not flow across it.

    Returns ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    not_terminated = 1.0 - terminated.astype(values.dtype)
    continues = 1.0 - jnp.logical_or(terminated, truncated).astype(values.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values

    def backward(carry, inputs):
        delta, cont = inputs
        advantage = delta + gamma * gae_lambda * cont * carry
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(deltas[0]), (deltas, continues), reverse=True
    )
    return advantages, advantages + values
