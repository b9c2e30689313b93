"""A replay buffer that lives in the training state: fixed-size ring, uniform sampling, n-step.

    buffer = ReplayBuffer(capacity=100_000, num_envs=8)
    replay = buffer.init(example_transition)          # a pytree: part of the agent's state
    replay = buffer.add(replay, transitions)          # leaves [num_envs, ...], one env step
    batch = buffer.sample(replay, key, 256, n_step=3, gamma=0.99)

Storage is time-major per env (flashbax's trajectory layout, leaves ``[num_envs,
capacity // num_envs, ...]``), so consecutive rows of one env are consecutive env steps and
n-step returns can be read from a sampled window. A transition is a dict with
``observations``, ``actions``, ``rewards``, ``terminated``, ``truncated`` and
``next_observations`` (where the step really led: the final observation on an episode
end, not the next episode's first one).

Two backends with the same state layout and the same sampling rule: ``"flashbax"``
(``flashbax.make_trajectory_buffer``, the default) and ``"ring"`` (the same ring written
here with one ``dynamic_update_slice`` per add). Both are pure, jittable and vmappable
over seeds; ``experiments/offline_replay_speed.py`` measures them against each other.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flashbax
import jax
import jax.numpy as jnp
from flax import struct

PyTree = Any

BACKENDS = ("flashbax", "ring")
TRANSITION_KEYS = (
    "observations",
    "actions",
    "rewards",
    "terminated",
    "truncated",
    "next_observations",
)


@struct.dataclass
class RingState:
    """The ``"ring"`` backend's state, field for field like flashbax's."""

    experience: PyTree  # leaves [num_envs, rows, ...]
    current_index: jax.Array  # the row the next add writes
    is_full: jax.Array  # every row holds data (the ring has wrapped)


@dataclasses.dataclass(frozen=True)
class ReplayBuffer:
    """Static description of a buffer; its contents are the pytree ``init`` returns.

    ``capacity`` counts transitions over all envs; each env keeps ``capacity // num_envs``
    of its most recent steps.
    """

    capacity: int
    num_envs: int = 1
    backend: str = "flashbax"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown replay backend {self.backend!r}; one of {BACKENDS}")
        if self.num_envs < 1 or self.rows < 2:
            raise ValueError(
                f"a replay buffer of capacity {self.capacity} over {self.num_envs} envs keeps "
                f"{self.rows} steps per env; it needs at least 2 (raise the capacity)."
            )

    @property
    def rows(self) -> int:
        return self.capacity // max(self.num_envs, 1)

    @functools.cached_property
    def _flashbax(self):
        return flashbax.make_trajectory_buffer(
            add_batch_size=self.num_envs,
            sample_batch_size=1,  # unused: sampling is ours, shared by both backends
            sample_sequence_length=1,
            period=1,
            min_length_time_axis=1,
            max_length_time_axis=self.rows,
        )

    def init(self, example: PyTree) -> PyTree:
        """An empty buffer for transitions shaped like ``example`` (one transition, no env axis)."""
        if self.backend == "flashbax":
            return self._flashbax.init(example)
        experience = jax.tree.map(
            lambda x: jnp.zeros((self.num_envs, self.rows, *jnp.shape(x)), jnp.asarray(x).dtype),
            example,
        )
        return RingState(experience, jnp.zeros((), jnp.int32), jnp.zeros((), bool))

    def add(self, state: PyTree, transitions: PyTree) -> PyTree:
        """Append one step of every env (leaves ``[num_envs, ...]``), overwriting the oldest."""
        if self.backend == "flashbax":
            return self._flashbax.add(state, jax.tree.map(lambda x: x[:, None], transitions))
        index = state.current_index
        experience = jax.tree.map(
            lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x.astype(buf.dtype), index, 1),
            state.experience,
            transitions,
        )
        next_index = index + 1
        return state.replace(
            experience=experience,
            current_index=next_index % self.rows,
            is_full=state.is_full | (next_index >= self.rows),
        )

    def size(self, state: PyTree) -> jax.Array:
        """Transitions stored, over all envs."""
        rows = jnp.where(state.is_full, self.rows, state.current_index)
        return rows * self.num_envs

    def sample(
        self,
        state: PyTree,
        key: jax.Array,
        batch_size: int,
        n_step: int = 1,
        gamma: float | jax.Array = 0.99,
    ) -> dict[str, jax.Array]:
        """``batch_size`` transitions drawn uniformly with replacement (needs ``n_step`` rows).

        Returns ``observations``, ``actions``, ``rewards`` (the n-step discounted return,
        cut at the first episode end), ``next_observations`` (where the last counted step
        led) and ``discounts`` (``gamma ** steps`` counted, 0 after a termination; a
        truncation bootstraps). With ``n_step=1`` this is the plain one-step transition.
        """
        window = sample_windows(state, key, batch_size, n_step, self.rows)
        return n_step_transition(window, gamma)


def sample_windows(
    state: PyTree, key: jax.Array, batch_size: int, length: int, rows: int
) -> PyTree:
    """Windows of ``length`` consecutive steps of one env, uniform over the valid starts.

    A window never crosses the write position (its steps are one env's consecutive steps).
    Leaves come back ``[batch_size, length, ...]``.
    """
    num_envs = jax.tree.leaves(state.experience)[0].shape[0]
    filled = jnp.where(state.is_full, rows, state.current_index)
    oldest = jnp.where(state.is_full, state.current_index, 0)
    num_starts = jnp.maximum(filled - length + 1, 1)
    start_key, env_key = jax.random.split(key)
    start = jax.random.randint(start_key, (batch_size,), 0, num_starts)
    env = jax.random.randint(env_key, (batch_size,), 0, num_envs)
    time = (oldest + start[:, None] + jnp.arange(length)) % rows
    return jax.tree.map(lambda x: x[env[:, None], time], state.experience)


def n_step_transition(window: dict[str, jax.Array], gamma: float | jax.Array) -> dict:
    """Collapse windows ``[B, n, ...]`` of consecutive steps into n-step transitions."""
    done = (window["terminated"] | window["truncated"]).astype(jnp.float32)
    # alive[k] = 1 while no earlier step of the window ended an episode.
    alive = jnp.cumprod(jnp.concatenate([jnp.ones_like(done[:, :1]), 1.0 - done[:, :-1]], 1), 1)
    n = done.shape[1]
    powers = jnp.asarray(gamma, jnp.float32) ** jnp.arange(n, dtype=jnp.float32)
    rewards = jnp.sum(alive * powers * window["rewards"], axis=1)
    counted = alive.sum(axis=1).astype(jnp.int32)  # steps up to and including the first end
    last = counted - 1
    rows = jnp.arange(done.shape[0])
    terminated = window["terminated"][rows, last].astype(jnp.float32)
    discounts = jnp.asarray(gamma, jnp.float32) ** counted.astype(jnp.float32) * (1 - terminated)
    return {
        "observations": window["observations"][:, 0],
        "actions": window["actions"][:, 0],
        "rewards": rewards,
        "next_observations": window["next_observations"][rows, last],
        "discounts": discounts,
    }


def rollout_into_replay(
    env: Any,
    env_params: Any,
    buffer: ReplayBuffer,
    policy: Any,
    carry: tuple[Any, jax.Array, PyTree],
    key: jax.Array,
    num_steps: int,
) -> tuple[tuple[Any, jax.Array, PyTree], dict[str, jax.Array]]:
    """``num_steps`` steps of a vectorised ``env`` (with ``EpisodeStatistics``), each added.

    ``policy(obs, key) -> (env_action, stored_action)``: the first steps the env, the second
    goes into the buffer (e.g. the unit-box action an actor produced). ``carry`` is
    ``(env_state, obs, replay)``. Returns the new carry and the ``rollout/`` metrics.
    """

    def step(inner, step_key):
        env_state, obs, replay = inner
        act_key, env_key = jax.random.split(step_key)
        env_action, stored_action = policy(obs, act_key)
        next_obs, env_state, reward, terminated, truncated, info = env.step(
            env_key, env_state, env_action, env_params
        )
        transition = {
            "observations": obs,
            "actions": stored_action,
            "rewards": reward.astype(jnp.float32),
            "terminated": terminated,
            "truncated": truncated,
            "next_observations": info["final_observation"],
        }
        replay = buffer.add(replay, transition)
        episode = (info["episode_return"], info["episode_length"], info["episode_done"])
        return (env_state, next_obs, replay), episode

    carry, (returns, lengths, done) = jax.lax.scan(step, carry, jax.random.split(key, num_steps))
    stats = {
        "rollout/episode_return": returns[-1].mean(),
        "rollout/episode_length": lengths[-1].astype(jnp.float32).mean(),
        "rollout/episodes_completed": done.sum(),
    }
    return carry, stats
