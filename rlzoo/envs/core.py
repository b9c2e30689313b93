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
* Optimistic resets: an env whose reset is expensive (Craftax generates a world) may also
  split that step in two, ``step_without_reset`` and ``restart``, and declare
  ``optimistic_reset_ratio``; ``VectorEnv`` then starts the fresh episodes itself, a few
  per batch step instead of one per env (see ``rlzoo.envs.wrappers.VectorEnv``).

Environments and wrappers are plain Python objects that are static under ``jit``; all
changing quantities live in ``state`` (a pytree) and tunables in ``params`` (a pytree).

Observations are arrays (space ``Box``) or, for suites with structured observations
(Jumanji, some Craftax / XLand-MiniGrid variants), a :class:`TreeObservation` of arrays
(space :class:`Dict`). An optional ``"action_mask"`` entry (bool, ``True`` = allowed) marks
the valid actions; a masked categorical policy gives the others probability zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any
ACTION_MASK = "action_mask"  # the observation entry that marks valid actions


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


@dataclass(frozen=True)
class MultiDiscrete:
    """Integer vectors: entry ``i`` lies in ``0 .. nvec[i] - 1`` (Jumanji's MultiDiscreteArray)."""

    nvec: tuple[int, ...]
    dtype: Any = jnp.int32

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.nvec),)

    def sample(self, key: Array) -> Array:
        return jax.random.randint(key, self.shape, 0, np.asarray(self.nvec), dtype=self.dtype)

    def contains(self, x: Array) -> Array:
        x = jnp.asarray(x)
        if x.shape != self.shape or not jnp.issubdtype(x.dtype, jnp.integer):
            return jnp.asarray(False)
        return jnp.all((x >= 0) & (x < np.asarray(self.nvec)))


@jax.tree_util.register_pytree_with_keys_class
class TreeObservation(Mapping):
    """A structured observation: a read-only mapping of names to arrays (or nested ones).

    A pytree (keys are static, values are leaves), so it passes through ``jit``, ``vmap``,
    ``lax.scan`` and ``jax.tree.map`` like a dict. It has no ``shape``: code that needs the
    leading (env, time) axes reads them from a leaf and that leaf's space
    (:func:`batch_shape`).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any]):
        if not items:
            raise ValueError("a TreeObservation needs at least one entry")
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"TreeObservation({self._items!r})"

    def tree_flatten_with_keys(self):
        keys = tuple(self._items)
        return [(jax.tree_util.DictKey(k), self._items[k]) for k in keys], keys

    @classmethod
    def tree_unflatten(cls, keys, children):
        return cls(dict(zip(keys, children, strict=True)))


@dataclass(frozen=True)
class Dict:
    """Space of :class:`TreeObservation`: one space per entry (entries may nest).

    ``spaces`` keeps the entries' order, which is the order of the observation's entries
    (and of its leaves under ``jax.tree.leaves``). A ``Dict`` has no ``shape``.
    """

    spaces: tuple[tuple[str, Any], ...]

    def __init__(self, spaces: Mapping[str, Any] | tuple[tuple[str, Any], ...]):
        items = tuple(spaces.items()) if isinstance(spaces, Mapping) else tuple(spaces)
        if not items:
            raise ValueError("a Dict space needs at least one entry")
        object.__setattr__(self, "spaces", items)

    def __getitem__(self, key: str) -> Any:
        return dict(self.spaces)[key]

    def keys(self) -> list[str]:
        return [k for k, _ in self.spaces]

    def sample(self, key: Array) -> TreeObservation:
        keys = jax.random.split(key, len(self.spaces))
        return TreeObservation(
            {n: s.sample(k) for (n, s), k in zip(self.spaces, keys, strict=True)}
        )

    def contains(self, x: Any) -> Array:
        """Bool array: ``x`` has exactly these entries and each lies in its space."""
        if not isinstance(x, Mapping) or list(x) != self.keys():
            return jnp.asarray(False)
        return jnp.all(jnp.stack([jnp.asarray(s.contains(x[n])) for n, s in self.spaces]))


@dataclass(frozen=True)
class Bool:
    """Bool arrays of a fixed shape (action masks: ``True`` = the action is allowed)."""

    shape: tuple[int, ...]
    dtype: Any = jnp.bool_

    def sample(self, key: Array) -> Array:
        return jax.random.bernoulli(key, 0.5, self.shape)

    def contains(self, x: Array) -> Array:
        x = jnp.asarray(x)
        return jnp.asarray(x.shape == self.shape and x.dtype == jnp.bool_)


Space = Discrete | Box | TokenSequence | MultiDiscrete | Dict | Bool


def select_tree(pred: Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    """``on_true`` where ``pred`` else ``on_false``, leaf by leaf (a scalar ``pred``)."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def event_ndims(space: Any) -> Any:
    """Per entry of an observation space, how many trailing axes one observation has
    (an int for an array space, a dict for a ``Dict``)."""
    if isinstance(space, Dict):
        return {name: event_ndims(s) for name, s in space.spaces}
    return len(space.shape)


def leaf_spaces(space: Any) -> list[Any]:
    """The array spaces of an observation space, in the order of the observation's leaves
    (``[space]`` for an array space)."""
    if isinstance(space, Dict):
        return [leaf for _, s in space.spaces for leaf in leaf_spaces(s)]
    return [space]


def batch_shape(obs: Any, space: Any) -> tuple[int, ...]:
    """Leading axes of ``obs`` beyond one observation of ``space`` (``(num_envs,)``, ``()``,
    ...), read from the first leaf of the observation and of the space."""
    leaf = jax.tree.leaves(obs)[0]
    event_ndim = len(leaf_spaces(space)[0].shape)
    return tuple(leaf.shape[: leaf.ndim - event_ndim])


class Environment:
    """Base class: subclasses implement ``reset``, ``step`` and the two spaces.

    An env with an expensive reset may also opt in to optimistic resets: it implements
    ``step_without_reset`` (and ``restart``, if its state holds more than the episode) and
    sets ``optimistic_reset_ratio``, which ``VectorEnv`` reads.
    """

    id: str = "unnamed"
    # Envs per fresh start state that VectorEnv generates each batch step for this env;
    # None (the default): every env resets inside its own ``step``.
    optimistic_reset_ratio: int | None = None

    @property
    def default_params(self) -> PyTree:
        return None

    def reset(self, key: Array, params: PyTree) -> tuple[PyTree, PyTree]:
        raise NotImplementedError

    def step(
        self, key: Array, state: PyTree, action: Array, params: PyTree
    ) -> tuple[PyTree, PyTree, Array, Array, Array, dict[str, Any]]:
        raise NotImplementedError

    def step_without_reset(
        self, key: Array, state: PyTree, action: Array, params: PyTree
    ) -> tuple[PyTree, PyTree, Array, Array, Array, dict[str, Any]]:
        """``step`` without the auto-reset: the returned ``obs`` and ``state`` are the ones
        the transition reached, also where the episode ended (``obs`` is then the final
        observation), and ``info`` has no ``"final_observation"``. The transition uses
        ``key`` exactly as ``step`` does, so both reach the same ``obs``, reward and flags.
        Only envs that set ``optimistic_reset_ratio`` implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no step_without_reset")

    def restart(
        self, done: Array, start: tuple[PyTree, PyTree], stepped: tuple[PyTree, PyTree]
    ) -> tuple[PyTree, PyTree]:
        """The auto-reset of ``step``, with the fresh episode given: ``start`` (an ``(obs,
        state)`` from ``reset``) where ``done``, else ``stepped`` (from
        ``step_without_reset``). An env whose state is all episode state selects leaf by
        leaf; a wrapper that keeps statistics across episodes keeps its own part."""
        return select_tree(done, start, stepped)

    def observation_space(self, params: PyTree) -> Box:
        raise NotImplementedError

    def action_space(self, params: PyTree) -> Space:
        raise NotImplementedError

    def max_episode_steps(self, params: PyTree) -> int | None:
        """The time limit: the step at which an episode is truncated under ``params``, or
        ``None`` when the env has none (its episodes end on their own). Each adapter reads
        it from its suite (a field of ``params`` or a constructor option); the evaluator
        caps its episodes with it (``rlzoo.core.evaluation.episode_limit``)."""
        return None


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

    @property
    def optimistic_reset_ratio(self) -> int | None:  # type: ignore[override]
        # Not forwarded: a wrapper takes part in optimistic resets only by implementing
        # step_without_reset and restart for its own state (EpisodeStatistics does).
        return None

    def restart(
        self, done: Array, start: tuple[PyTree, PyTree], stepped: tuple[PyTree, PyTree]
    ) -> tuple[PyTree, PyTree]:
        raise NotImplementedError(f"{type(self).__name__} has no restart")

    def observation_space(self, params: PyTree) -> Box:
        return self.env.observation_space(params)

    def action_space(self, params: PyTree) -> Space:
        return self.env.action_space(params)

    def max_episode_steps(self, params: PyTree) -> int | None:
        return self.env.max_episode_steps(params)

    @property
    def unwrapped(self) -> Environment:
        env = self.env
        while isinstance(env, Wrapper):
            env = env.env
        return env
