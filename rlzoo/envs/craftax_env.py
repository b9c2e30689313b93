"""Adapter for Craftax 1.6.1 (full Craftax and Craftax-Classic; symbolic and pixel obs).

Craftax signals one ``done`` for three kinds of end: the player died (or, in Classic,
walked into lava; in full Craftax, beat the final boss), which are real ends, and its own
step limit ``params.max_timesteps`` (Craftax 100000, Classic 10000), which is a time limit.
The adapter keeps them apart by asking Craftax's own ``is_terminal`` again with the step
counter set to 0: whatever is still terminal is a termination; the rest of ``done`` is
``truncated``. The env is built without Craftax's auto-reset (which drops the final
observation); ``params`` are Craftax's ``EnvParams`` (``max_timesteps``, ``day_length``).
Observations are float32: ``(8268,)`` / ``(1345,)`` symbolic, ``(H, W, 3)`` pixels.

A reset generates a whole world, far dearer than a step: under ``vmap`` the per-env
auto-reset of ``step`` computes one for every env at every step, done or not. The adapter
therefore declares optimistic resets (``optimistic_reset_ratio``, default 16, the Craftax
baselines' PPO default): ``VectorEnv`` steps it with ``step_without_reset`` and generates
``ceil(num_envs / 16)`` fresh worlds per batch step for the envs that ended (see
``rlzoo.envs.wrappers.VectorEnv``). ``optimistic_reset_ratio=None`` restores the per-env
reset in every step.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from craftax.craftax_env import make_craftax_env_from_name

from rlzoo.envs.core import Array, Box, Discrete, Environment, PyTree
from rlzoo.envs.suites import CRAFTAX_NAMES, finish_step, split_step_key

# The Craftax baselines' PPO (Craftax_Baselines/ppo.py): --optimistic_reset_ratio 16, on by
# default, i.e. one fresh world per 16 envs per step.
DEFAULT_OPTIMISTIC_RESET_RATIO = 16


class CraftaxEnv(Environment):
    """A Craftax env behind rlzoo's interface; ``id`` is ``craftax/<name>``.

    ``max_timesteps`` (if given) replaces Craftax's step limit in the default params.
    ``optimistic_reset_ratio``: envs per fresh world that ``VectorEnv`` generates each
    batch step (1: one per env; ``None``: every env resets inside its own ``step``).
    """

    def __init__(
        self,
        name: str,
        max_timesteps: int | None = None,
        optimistic_reset_ratio: int | None = DEFAULT_OPTIMISTIC_RESET_RATIO,
    ):
        if name not in CRAFTAX_NAMES:
            raise ValueError(f"unknown craftax env {name!r}; known: {', '.join(CRAFTAX_NAMES)}")
        self.name = name
        self.id = f"craftax/{name}"
        if optimistic_reset_ratio is not None and (
            not isinstance(optimistic_reset_ratio, int) or optimistic_reset_ratio < 1
        ):
            raise ValueError(
                f"craftax optimistic_reset_ratio={optimistic_reset_ratio!r}: an integer >= 1 "
                "(envs per fresh world per batch step), or None for a reset in every step"
            )
        self.optimistic_reset_ratio = optimistic_reset_ratio
        self._env = make_craftax_env_from_name(name, auto_reset=False)
        params = self._env.default_params
        if max_timesteps is not None:
            params = params.replace(max_timesteps=int(max_timesteps))
        self._default_params = params
        space = self._env.observation_space(params)
        self._observation_space = Box(space.low, space.high, tuple(space.shape))
        self._action_space = Discrete(int(self._env.action_space(params).n))

    @property
    def craftax_env(self) -> Any:
        return self._env

    @property
    def default_params(self) -> PyTree:
        return self._default_params

    def reset(self, key: Array, params: PyTree) -> tuple[Array, PyTree]:
        obs, state = self._env.reset_env(key, params)
        return jnp.asarray(obs, jnp.float32), state

    def step_without_reset(self, key: Array, state: PyTree, action: Array, params: PyTree):
        step_key, _ = split_step_key(key)  # the other half is step's reset key
        obs, stepped, reward, done, _ = self._env.step_env(step_key, state, action, params)
        done = jnp.asarray(done, bool)
        # A real end stays terminal with the step counter at 0; the step limit does not.
        real_end = jnp.asarray(
            self._env.is_terminal(
                stepped.replace(timestep=jnp.zeros_like(stepped.timestep)), params
            ),
            bool,
        )
        terminated = done & real_end
        truncated = done & ~real_end
        obs = jnp.asarray(obs, jnp.float32)
        return obs, stepped, jnp.asarray(reward, jnp.float32), terminated, truncated, {}

    def step(self, key: Array, state: PyTree, action: Array, params: PyTree):
        _, reset_key = split_step_key(key)
        obs, stepped, reward, terminated, truncated, _ = self.step_without_reset(
            key, state, action, params
        )
        obs, next_state, info = finish_step(
            terminated | truncated, self.reset(reset_key, params), (obs, stepped)
        )
        return obs, next_state, reward, terminated, truncated, info

    def max_episode_steps(self, params: PyTree) -> int:
        # Craftax ends an episode once its step counter reaches params.max_timesteps.
        params = self._default_params if params is None else params
        return int(params.max_timesteps)

    def observation_space(self, params: PyTree) -> Box:
        return self._observation_space

    def action_space(self, params: PyTree) -> Discrete:
        return self._action_space
