"""Adapter for Jumanji 1.1.2 (single-agent envs), with structured observations as they are.

Jumanji marks both ends of an episode ``StepType.LAST`` and is meant to tell a time limit
by ``discount`` 1 (``truncation``), a real end by ``discount`` 0 (``termination``). But in
Jumanji 1.1.2 only two multi-agent envs (Connector, LevelBasedForaging) do so: the
single-agent envs with a time limit (Snake, PacMan, Maze, Tetris, MMST, RubiksCube,
SlidingTilePuzzle, ...) end it with ``termination``, discount 0. So the adapter owns the
time limit: an env with a ``time_limit`` is built with ``time_limit + 1`` (Jumanji itself
never reaches it), and the adapter truncates at ``time_limit`` steps (its own counter)
unless Jumanji ended the episode; ``terminated`` is Jumanji's ``LAST`` with discount 0.
Envs without a time limit (Game2048, BinPack, TSP, ...) end on their own only. Jumanji's
``AutoResetWrapper`` is not used; the adapter resets itself and keeps the final
observation in ``info``.

Observations are Jumanji's ``Observation`` named tuples turned into a
:class:`~rlzoo.envs.core.TreeObservation` (field by field, nested named tuples nested),
dtypes unchanged; the space is a ``Dict`` of ``Box`` (integer or float) and ``Bool``
entries built from Jumanji's ``observation_spec``. Most envs carry an ``action_mask``
(``True`` = allowed), which a masked categorical policy respects. Actions: ``Discrete``,
``MultiDiscrete`` or ``Box``, from ``action_spec``. Jumanji envs have no ``params``;
constructor options (``time_limit``, ``generator``, ...) are keyword arguments.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jumanji
import numpy as np
from flax import struct
from jumanji import specs
from jumanji.types import StepType

from rlzoo.envs.core import (
    Array,
    Bool,
    Box,
    Dict,
    Discrete,
    Environment,
    MultiDiscrete,
    PyTree,
    Space,
    TreeObservation,
)
from rlzoo.envs.suites import JUMANJI_NAMES, finish_step


@struct.dataclass
class JumanjiEnvState:
    """Jumanji's state plus the step counter of the current episode."""

    jumanji_state: Any
    time: Array


def _is_record(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")  # a named tuple


def _observation(obs: Any) -> Any:
    """Named tuples (nested) become ``TreeObservation``s, arrays stay as they are."""
    if _is_record(obs):
        return TreeObservation({f: _observation(getattr(obs, f)) for f in obs._fields})
    return jnp.asarray(obs)


def _array_space(spec: Any, name: str) -> Space:
    shape = tuple(int(d) for d in spec.shape)
    dtype = np.dtype(spec.dtype)
    if dtype == np.bool_:
        return Bool(shape)
    if isinstance(spec, specs.DiscreteArray):
        return Box(0, int(spec.num_values) - 1, shape, dtype=jnp.dtype(dtype))
    if isinstance(spec, specs.BoundedArray):
        return Box(np.asarray(spec.minimum), np.asarray(spec.maximum), shape, jnp.dtype(dtype))
    if isinstance(spec, specs.Array):
        return Box(-np.inf, np.inf, shape, dtype=jnp.dtype(dtype))
    raise NotImplementedError(f"jumanji observation entry {name!r}: spec {spec!r}")


def _observation_space(spec: Any, example: Any, name: str = "observation") -> Space:
    """A ``Dict`` mirroring the observation's (named tuple) structure, from the spec."""
    if _is_record(example):
        return Dict(
            {
                f: _observation_space(spec._specs[f], getattr(example, f), f"{name}.{f}")
                for f in example._fields
            }
        )
    return _array_space(spec, name)


def _action_space(spec: Any, name: str) -> Space:
    if isinstance(spec, specs.DiscreteArray):
        return Discrete(int(spec.num_values))
    if isinstance(spec, specs.MultiDiscreteArray):
        return MultiDiscrete(tuple(int(n) for n in np.asarray(spec.num_values)))
    if isinstance(spec, specs.BoundedArray) and np.issubdtype(np.dtype(spec.dtype), np.floating):
        return Box(np.asarray(spec.minimum), np.asarray(spec.maximum), tuple(spec.shape))
    raise NotImplementedError(f"jumanji/{name}: action spec {spec!r} is not supported")


class JumanjiEnv(Environment):
    """A Jumanji env behind rlzoo's interface; ``id`` is ``jumanji/<name>``."""

    def __init__(self, name: str, **jumanji_kwargs: Any):
        if name not in JUMANJI_NAMES:
            raise ValueError(f"unknown jumanji env {name!r}; known: {', '.join(JUMANJI_NAMES)}")
        self.name = name
        self.id = f"jumanji/{name}"
        env = jumanji.make(name, **jumanji_kwargs)
        # The time limit (Jumanji's default where not given), enforced here; see above.
        self.time_limit = getattr(env, "time_limit", None)
        if self.time_limit is not None:
            self.time_limit = int(self.time_limit)
            env = jumanji.make(name, **{**jumanji_kwargs, "time_limit": self.time_limit + 1})
        self._env = env
        timestep = jax.eval_shape(self._env.reset, jax.random.key(0))[1]
        if timestep.reward.shape != ():
            raise ValueError(f"jumanji/{name}: one reward per agent; only single-agent envs fit")
        self._observation_space = _observation_space(
            self._env.observation_spec, timestep.observation
        )
        self._action_space = _action_space(self._env.action_spec, name)

    @property
    def jumanji_env(self) -> Any:
        return self._env

    def reset(self, key: Array, params: PyTree = None) -> tuple[Any, JumanjiEnvState]:
        state, timestep = self._env.reset(key)
        state = JumanjiEnvState(jumanji_state=state, time=jnp.zeros((), jnp.int32))
        return _observation(timestep.observation), state

    def step(self, key: Array, state: JumanjiEnvState, action: Array, params: PyTree = None):
        # Jumanji's transitions draw from the key in its state; ``key`` seeds a reset.
        stepped, timestep = self._env.step(state.jumanji_state, action)
        time = state.time + 1
        last = timestep.step_type == StepType.LAST
        terminated = last & (timestep.discount == 0)
        truncated = last & (timestep.discount != 0)  # Connector / LBF style, where it exists
        if self.time_limit is not None:
            truncated = truncated | ((time >= self.time_limit) & ~terminated)
        done = terminated | truncated
        stepped_state = JumanjiEnvState(jumanji_state=stepped, time=time)
        obs, next_state, info = finish_step(
            done, self.reset(key), (_observation(timestep.observation), stepped_state)
        )
        reward = jnp.asarray(timestep.reward, jnp.float32)
        return obs, next_state, reward, terminated, truncated, info

    def max_episode_steps(self, params: PyTree = None) -> int | None:
        return self.time_limit  # the adapter's own truncation step; None: ends on its own

    def observation_space(self, params: PyTree = None) -> Space:
        return self._observation_space

    def action_space(self, params: PyTree = None) -> Space:
        return self._action_space
