"""Batched evaluation episodes, run entirely on the device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rlzoo.envs import Environment

# Safety cap for envs that declare no time limit; evaluation stops once every episode ends.
DEFAULT_MAX_EPISODE_STEPS = 100_000


def episode_limit(env: Environment, env_params: Any) -> int:
    """The env's own time limit (gymnax params or brax episode length), if it declares one."""
    limit = getattr(env_params, "max_steps_in_episode", None)
    while limit is None and env is not None:
        limit = getattr(env, "episode_length", None)
        env = getattr(env, "env", None)
    return int(limit) if limit is not None else DEFAULT_MAX_EPISODE_STEPS


def run_episodes(
    key: jax.Array,
    env: Environment,
    env_params: Any,
    policy: Callable[[jax.Array, jax.Array], jax.Array],
    num_episodes: int,
    max_steps: int,
) -> dict[str, jax.Array]:
    """Play ``num_episodes`` episodes in parallel until each has ended once.

    ``policy(obs_batch, key) -> action_batch`` acts on all episodes at once. Steps taken
    after an episode's first end are ignored; the loop stops as soon as all have ended.
    Returns per-episode ``return`` and ``length``.
    """
    reset_key, key = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_episodes), env_params
    )
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def cond(carry):
        *_, done, _, _, t = carry
        return jnp.logical_and(~jnp.all(done), t < max_steps)

    def body(carry):
        key, obs, state, done, episode_return, length, t = carry
        key, act_key, step_key = jax.random.split(key, 3)
        action = policy(obs, act_key)
        obs, state, reward, terminated, truncated, _ = step(
            jax.random.split(step_key, num_episodes), state, action, env_params
        )
        running = ~done
        episode_return = episode_return + jnp.where(running, reward, 0.0)
        length = length + running.astype(jnp.int32)
        done = done | terminated | truncated
        return key, obs, state, done, episode_return, length, t + 1

    zeros = jnp.zeros(num_episodes)
    carry = (key, obs, state, zeros.astype(bool), zeros, zeros.astype(jnp.int32), 0)
    *_, episode_return, length, _ = jax.lax.while_loop(cond, body, carry)
    return {"return": episode_return, "length": length}
