"""Adapter for Navix 0.7.4 (MiniGrid in JAX).

Navix's ``Timestep.step_type`` is 0 (transition), 1 (truncation: ``t >= max_steps``, by
default ``4 * height * width``) or 2 (termination: goal, lava, ...), so ``terminated`` and
``truncated`` are read from it directly (Navix gives termination precedence when both
hold). Navix's own ``step`` resets on the call *after* an episode ends (and, vmapped, pays
for a reset inside ``lax.cond`` every step); the adapter steps with ``Environment._step``
and does the reset in the same step, keeping the final observation in ``info``.

Navix envs have no ``params`` (``None``); options such as ``max_steps`` or
``observation_fn`` (``navix.observations.symbolic`` by default here: the full grid,
``H x W x 3``; ``symbolic_first_person``, ``rgb``, ...) go to the constructor. Observations
are float32.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import navix
import numpy as np

from rlzoo.envs.core import Array, Box, Discrete, Environment, PyTree
from rlzoo.envs.suites import finish_step, split_step_key


class NavixEnv(Environment):
    """A Navix env behind rlzoo's interface; ``id`` is ``navix/<name>``."""

    def __init__(self, name: str, **navix_kwargs: Any):
        if name not in navix.registry():
            raise ValueError(f"unknown navix env {name!r}; known: {', '.join(navix.registry())}")
        self.name = name
        self.id = f"navix/{name}"
        self._env = navix.make(name, **navix_kwargs)
        space = self._env.observation_space
        shape = tuple(int(d) for d in space.shape)
        # Navix's symbolic spaces say 0..8 for every channel, but entries go higher (the
        # tests saw larger ones): integer observations are bounded by their dtype range instead.
        dtype = np.dtype(space.dtype)
        if np.issubdtype(dtype, np.integer):
            low, high = float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)
        else:
            low, high = np.asarray(space.minimum), np.asarray(space.maximum)
        self._observation_space = Box(low, high, shape)
        self._action_space = Discrete(int(self._env.action_space.n))

    @property
    def navix_env(self) -> Any:
        return self._env

    def reset(self, key: Array, params: PyTree = None) -> tuple[Array, Any]:
        timestep = self._env.reset(key)
        return jnp.asarray(timestep.observation, jnp.float32), timestep

    def step(self, key: Array, state: Any, action: Array, params: PyTree = None):
        _, reset_key = split_step_key(key)  # Navix transitions draw from the key in the state
        stepped = self._env._step(state, jnp.asarray(action, jnp.int32))
        terminated = stepped.is_termination()
        truncated = stepped.is_truncation()
        done = terminated | truncated
        obs, next_state, info = finish_step(
            done,
            self.reset(reset_key),
            (jnp.asarray(stepped.observation, jnp.float32), stepped),
        )
        reward = jnp.asarray(stepped.reward, jnp.float32)
        return obs, next_state, reward, terminated, truncated, info

    def max_episode_steps(self, params: PyTree = None) -> int:
        return int(self._env.max_steps)  # Navix truncates at t >= max_steps

    def observation_space(self, params: PyTree = None) -> Box:
        return self._observation_space

    def action_space(self, params: PyTree = None) -> Discrete:
        return self._action_space
