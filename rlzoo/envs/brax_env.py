"""Adapter for Brax's bundled environments, built on the raw env without Brax's wrappers.

Brax's ``AutoResetWrapper`` resets to a cached first state and drops the observation the
episode ended on, so this adapter does its own episode bookkeeping:

* ``terminated`` is Brax's ``done``; ``truncated`` is the time limit (``time >=
  episode_length`` and not terminated). Like Brax's ``EpisodeWrapper``, ``time`` counts
  physics-env steps, so one rlzoo step advances it by ``action_repeat``.
* on ``terminated | truncated`` the env is reset with a fresh key and the new episode's
  observation is returned; ``info["final_observation"]`` holds the pre-reset observation.
* Brax's metrics/info stay inside the state and are not copied into ``info``.

Brax envs have no ``params``: ``default_params`` is ``None`` and ``params`` are ignored.
Only flat array observations are supported (``fast`` with a dict ``obs_mode`` is rejected).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from brax import envs as brax_envs
from flax import struct

from rlzoo.envs.core import Array, Box, Environment, PyTree

# Envs that reject the positional backend; used when no backend is given.
_ONLY_BACKEND = {"swimmer": "generalized"}


@struct.dataclass
class BraxEnvState:
    """Brax ``State`` plus the step counter of the current episode."""

    brax_state: Any
    time: Array


def brax_names() -> list[str]:
    """Names in Brax's environment registry."""
    return sorted(brax_envs._envs)  # brax exposes no public listing of its registry


class BraxEnv(Environment):
    """A raw Brax env behind rlzoo's interface; ``id`` is ``brax/<name>``.

    ``backend=None`` means ``"positional"`` (fast to compile), or the only backend an env
    supports (``swimmer``: ``"generalized"``).
    """

    def __init__(
        self,
        name: str,
        backend: str | None = None,
        episode_length: int = 1000,
        action_repeat: int = 1,
        **brax_kwargs: Any,
    ):
        if name not in brax_envs._envs:
            raise ValueError(f"unknown brax env {name!r}; known: {brax_names()}")
        if episode_length < 1 or action_repeat < 1:
            raise ValueError("episode_length and action_repeat must be >= 1")
        if backend is None:
            backend = _ONLY_BACKEND.get(name, "positional")
        try:
            env = brax_envs.get_environment(name, backend=backend, **brax_kwargs)
        except ValueError as err:
            raise ValueError(f"brax/{name} with backend={backend!r}: {err}") from err
        except TypeError as err:  # an option the Brax env's constructor does not take
            import inspect

            parameters = inspect.signature(brax_envs._envs[name].__init__).parameters.values()
            accepted = ["backend", "episode_length", "action_repeat"]
            accepted += [p.name for p in parameters if p.name not in ["self", "kwargs", *accepted]]
            raise ValueError(
                f"brax/{name} does not take env option(s) {sorted(brax_kwargs)} ({err}); it "
                f"accepts: {', '.join(accepted)}."
            ) from err
        self.name = name
        self.id = f"brax/{name}"
        self.backend = backend
        self.episode_length = int(episode_length)
        self.action_repeat = int(action_repeat)
        self._env = env
        # eval_shape traces reset without running it; Brax's observation_size runs it eagerly.
        obs = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs
        if not isinstance(obs, jax.ShapeDtypeStruct):
            raise ValueError(f"brax/{name}: dict observations are not supported")
        self._observation_space = Box(-np.inf, np.inf, tuple(obs.shape))
        self._action_space = Box(-1.0, 1.0, (int(env.action_size),))

    @property
    def brax_env(self) -> Any:
        """The wrapped raw Brax environment."""
        return self._env

    def reset(self, key: Array, params: PyTree = None) -> tuple[Array, BraxEnvState]:
        brax_state = self._env.reset(key)
        state = BraxEnvState(brax_state=brax_state, time=jnp.zeros((), jnp.int32))
        return jnp.asarray(brax_state.obs, jnp.float32), state

    def _physics_step(self, brax_state: Any, action: Array) -> tuple[Any, Array]:
        """Applies ``action`` ``action_repeat`` times; returns the last state, summed reward."""
        if self.action_repeat == 1:
            nxt = self._env.step(brax_state, action)
            return nxt, jnp.asarray(nxt.reward, jnp.float32)

        def body(_: Array, carry: tuple[Any, Array]) -> tuple[Any, Array]:
            current, total = carry
            nxt = self._env.step(current, action)
            # Stop at a terminal state: stepping physics past it would leak reward and obs
            # from beyond the end of the episode.
            ended = current.done > 0
            nxt = jax.tree.map(lambda old, new: jnp.where(ended, old, new), current, nxt)
            total = total + jnp.where(ended, 0.0, jnp.asarray(nxt.reward, jnp.float32))
            return nxt, total

        start = brax_state.replace(done=jnp.zeros_like(brax_state.done))
        return jax.lax.fori_loop(0, self.action_repeat, body, (start, jnp.zeros((), jnp.float32)))

    def step(
        self, key: Array, state: BraxEnvState, action: Array, params: PyTree = None
    ) -> tuple[Array, BraxEnvState, Array, Array, Array, dict[str, Any]]:
        stepped, reward = self._physics_step(state.brax_state, action)
        time = state.time + self.action_repeat
        terminated = stepped.done > 0
        truncated = (time >= self.episode_length) & ~terminated
        done = terminated | truncated

        fresh = self._env.reset(key)
        brax_state = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, stepped)
        next_state = BraxEnvState(brax_state=brax_state, time=jnp.where(done, 0, time))
        info = {"final_observation": jnp.asarray(stepped.obs, jnp.float32)}
        obs = jnp.asarray(brax_state.obs, jnp.float32)
        return obs, next_state, reward, terminated, truncated, info

    def max_episode_steps(self, params: PyTree = None) -> int:
        # ``time`` advances by action_repeat per step: truncation comes on this step.
        return -(-self.episode_length // self.action_repeat)

    def observation_space(self, params: PyTree = None) -> Box:
        return self._observation_space

    def action_space(self, params: PyTree = None) -> Box:
        return self._action_space
