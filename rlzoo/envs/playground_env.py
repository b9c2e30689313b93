"""Adapter for MuJoCo Playground 0.2.0 (MJX), built on the raw env without its wrappers.

Playground's raw envs have no time limit: its training wrapper (``EpisodeWrapper``) adds
one and reports it as ``info["truncation"]``. Like ``BraxEnv``, this adapter keeps its own
step counter instead: ``terminated`` is Playground's ``done`` and ``truncated`` is
``time >= params.episode_length`` (default: the env config's, 1000 for the DM Control
Suite; ``params=None`` means the default) and not
terminated (``time`` counts env steps; configs with ``action_repeat != 1`` are rejected,
Playground's envs step at ``ctrl_dt`` themselves). On either
the env is reset from the step's key and ``info["final_observation"]`` keeps the
pre-reset observation.

Options: ``episode_length`` (default: the env config's), ``impl``
(MJX implementation, default ``"jax"``; Playground's own default ``"warp"`` compiles warp
kernels and is meant for NVIDIA GPUs), ``config_overrides`` (a dict for the env config),
and ``menagerie_path`` for the locomotion and manipulation envs: a local MuJoCo Menagerie
checkout (default: ``$RLZOO_MENAGERIE_PATH``). Playground would ``git clone`` Menagerie
when one of those envs loads; rlzoo never downloads and raises instead. The DM Control
Suite envs ship their model files and work offline. Dict observations (locomotion envs'
``state`` / ``privileged_state``) become a ``TreeObservation``.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import struct
from mujoco_playground import registry
from mujoco_playground._src import mjx_env

from rlzoo.envs.core import Array, Box, Dict, Environment, PyTree, TreeObservation
from rlzoo.envs.suites import PLAYGROUND_MENAGERIE_NAMES, SUITES, finish_step, split_step_key


@struct.dataclass
class PlaygroundParams:
    """Traced, so one compiled program serves every time limit."""

    episode_length: Array


@struct.dataclass
class PlaygroundEnvState:
    """Playground ``State`` plus the step counter of the current episode."""

    mjx_state: Any
    time: Array


def _use_menagerie(name: str, menagerie_path: str | None) -> None:
    path = menagerie_path or os.environ.get("RLZOO_MENAGERIE_PATH")
    if not path or not epath.Path(path).exists():
        raise RuntimeError(
            f"playground/{name} loads robot models from MuJoCo Menagerie, which Playground "
            "would git-clone; rlzoo does not download at run time. Pass "
            "menagerie_path=<a local mujoco_menagerie checkout> (or set "
            f"RLZOO_MENAGERIE_PATH); got {path!r}."
        )
    # Playground reads this module global when an env loads its model files.
    mjx_env.MENAGERIE_PATH = epath.Path(path)


def _observation(obs: Any) -> Any:
    if isinstance(obs, dict):
        return TreeObservation({k: jnp.asarray(v, jnp.float32) for k, v in obs.items()})
    return jnp.asarray(obs, jnp.float32)


class PlaygroundEnv(Environment):
    """A MuJoCo Playground env behind rlzoo's interface; ``id`` is ``playground/<name>``."""

    def __init__(
        self,
        name: str,
        episode_length: int | None = None,
        impl: str = "jax",
        config_overrides: dict[str, Any] | None = None,
        menagerie_path: str | None = None,
    ):
        if name not in SUITES["playground"].names:
            raise ValueError(f"unknown playground env {name!r}")
        if name in PLAYGROUND_MENAGERIE_NAMES:
            _use_menagerie(name, menagerie_path)
        config = registry.get_default_config(name)
        overrides = {"impl": impl, **(config_overrides or {})}
        self._env = registry.load(name, config=config, config_overrides=overrides)
        self.name = name
        self.id = f"playground/{name}"
        self.episode_length = int(episode_length or config.episode_length)
        if self.episode_length < 1:
            raise ValueError("episode_length must be >= 1")
        if config.get("action_repeat", 1) != 1:  # DM Control's is 1; Playground's wrapper's job
            raise ValueError(f"playground/{name}: action_repeat != 1 is not supported")
        # eval_shape traces reset without running it (an eager reset takes seconds).
        obs = jax.eval_shape(lambda k: _observation(self._env.reset(k).obs), jax.random.key(0))
        if isinstance(obs, TreeObservation):
            self._observation_space = Dict(
                {k: Box(-np.inf, np.inf, tuple(v.shape)) for k, v in obs.items()}
            )
        else:
            self._observation_space = Box(-np.inf, np.inf, tuple(obs.shape))
        self._action_space = Box(-1.0, 1.0, (int(self._env.action_size),))

    @property
    def playground_env(self) -> Any:
        return self._env

    @property
    def default_params(self) -> PlaygroundParams:
        return PlaygroundParams(episode_length=jnp.asarray(self.episode_length, jnp.int32))

    def reset(self, key: Array, params: PyTree = None) -> tuple[Any, PlaygroundEnvState]:
        mjx_state = self._env.reset(key)
        state = PlaygroundEnvState(mjx_state=mjx_state, time=jnp.zeros((), jnp.int32))
        return _observation(mjx_state.obs), state

    def step(self, key: Array, state: PlaygroundEnvState, action: Array, params: PyTree = None):
        _, reset_key = split_step_key(key)  # Playground's transitions use the rng in its info
        stepped = self._env.step(state.mjx_state, action)
        reward = jnp.asarray(stepped.reward, jnp.float32)
        time = state.time + 1
        terminated = stepped.done > 0
        limit = self.episode_length if params is None else params.episode_length
        truncated = (time >= limit) & ~terminated
        done = terminated | truncated
        stepped_state = PlaygroundEnvState(mjx_state=stepped, time=time)
        obs, next_state, info = finish_step(
            done, self.reset(reset_key), (_observation(stepped.obs), stepped_state)
        )
        return obs, next_state, reward, terminated, truncated, info

    def max_episode_steps(self, params: PyTree = None) -> int:
        # The limit step() uses: params' (traced, so it may differ from the built one).
        return self.episode_length if params is None else int(params.episode_length)

    def observation_space(self, params: PyTree = None) -> Box | Dict:
        return self._observation_space

    def action_space(self, params: PyTree = None) -> Box:
        return self._action_space
