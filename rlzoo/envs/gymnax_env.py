"""Adapter for gymnax 1.x environments (classic control, MinAtar, bsuite, misc).

gymnax 1.x already speaks rlzoo's interface: ``step`` auto-resets and returns
``(obs, state, reward, terminated, truncated, info)`` with ``info["final_observation"]``.
The adapter only normalises types and spaces:

* observations (and ``final_observation``) become float32; environments whose observation
  space is ``Discrete(n)`` (``FrozenLake-misc``, an integer cell index) are one-hot encoded
  to a float32 vector of length ``n`` so that every observation is a ``Box``;
* rewards become float32 (``UmbrellaChain-bsuite`` and ``BernoulliBandit-misc`` return
  int32), ``terminated`` / ``truncated`` bool;
* ``info`` holds only ``final_observation`` (gymnax's extra keys such as ``discount`` are
  dropped so that every backend returns the same info structure);
* ``truncated`` is cleared when ``terminated`` is set (gymnax sets both when a terminal
  state coincides with the time limit, e.g. ``DeepSea-bsuite`` at every episode end);
* observation bounds that gymnax's own observations violate are widened:
  ``MemoryChain-bsuite`` (context bits are -1/1, space says [0, 2]) and
  ``GaussianBandit-misc`` (Gaussian last reward, time normalised to [-1, 1]);
* observation bounds at float32's extreme (gymnax writes ``finfo.max`` for "unbounded") are
  turned into ``inf``.

Environment-specific notes:

* ``MNISTBandit-bsuite`` downloads MNIST into ``/tmp/mnist`` when it is constructed; without
  network access and without those files, construction raises a ``RuntimeError`` saying so.
  gymnax parses the images as int8, so bright pixels come out negative; the adapter
  reinterprets them as uint8 so observations lie in [0, 1] as the space says.

Spaces are static metadata. Some gymnax bounds depend on ``params`` (e.g. Pendulum's
``max_torque``); when ``params`` are traced (spaces asked for inside ``jit``) the bounds of
the default params are used, since traced values cannot become static bounds.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlzoo.envs.core import Array, Box, Discrete, Environment, PyTree, Space
from rlzoo.envs.deferred_imports import defer_imports

# gymnax imports its plotting stack at module level; a training run never draws.
defer_imports("matplotlib.pyplot", "seaborn")
import gymnax  # noqa: E402
from gymnax.environments import spaces as gspaces  # noqa: E402

# gymnax marks unbounded dimensions with float32's largest value rather than inf.
_UNBOUNDED = float(np.finfo(np.float32).max) * 0.5


def _fix_memory_chain(low: np.ndarray, high: np.ndarray) -> None:
    low[2:] = -1.0  # the context bits are shown as 2 * bit - 1, i.e. -1 or 1


def _fix_gaussian_bandit(low: np.ndarray, high: np.ndarray) -> None:
    low[0], high[0] = -np.inf, np.inf  # last reward: Gaussian, unbounded
    low[3] = -1.0  # time, normalised to [-1, 1] when params.normalize_time


# gymnax observation bounds that its own observations violate; widened here (in place).
_OBS_BOUND_FIXES = {
    "MemoryChain-bsuite": _fix_memory_chain,
    "GaussianBandit-misc": _fix_gaussian_bandit,
}


def _is_traced(tree: PyTree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def _bound(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, np.float32), shape).copy()
    arr[arr >= _UNBOUNDED] = np.inf
    arr[arr <= -_UNBOUNDED] = -np.inf
    return arr


def _convert_space(space: gspaces.Space, what: str, name: str) -> Space:
    if isinstance(space, gspaces.Discrete):
        return Discrete(int(space.n))
    if isinstance(space, gspaces.Box):
        shape = tuple(int(d) for d in space.shape)
        return Box(_bound(space.low, shape), _bound(space.high, shape), shape)
    raise NotImplementedError(
        f"gymnax/{name}: {what} space {type(space).__name__} is not supported "
        "(rlzoo handles Discrete and Box spaces only)"
    )


def _constructor_options(cls: type) -> list[str]:
    """Keyword options a class's constructor takes (for error messages)."""
    import inspect

    parameters = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in parameters if p.name != "self" and p.kind is not p.VAR_KEYWORD]


class GymnaxEnv(Environment):
    """A gymnax 1.x environment behind rlzoo's interface; ``id`` is ``gymnax/<name>``."""

    def __init__(self, name: str, **gymnax_kwargs: Any):
        if name not in gymnax.registered_envs:
            raise ValueError(f"unknown gymnax env {name!r}; known: {list(gymnax.registered_envs)}")
        try:
            env, params = gymnax.make(name, **gymnax_kwargs)
        except TypeError as err:  # an option the env's constructor does not take
            accepted = _constructor_options(type(gymnax.make(name)[0]))
            raise ValueError(
                f"gymnax/{name} does not take env option(s) {sorted(gymnax_kwargs)} ({err}); "
                f"it accepts: {', '.join(accepted) or 'none'}."
            ) from err
        except OSError as err:  # URLError is an OSError: MNIST download without network
            raise RuntimeError(
                f"gymnax/{name} could not be constructed: {err}. MNISTBandit-bsuite downloads "
                "MNIST into /tmp/mnist on construction; provide those files or network access."
            ) from err
        if name == "MNISTBandit-bsuite" and env.images.dtype == jnp.int8:
            # gymnax reads the uint8 pixel bytes as int8; reinterpret them so pixels are 0..255.
            env.images = jnp.asarray(np.asarray(env.images).view(np.uint8))
        self.name = name
        self.id = f"gymnax/{name}"
        self._env = env
        self._default_params = params
        self._default_spaces = self._spaces(params)

    @property
    def gymnax_env(self) -> Any:
        """The wrapped gymnax environment."""
        return self._env

    @property
    def default_params(self) -> PyTree:
        return self._default_params

    def _spaces(self, params: PyTree) -> tuple[Space, Space, Space]:
        """(raw gymnax observation space, rlzoo observation space, rlzoo action space)."""
        # gymnax builds bounds with jnp ops; evaluate them eagerly even while tracing.
        with jax.ensure_compile_time_eval():
            return self._convert_spaces(params)

    def _convert_spaces(self, params: PyTree) -> tuple[Space, Space, Space]:
        raw_obs = _convert_space(self._env.observation_space(params), "observation", self.name)
        act = _convert_space(self._env.action_space(params), "action", self.name)
        if isinstance(raw_obs, Discrete):
            obs = Box(np.zeros(raw_obs.n), np.ones(raw_obs.n), (raw_obs.n,))
        elif self.name in _OBS_BOUND_FIXES:
            low, high = raw_obs.low.copy(), raw_obs.high.copy()
            _OBS_BOUND_FIXES[self.name](low, high)
            obs = raw_obs = Box(low, high, raw_obs.shape)
        else:
            obs = raw_obs
        return raw_obs, obs, act

    def _spaces_for(self, params: PyTree) -> tuple[Space, Space, Space]:
        if params is None or _is_traced(params):
            return self._default_spaces
        return self._spaces(params)

    def _observation(self, obs: Array) -> Array:
        raw = self._default_spaces[0]
        if isinstance(raw, Discrete):
            return jax.nn.one_hot(obs, raw.n, dtype=jnp.float32)
        return jnp.asarray(obs, jnp.float32)

    def reset(self, key: Array, params: PyTree) -> tuple[Array, PyTree]:
        obs, state = self._env.reset(key, params)
        return self._observation(obs), state

    def step(
        self, key: Array, state: PyTree, action: Array, params: PyTree
    ) -> tuple[Array, PyTree, Array, Array, Array, dict[str, Any]]:
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {"final_observation": self._observation(info["final_observation"])}
        terminated = jnp.asarray(terminated, bool).reshape(())
        return (
            self._observation(obs),
            state,
            jnp.asarray(reward, jnp.float32).reshape(()),
            terminated,
            # A time limit hit on a terminal step is a termination (no bootstrap), as in Brax.
            jnp.asarray(truncated, bool).reshape(()) & ~terminated,
            info,
        )

    def max_episode_steps(self, params: PyTree) -> int | None:
        params = self._default_params if params is None else params
        limit = getattr(params, "max_steps_in_episode", None)
        return None if limit is None else int(limit)

    def observation_space(self, params: PyTree) -> Box:
        return self._spaces_for(params)[1]  # type: ignore[return-value]

    def action_space(self, params: PyTree) -> Space:
        return self._spaces_for(params)[2]
