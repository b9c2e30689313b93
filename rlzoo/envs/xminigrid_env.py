"""Adapter for XLand-MiniGrid 0.9.3 (its MiniGrid ports).

xminigrid's ``TimeStep`` marks both ends of an episode ``LAST``; the time limit
(``params.max_steps``) keeps ``discount`` 1 and a reached goal sets it to 0, so
``terminated = LAST & discount == 0`` and ``truncated = LAST & discount != 0``. The env is
stepped without xminigrid's auto-reset wrappers (the gym-style one drops the final
observation). ``params`` are xminigrid's ``EnvParams`` (static fields: ``max_steps``,
``view_size``, ...); keyword options replace them. Observations are the agent's
``view_size x view_size x 2`` view (tile id, colour), as float32.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import xminigrid
from xminigrid.core.constants import NUM_COLORS, NUM_TILES
from xminigrid.types import StepType

from rlzoo.envs.core import Array, Box, Discrete, Environment, PyTree
from rlzoo.envs.suites import XMINIGRID_NAMES, finish_step


class XMiniGridEnv(Environment):
    """An XLand-MiniGrid env behind rlzoo's interface; ``id`` is ``xminigrid/<name>``."""

    def __init__(self, name: str, **param_overrides: Any):
        if name not in XMINIGRID_NAMES:
            raise ValueError(f"unknown xminigrid env {name!r}; known: {', '.join(XMINIGRID_NAMES)}")
        self.name = name
        self.id = f"xminigrid/{name}"
        self._env, self._default_params = xminigrid.make(name, **param_overrides)
        shape = tuple(int(d) for d in self._env.observation_shape(self._default_params))
        high = np.broadcast_to(np.array([NUM_TILES - 1, NUM_COLORS - 1], np.float32), shape)
        self._observation_space = Box(np.zeros(shape, np.float32), high, shape)
        self._action_space = Discrete(int(self._env.num_actions(self._default_params)))

    @property
    def xminigrid_env(self) -> Any:
        return self._env

    @property
    def default_params(self) -> PyTree:
        return self._default_params

    def reset(self, key: Array, params: PyTree) -> tuple[Array, Any]:
        timestep = self._env.reset(params, key)
        return jnp.asarray(timestep.observation, jnp.float32), timestep

    def step(self, key: Array, state: Any, action: Array, params: PyTree):
        # xminigrid's transitions are deterministic; the key only seeds a reset.
        stepped = self._env.step(params, state, jnp.asarray(action, jnp.int32))
        last = stepped.step_type == StepType.LAST
        terminated = last & (stepped.discount == 0)
        truncated = last & (stepped.discount != 0)
        obs, next_state, info = finish_step(
            last,
            self.reset(key, params),
            (jnp.asarray(stepped.observation, jnp.float32), stepped),
        )
        reward = jnp.asarray(stepped.reward, jnp.float32)
        return obs, next_state, reward, terminated, truncated, info

    def max_episode_steps(self, params: PyTree) -> int:
        # xminigrid truncates when its step counter equals params.max_steps, a static field
        # that every env's default_params fills in.
        params = self._default_params if params is None else params
        return int(params.max_steps)

    def observation_space(self, params: PyTree) -> Box:
        return self._observation_space

    def action_space(self, params: PyTree) -> Discrete:
        return self._action_space
