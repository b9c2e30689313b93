"""Pure, jittable environment wrappers; each keeps its own state next to the inner one.

Typical stacking::

    env = EpisodeStatistics(env)           # per-env, inside the vmap
    env = VectorEnv(env, num_envs)         # leading env axis from here on
    env = NormalizeObservation(env)        # statistics shared across envs
    env = NormalizeReward(env, gamma)

Wrapper states are flax dataclasses holding the inner state in ``env_state``.
``EpisodeStatistics`` and ``NormalizeReward`` infer a batch shape from the observation
(the first leaf's shape minus its space's shape), so they work both inside and outside
``VectorEnv``, on array and on pytree (``TreeObservation``) observations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlzoo.envs.core import (
    ACTION_MASK,
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
    Wrapper,
    batch_shape,
)

StepResult = tuple[Array, PyTree, Array, Array, Array, dict[str, Any]]


def _batch_shape(env: Environment, obs: PyTree, params: PyTree) -> tuple[int, ...]:
    """Leading dims of ``obs`` beyond one observation (``(num_envs,)`` or ``()``)."""
    return batch_shape(obs, env.observation_space(params))


# --------------------------------------------------------------------------- statistics


@struct.dataclass
class EpisodeStatisticsState:
    env_state: PyTree
    episode_return: Array  # running return of the current episode
    episode_length: Array  # running length of the current episode
    returned_episode_return: Array  # return of the most recently completed episode
    returned_episode_length: Array


class EpisodeStatistics(Wrapper):
    """Adds ``episode_return``, ``episode_length`` and ``episode_done`` to ``info``.

    ``episode_return`` / ``episode_length`` are those of the most recently completed episode
    (0 before any completes), held until the next one completes; ``episode_done`` says that
    an episode ended at this step.
    """

    def reset(self, key: Array, params: PyTree) -> tuple[Array, EpisodeStatisticsState]:
        obs, env_state = self.env.reset(key, params)
        shape = _batch_shape(self.env, obs, params)
        zf, zi = jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.int32)
        return obs, EpisodeStatisticsState(env_state, zf, zi, zf, zi)

    @property
    def optimistic_reset_ratio(self) -> int | None:
        return self.env.optimistic_reset_ratio

    def step(
        self, key: Array, state: EpisodeStatisticsState, action: Array, params: PyTree
    ) -> StepResult:
        return self._record(state, self.env.step(key, state.env_state, action, params))

    def step_without_reset(
        self, key: Array, state: EpisodeStatisticsState, action: Array, params: PyTree
    ) -> StepResult:
        inner = self.env.step_without_reset(key, state.env_state, action, params)
        return self._record(state, inner)

    def restart(
        self,
        done: Array,
        start: tuple[PyTree, EpisodeStatisticsState],
        stepped: tuple[PyTree, EpisodeStatisticsState],
    ) -> tuple[PyTree, EpisodeStatisticsState]:
        # The statistics were already closed by step_without_reset; only the inner env
        # starts its fresh episode.
        (start_obs, start_state), (stepped_obs, stepped_state) = start, stepped
        obs, env_state = self.env.restart(
            done, (start_obs, start_state.env_state), (stepped_obs, stepped_state.env_state)
        )
        return obs, stepped_state.replace(env_state=env_state)

    def _record(self, state: EpisodeStatisticsState, inner: StepResult) -> StepResult:
        """The statistics of one inner step (auto-reset or not: they only read its flags)."""
        obs, env_state, reward, terminated, truncated, info = inner
        done = terminated | truncated
        ret = state.episode_return + reward
        length = state.episode_length + 1
        new_state = EpisodeStatisticsState(
            env_state=env_state,
            episode_return=jnp.where(done, 0.0, ret),
            episode_length=jnp.where(done, 0, length),
            returned_episode_return=jnp.where(done, ret, state.returned_episode_return),
            returned_episode_length=jnp.where(done, length, state.returned_episode_length),
        )
        info = {
            **info,
            "episode_return": new_state.returned_episode_return,
            "episode_length": new_state.returned_episode_length,
            "episode_done": done,
        }
        return obs, new_state, reward, terminated, truncated, info


# --------------------------------------------------------------------------- vectorisation


class VectorEnv(Wrapper):
    """``num_envs`` copies of ``env`` under ``vmap``; ``params`` are shared, not batched.

    Spaces stay those of a single env; observations, rewards, flags, info and state gain a
    leading axis of size ``num_envs``.

    Optimistic resets, for an env that declares ``optimistic_reset_ratio = r`` (Craftax:
    16, as in the Craftax baselines' PPO; every other env: ``None``, which steps exactly
    as the per-env path always did). A batch step then steps every env with
    ``step_without_reset``, from the same per-env keys as ``step`` would use, so
    transitions, rewards, ``terminated`` / ``truncated`` and ``info["final_observation"]``
    are those of the per-env path. Instead of one reset per env per step (under ``vmap``
    every env computes its reset, done or not), it generates ``num_starts =
    ceil(num_envs / r)`` fresh start states (``fresh_starts``) and hands them to the envs
    that are done: the k-th done env, in env order, takes start ``k mod num_starts``
    (``start_assignment``). While at most ``num_starts`` envs end together each gets a
    start of its own; when more do, some done envs share one start state (the same
    world, which then diverges under each env's own keys and actions). That is the
    optimistic trade-off of Craftax's ``OptimisticResetVecEnvWrapper``: a little
    start-state diversity for not generating a world per env per step (Craftax draws at
    random which done envs get a start of their own; here env order decides, which needs
    no key and spreads the sharing evenly over the starts). With ``r = 1``
    every done env gets its own fresh start, as on the per-env path (drawn from other
    keys). ``reset`` always starts every env from its own state.
    """

    def __init__(self, env: Environment, num_envs: int):
        super().__init__(env)
        self.num_envs = int(num_envs)
        ratio = env.optimistic_reset_ratio
        if ratio is not None and ratio < 1:
            raise ValueError(f"{env.id}: optimistic_reset_ratio must be >= 1, got {ratio}")
        self.reset_ratio = ratio
        # Fresh start states per batch step (the ceiling of num_envs / ratio); None: every
        # env resets inside its own step.
        self.num_starts = None if ratio is None else (self.num_envs + ratio - 1) // ratio

    def reset(self, key: Array, params: PyTree) -> tuple[Array, PyTree]:
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self.env.reset, in_axes=(0, None))(keys, params)

    def step(self, key: Array, state: PyTree, action: Array, params: PyTree) -> StepResult:
        keys = jax.random.split(key, self.num_envs)
        if self.num_starts is None:
            return jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)
        obs, stepped, reward, terminated, truncated, info = jax.vmap(
            self.env.step_without_reset, in_axes=(0, 0, 0, None)
        )(keys, state, action, params)
        done = terminated | truncated
        index = start_assignment(done, self.num_starts)
        start = jax.tree.map(lambda x: x[index], self.fresh_starts(key, params))
        next_obs, next_state = jax.vmap(self.env.restart)(done, start, (obs, stepped))
        info = {**info, "final_observation": obs}
        return next_obs, next_state, reward, terminated, truncated, info

    def fresh_starts(self, key: Array, params: PyTree) -> tuple[PyTree, PyTree]:
        """The ``num_starts`` start states (leading axis) that the batch step with ``key``
        hands to its done envs (optimistic resets only)."""
        if self.num_starts is None:
            raise ValueError(f"{self.env.id} does not declare an optimistic_reset_ratio")
        # fold_in(key, num_envs): a key that none of the envs' steps draws from.
        keys = jax.random.split(jax.random.fold_in(key, self.num_envs), self.num_starts)
        return jax.vmap(self.env.reset, in_axes=(0, None))(keys, params)


def start_assignment(done: Array, num_starts: int) -> Array:
    """Per env, which of ``num_starts`` fresh start states it takes: the k-th done env (in
    env order) takes start ``k mod num_starts``, so done envs share a start only when more
    than ``num_starts`` end together; envs that are not done get 0 (and do not use it)."""
    rank = jnp.cumsum(done, dtype=jnp.int32) - 1
    return jnp.where(done, rank % num_starts, 0)


# --------------------------------------------------------------------------- running statistics


@struct.dataclass
class RunningMeanStd:
    """Mean and (population) variance of everything seen so far, and how many samples."""

    mean: Array
    var: Array
    count: Array


def init_running_stats(shape: tuple[int, ...]) -> RunningMeanStd:
    """Empty statistics: mean 0, var 1, count 0 (``normalize`` is then the identity)."""
    return RunningMeanStd(
        mean=jnp.zeros(shape, jnp.float32),
        var=jnp.ones(shape, jnp.float32),
        count=jnp.zeros((), jnp.float32),
    )


def update_running_stats(stats: RunningMeanStd, batch: Array) -> RunningMeanStd:
    """Merges a batch (leading axis = samples) into ``stats`` (Chan et al. parallel update).

    A batch with no leading axis (same shape as ``stats.mean``) counts as one sample.
    Starting from ``init_running_stats`` (count 0), the result is exactly the mean and
    variance of all batches concatenated.
    """
    batch = jnp.asarray(batch, jnp.float32)
    if batch.ndim == stats.mean.ndim:
        batch = batch[None]
    batch = batch.reshape((-1, *stats.mean.shape))
    n = jnp.asarray(batch.shape[0], jnp.float32)
    batch_mean = batch.mean(axis=0)
    batch_var = batch.var(axis=0)
    delta = batch_mean - stats.mean
    total = stats.count + n
    mean = stats.mean + delta * n / total
    m2 = stats.var * stats.count + batch_var * n + delta**2 * stats.count * n / total
    return RunningMeanStd(mean=mean, var=m2 / total, count=total)


def normalize(stats: RunningMeanStd, x: Array, clip: float = 10.0, eps: float = 1e-8) -> Array:
    """``(x - mean) / sqrt(var + eps)``, clipped to ``[-clip, clip]``."""
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + eps), -clip, clip)


# --------------------------------------------------------------------------- normalisation

# Statistics of a pytree observation: one ``RunningMeanStd`` per normalised entry, keyed by
# the entry's name (nested entries: "outer/inner"). Bool entries (action masks) are left
# out and pass through unchanged; numeric entries (integer ones too) come out float32.
ObservationStats = RunningMeanStd | dict[str, RunningMeanStd]


def _normalised_entries(space: Space, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Name -> shape of every non-bool entry of a ``Dict`` observation space."""
    entries: dict[str, tuple[int, ...]] = {}
    for name, sub in space.spaces:
        if isinstance(sub, Dict):
            entries.update(_normalised_entries(sub, f"{prefix}{name}/"))
        elif not isinstance(sub, Bool):
            entries[f"{prefix}{name}"] = tuple(sub.shape)
    return entries


def init_observation_stats(space: Space) -> ObservationStats:
    """Empty statistics for observations of ``space`` (an array or a ``Dict`` space)."""
    if isinstance(space, Dict):
        return {n: init_running_stats(shape) for n, shape in _normalised_entries(space).items()}
    return init_running_stats(space.shape)


def _map_entries(fn, stats: dict[str, RunningMeanStd], obs: PyTree, prefix: str = "") -> PyTree:
    """``fn(stats[name], entry)`` for every entry of a (nested) mapping with statistics;
    the other entries stay as they are."""
    out = {}
    for name in obs:
        path = f"{prefix}{name}"
        if isinstance(obs[name], Mapping):
            out[name] = _map_entries(fn, stats, obs[name], f"{path}/")
        else:
            out[name] = fn(stats[path], obs[name]) if path in stats else obs[name]
    return TreeObservation(out) if isinstance(obs, TreeObservation) else out


def _entry(obs: PyTree, path: str) -> Array:
    for name in path.split("/"):
        obs = obs[name]
    return obs


def update_observation_stats(stats: ObservationStats, obs: PyTree) -> ObservationStats:
    """``update_running_stats`` per normalised entry (a batch of observations)."""
    if isinstance(stats, RunningMeanStd):
        return update_running_stats(stats, obs)
    return {n: update_running_stats(s, _entry(obs, n)) for n, s in stats.items()}


def normalize_observation(stats: ObservationStats, obs: PyTree, clip: float = 10.0) -> PyTree:
    """``normalize`` an array observation, or every normalised entry of a pytree one."""
    if isinstance(stats, RunningMeanStd):
        return normalize(stats, obs, clip)
    return _map_entries(lambda s, x: normalize(s, x, clip), stats, obs)


@struct.dataclass
class NormalizeObservationState:
    env_state: PyTree
    obs_stats: ObservationStats


class NormalizeObservation(Wrapper):
    """Normalises observations with running statistics kept in the state.

    Meant to sit outside ``VectorEnv`` (one set of statistics over all envs); an unbatched
    env works too. Every reset/step first merges the returned observations into the
    statistics, then normalises ``obs`` and ``info["final_observation"]`` with them.
    Pytree observations: each non-bool entry has its own statistics; bool entries (action
    masks) pass through.
    """

    def __init__(self, env: Environment, clip: float = 10.0):
        super().__init__(env)
        self.clip = float(clip)

    def reset(self, key: Array, params: PyTree) -> tuple[PyTree, NormalizeObservationState]:
        obs, env_state = self.env.reset(key, params)
        stats = init_observation_stats(self.env.observation_space(params))
        stats = update_observation_stats(stats, obs)
        obs = normalize_observation(stats, obs, self.clip)
        return obs, NormalizeObservationState(env_state, stats)

    def step(
        self, key: Array, state: NormalizeObservationState, action: Array, params: PyTree
    ) -> StepResult:
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action, params
        )
        stats = update_observation_stats(state.obs_stats, obs)
        final = normalize_observation(stats, info["final_observation"], self.clip)
        info = {**info, "final_observation": final}
        obs = normalize_observation(stats, obs, self.clip)
        return obs, NormalizeObservationState(env_state, stats), reward, terminated, truncated, info


def observation_statistics(env_state: PyTree) -> ObservationStats | None:
    """The observation statistics of the outermost ``NormalizeObservation`` in a wrapper
    state, or ``None`` if there is none (e.g. to normalise an evaluation env's obs)."""
    while env_state is not None:
        if isinstance(env_state, NormalizeObservationState):
            return env_state.obs_stats
        env_state = getattr(env_state, "env_state", None)
    return None


@struct.dataclass
class NormalizeRewardState:
    env_state: PyTree
    return_stats: RunningMeanStd  # statistics of the discounted return (scalar)
    discounted_return: Array  # per env
    gamma: Array  # the discount of that return: an agent sets its own (a swept one too)


class NormalizeReward(Wrapper):
    """Divides rewards by the running std of the discounted return, then clips.

    Per env, ``G = gamma * G + r`` each step (``G`` restarts at 0 after an episode ends);
    the statistics of ``G`` are updated with every step's batch of ``G`` and the reward is
    scaled by ``1 / sqrt(var + eps)`` (not centred). Meant to sit outside ``VectorEnv``.
    ``gamma`` is kept in the state: an agent whose discount is traced (swept per config)
    replaces it after ``reset`` with ``state.replace(gamma=cfg.gamma)``.
    """

    def __init__(
        self, env: Environment, gamma: float = 0.99, clip: float = 10.0, eps: float = 1e-8
    ):
        super().__init__(env)
        self.gamma = float(gamma)
        self.clip = float(clip)
        self.eps = float(eps)

    def reset(self, key: Array, params: PyTree) -> tuple[Array, NormalizeRewardState]:
        obs, env_state = self.env.reset(key, params)
        shape = _batch_shape(self.env, obs, params)
        state = NormalizeRewardState(
            env_state,
            init_running_stats(()),
            jnp.zeros(shape, jnp.float32),
            jnp.asarray(self.gamma, jnp.float32),
        )
        return obs, state

    def step(
        self, key: Array, state: NormalizeRewardState, action: Array, params: PyTree
    ) -> StepResult:
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action, params
        )
        ret = state.gamma * state.discounted_return + reward
        stats = update_running_stats(state.return_stats, ret)
        scaled = jnp.clip(reward / jnp.sqrt(stats.var + self.eps), -self.clip, self.clip)
        ret = jnp.where(terminated | truncated, 0.0, ret)
        new_state = NormalizeRewardState(env_state, stats, ret, state.gamma)
        return obs, new_state, scaled.astype(jnp.float32), terminated, truncated, info


# --------------------------------------------------------------------------- actions


def _inner_box(env: Environment, params: PyTree, wrapper: str) -> Box:
    space: Space = env.action_space(params)
    if not isinstance(space, Box):
        raise TypeError(f"{wrapper} needs a Box action space, got {space}")
    return space


class ClipAction(Wrapper):
    """Clips continuous actions to the action space's bounds before stepping."""

    def __init__(self, env: Environment):
        super().__init__(env)
        _inner_box(env, env.default_params, "ClipAction")

    def step(self, key: Array, state: PyTree, action: Array, params: PyTree) -> StepResult:
        box = _inner_box(self.env, params, "ClipAction")
        return self.env.step(key, state, jnp.clip(action, box.low, box.high), params)


class RescaleAction(Wrapper):
    """Exposes ``Box(low, high)`` actions and maps them affinely onto the inner bounds."""

    def __init__(self, env: Environment, low: float = -1.0, high: float = 1.0):
        super().__init__(env)
        if not low < high:
            raise ValueError(f"RescaleAction needs low < high, got {low}, {high}")
        if not _inner_box(env, env.default_params, "RescaleAction").bounded:
            raise ValueError("RescaleAction needs a bounded inner action space")
        self.low = float(low)
        self.high = float(high)

    def action_space(self, params: PyTree) -> Box:
        inner = _inner_box(self.env, params, "RescaleAction")
        return Box(self.low, self.high, inner.shape)

    def step(self, key: Array, state: PyTree, action: Array, params: PyTree) -> StepResult:
        inner = _inner_box(self.env, params, "RescaleAction")
        frac = (action - self.low) / (self.high - self.low)
        inner_action = inner.low + frac * (inner.high - inner.low)
        return self.env.step(key, state, inner_action.astype(jnp.float32), params)


def has_joint_mask(env: Environment, params: PyTree) -> bool:
    """A ``MultiDiscrete(nvec)`` env whose action mask flags whole action vectors (shape
    ``nvec``: Jumanji's Tetris, Minesweeper, Sudoku, FlatPack)."""
    space, obs_space = env.action_space(params), env.observation_space(params)
    if not isinstance(space, MultiDiscrete) or len(space.nvec) < 2:
        return False
    mask = dict(obs_space.spaces).get(ACTION_MASK) if isinstance(obs_space, Dict) else None
    return mask is not None and tuple(mask.shape) == tuple(space.nvec)


class FlattenActions(Wrapper):
    """``MultiDiscrete(nvec)`` actions as one ``Discrete(prod(nvec))``, row-major.

    Action ``a`` steps the inner env with ``unravel_index(a, nvec)``. A joint action mask
    (shape ``nvec``) becomes a flat one (``prod(nvec),``), in the observation and in
    ``info["final_observation"]``, so that a masked categorical policy respects it
    exactly; independent per-entry categoricals cannot (``nets.check_entry_mask``).
    """

    def __init__(self, env: Environment):
        super().__init__(env)
        space = env.action_space(env.default_params)
        if not isinstance(space, MultiDiscrete):
            raise TypeError(f"FlattenActions needs a MultiDiscrete action space, got {space}")
        self.nvec = tuple(int(n) for n in space.nvec)
        self.joint_mask = has_joint_mask(env, env.default_params)

    def action_space(self, params: PyTree) -> Discrete:
        return Discrete(int(np.prod(self.nvec)))

    def observation_space(self, params: PyTree) -> Space:
        space = self.env.observation_space(params)
        if not self.joint_mask:
            return space
        flat = Bool((int(np.prod(self.nvec)),))
        return Dict({k: flat if k == ACTION_MASK else v for k, v in space.spaces})

    def _flat_mask(self, obs: PyTree) -> PyTree:
        if not self.joint_mask:
            return obs
        items = dict(obs)
        mask = items[ACTION_MASK]
        items[ACTION_MASK] = mask.reshape((*mask.shape[: mask.ndim - len(self.nvec)], -1))
        return TreeObservation(items)

    def reset(self, key: Array, params: PyTree) -> tuple[PyTree, PyTree]:
        obs, state = self.env.reset(key, params)
        return self._flat_mask(obs), state

    def step(self, key: Array, state: PyTree, action: Array, params: PyTree) -> StepResult:
        vector = jnp.stack(jnp.unravel_index(action, self.nvec), axis=-1).astype(jnp.int32)
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, vector, params)
        if "final_observation" in info:
            info = {**info, "final_observation": self._flat_mask(info["final_observation"])}
        return self._flat_mask(obs), state, reward, terminated, truncated, info
