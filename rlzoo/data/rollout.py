"""Roll a policy through an environment into a dataset of transitions, on the device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rlzoo.envs import Environment, EpisodeStatistics, VectorEnv


def collect_transitions(
    key: jax.Array,
    env: Environment,
    env_params: Any,
    act: Callable[[Any, jax.Array, jax.Array, bool], jax.Array],
    params: Any,
    num_envs: int,
    num_steps: int,
    deterministic: bool = False,
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """``num_envs x num_steps`` transitions of ``act(params, obs, key, deterministic)``.

    Returns ``(dataset, stats)``. The dataset's arrays are flattened env-major (each env's
    steps stay in order) and ``next_observations`` is where each transition really led
    (the final observation on an episode end, not the next episode's first).
    ``stats["episode_return"]`` is the mean return of the episodes that ended.
    """
    vector_env = VectorEnv(EpisodeStatistics(env), num_envs)
    reset_key, key = jax.random.split(key)
    obs, state = vector_env.reset(reset_key, env_params)

    def step(carry, _):
        obs, state, key = carry
        key, act_key, step_key = jax.random.split(key, 3)
        action = act(params, obs, act_key, deterministic)
        next_obs, state, reward, terminated, truncated, info = vector_env.step(
            step_key, state, action, env_params
        )
        transition = {
            "observations": obs,
            "actions": action,
            "rewards": reward.astype(jnp.float32),
            "terminated": terminated,
            "truncated": truncated,
            "next_observations": info["final_observation"],
        }
        episode = (info["episode_return"], info["episode_done"])
        return (next_obs, state, key), (transition, episode)

    _, (steps, (returns, done)) = jax.lax.scan(step, (obs, state, key), None, num_steps)
    dataset = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1).reshape((-1, *x.shape[2:])), steps)
    ended = done.sum()
    stats = {
        "episode_return": jnp.where(done, returns, 0.0).sum() / jnp.maximum(ended, 1),
        "episodes": ended,
    }
    return dataset, stats
