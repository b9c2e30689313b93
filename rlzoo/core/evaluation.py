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
    """The env's own time limit (``env.max_episode_steps(env_params)``: every adapter reads
    its suite's), else :data:`DEFAULT_MAX_EPISODE_STEPS`. ``env_params`` must be concrete."""
    limit = env.max_episode_steps(env_params)
    return DEFAULT_MAX_EPISODE_STEPS if limit is None else int(limit)


def run_episodes(
    keys: list[jax.Array],
    env: Environment,
    env_params: Any,
    policies: list[Callable[[jax.Array, jax.Array], jax.Array]],
    num_episodes: int,
    max_steps: int,
) -> list[dict[str, jax.Array]]:
    """For each policy, play ``num_episodes`` episodes in parallel until each has ended once.

    ``policy(obs_batch, key) -> action_batch`` acts on all of its episodes at once; policy
    ``i`` draws only from ``keys[i]``. All policies step in one loop, so the loop runs as
    long as the longest episode rather than the sum over policies; each policy's numbers
    are those it would get alone (steps after an episode's first end are ignored). Returns
    per policy the per-episode ``return`` and ``length``.
    """
    batch_reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def start(key):
        reset_key, key = jax.random.split(key)
        obs, state = batch_reset(jax.random.split(reset_key, num_episodes), env_params)
        zeros = jnp.zeros(num_episodes)
        return key, obs, state, zeros.astype(bool), zeros, zeros.astype(jnp.int32)

    def advance(policy, group):
        key, obs, state, done, episode_return, length = group
        key, act_key, step_key = jax.random.split(key, 3)
        action = policy(obs, act_key)
        obs, state, reward, terminated, truncated, _ = step(
            jax.random.split(step_key, num_episodes), state, action, env_params
        )
        running = ~done
        episode_return = episode_return + jnp.where(running, reward, 0.0)
        length = length + running.astype(jnp.int32)
        return key, obs, state, done | terminated | truncated, episode_return, length

    def cond(carry):
        groups, t = carry
        all_done = jnp.all(jnp.stack([jnp.all(g[3]) for g in groups]))
        return jnp.logical_and(~all_done, t < max_steps)

    def body(carry):
        groups, t = carry
        return [advance(p, g) for p, g in zip(policies, groups, strict=True)], t + 1

    groups, _ = jax.lax.while_loop(cond, body, ([start(k) for k in keys], 0))
    return [{"return": g[4], "length": g[5]} for g in groups]


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
    key, deterministic_key = jax.random.split(key)
    _, stochastic_key = jax.random.split(key)
    modes = {"deterministic": True, "stochastic": False}
    played = run_episodes(
        [deterministic_key, stochastic_key],
        env,
        env_params,
        [lambda obs, k, d=d: act(params, obs, k, d) for d in modes.values()],
        num_episodes,
        max_steps,
    )
    results = {}
    for mode, episodes in zip(modes, played, strict=True):
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
