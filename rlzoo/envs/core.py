"""The one functional environment interface every rlzoo agent talks to.

Modelled on gymnax 1.0:

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

* ``terminated`` is a real end of the episode: do not bootstrap.
* ``truncated`` is a time limit: bootstrap from the value of ``info["final_observation"]``.
* ``step`` always auto-resets: when ``terminated | truncated`` the returned ``obs`` and
  ``state`` already belong to a fresh episode, and ``info["final_observation"]`` holds the
  observation the finished episode ended on (for a step that did not end an episode it
  equals ``obs``).

Environments and wrappers are plain Python objects that are static under ``jit``; all
changing quantities live in ``state`` (a pytree) and tunables in ``params`` (a pytree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any


@dataclass(frozen=True)
class Discrete:
    """Integer actions ``0 .. n - 1``."""

    n: int
    shape: tuple[int, ...] = ()
    dtype: Any = jnp.int32

    def sample(self, key: Array) -> Array:
        return jax.random.randint(key, self.shape, 0, self.n, dtype=self.dtype)

    def contains(self, x: Array) -> Array:
        """Bool array: ``x`` has this shape, an integer dtype and lies in ``0 .. n - 1``."""
        x = jnp.asarray(x)
        if x.shape != self.shape or not jnp.issubdtype(x.dtype, jnp.integer):
            return jnp.asarray(False)
        return jnp.all((x >= 0) & (x < self.n))


@dataclass(frozen=True)
class Box:
    """Real arrays of a fixed shape with element-wise bounds (``inf`` when unbounded)."""

    low: np.ndarray
    high: np.ndarray
    shape: tuple[int, ...]
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "low", np.broadcast_to(np.asarray(self.low, np.float32), self.shape)
        )
        object.__setattr__(
            self, "high", np.broadcast_to(np.asarray(self.high, np.float32), self.shape)
        )

    def __hash__(self) -> int:  # numpy arrays are unhashable; spaces must be static under jit
        return hash((self.shape, self.low.tobytes(), self.high.tobytes()))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Box)
            and self.shape == other.shape
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )

    @property
    def bounded(self) -> bool:
        return bool(np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high)))

    def sample(self, key: Array) -> Array:
        low = np.where(np.isfinite(self.low), self.low, -1.0)
        high = np.where(np.isfinite(self.high), self.high, 1.0)
        return jax.random.uniform(key, self.shape, self.dtype, low, high)

    def contains(self, x: Array) -> Array:
        """Bool array: ``x`` has this shape and lies within the bounds."""
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.all((x >= self.low) & (x <= self.high))


@dataclass(frozen=True)
class TokenSequence:
    """Fixed-length sequences of token ids ``0 .. vocab_size - 1`` (``PAD`` = 0 pads)."""

    vocab_size: int
    length: int
    dtype: Any = jnp.int32

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.length,)

    def sample(self, key: Array) -> Array:
        return jax.random.randint(key, self.shape, 0, self.vocab_size, dtype=self.dtype)

    def contains(self, x: Array) -> Array:
        x = jnp.asarray(x)
        if x.shape != self.shape or not jnp.issubdtype(x.dtype, jnp.integer):
            return jnp.asarray(False)
        return jnp.all((x >= 0) & (x < self.vocab_size))


Space = Discrete | Box | TokenSequence


class Environment:
    """Base class: subclasses implement ``reset``, ``step`` and the two spaces."""

    id: str = "unnamed"

    @property
    def default_params(self) -> PyTree:
        return None

    def reset(self, key: Array, params: PyTree) -> tuple[PyTree, PyTree]:
        raise NotImplementedError

    def step(
        self, key: Array, state: PyTree, action: Array, params: PyTree
    ) -> tuple[PyTree, PyTree, Array, Array, Array, dict[str, Any]]:
        raise NotImplementedError

    def observation_space(self, params: PyTree) -> Box:
        raise NotImplementedError

    def action_space(self, params: PyTree) -> Space:
        raise NotImplementedError


class Wrapper(Environment):
    """Forwards everything to the wrapped env; subclasses override what they change."""

    def __init__(self, env: Environment):
        self.env = env

    @property
    def id(self) -> str:  # type: ignore[override]
        return self.env.id

    @property
    def default_params(self) -> PyTree:
        return self.env.default_params

    def reset(self, key: Array, params: PyTree) -> tuple[PyTree, PyTree]:
        return self.env.reset(key, params)

    def step(self, key, state, action, params):
        return self.env.step(key, state, action, params)

    def observation_space(self, params: PyTree) -> Box:
        return self.env.observation_space(params)

    def action_space(self, params: PyTree) -> Space:
        return self.env.action_space(params)

    @property
    def unwrapped(self) -> Environment:
        env = self.env
        while isinstance(env, Wrapper):
            env = env.env
        return env
