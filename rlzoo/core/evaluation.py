"""The shared evaluator: batched episodes of any agent's ``act``, run entirely on the device.

Agents supply ``act(params, obs, key, deterministic)``; :func:`evaluate_policy` plays the
episodes and returns the ``eval/`` metrics every episodic agent reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rlzoo.envs import Environment

Act = Callable[[Any, jax.Array, jax.Array, bool], jax.Array]

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


# The metrics :func:`evaluate_policy` returns, for agents to declare.
EVAL_METRICS = {
    "eval/deterministic_return": "mean episode return of the deterministic (mode) policy",
    "eval/deterministic_length": "mean episode length of the deterministic policy",
    "eval/stochastic_return": "mean episode return of the sampling policy",
    "eval/stochastic_length": "mean episode length of the sampling policy",
}


def evaluate_policy(
    act: Act,
    params: Any,
    key: jax.Array,
    env: Environment,
    env_params: Any,
    num_episodes: int,
    max_steps: int | None = None,
) -> dict[str, jax.Array]:
    """``num_episodes`` episodes each of the deterministic and the sampling policy.

    ``act(params, obs_batch, key, deterministic) -> action_batch``. Returns the
    :data:`EVAL_METRICS`. ``max_steps`` defaults to the env's own time limit.
    """
    max_steps = episode_limit(env, env_params) if max_steps is None else max_steps
    results = {}
    for mode, deterministic in (("deterministic", True), ("stochastic", False)):
        key, episode_key = jax.random.split(key)
        episodes = run_episodes(
            episode_key,
            env,
            env_params,
            lambda obs, act_key, d=deterministic: act(params, obs, act_key, d),
            num_episodes,
            max_steps,
        )
        results[f"eval/{mode}_return"] = episodes["return"].mean()
        results[f"eval/{mode}_length"] = episodes["length"].astype(jnp.float32).mean()
    return results


def episode_evaluator(
    act: Act,
    policy_params: Callable[[Any], Any],
    env: Environment,
    env_params: Any,
    num_episodes: int,
) -> Callable[[Any, jax.Array, Any], dict[str, jax.Array]]:
    """An agent's ``evaluate(state, key, data)``: :func:`evaluate_policy` on its policy."""
    max_steps = episode_limit(env, env_params)

    def evaluate(state: Any, key: jax.Array, data: Any = None) -> dict[str, jax.Array]:
        del data  # episodic evaluation reads only the policy
        params = policy_params(state)
        return evaluate_policy(act, params, key, env, env_params, num_episodes, max_steps)

    return evaluate
