"""Optimistic resets (``VectorEnv`` with an env that declares ``optimistic_reset_ratio``).

The batch logic is checked on a counting env whose reset is cheap and whose episodes end
when the action says so, so that which envs end, and how many, is chosen by the test.
Craftax (the env that declares it) is checked in one compiled program: 2 seeds (``vmap``)
x 4 envs of Craftax-Classic-Symbolic, with the step limit at 3 so that every env is
truncated at once (4 done envs, 2 fresh starts: the shared case), each step taken from
one state both with the optimistic reset (ratio 2) and with the per-env reset.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from rlzoo import envs
from rlzoo.envs import Box, Discrete, Environment, EpisodeStatistics, VectorEnv
from rlzoo.envs.suites import SUITES, split_step_key
from rlzoo.envs.wrappers import start_assignment

pytestmark = pytest.mark.timeout(300)

_FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


# --------------------------------------------------------------------------- counting env

COUNTING_LIMIT = 5


@struct.dataclass
class CountingState:
    start_id: jax.Array  # which start state the episode began from (drawn at reset)
    t: jax.Array  # steps since that start


class CountingEnv(Environment):
    """Observation ``[start_id, t]``; action 1 terminates, ``t == COUNTING_LIMIT`` truncates.
    A reset draws ``start_id`` from its key, so distinct starts have distinct ids."""

    id = "test/counting"

    def __init__(self, optimistic_reset_ratio: int | None):
        self.optimistic_reset_ratio = optimistic_reset_ratio

    def reset(self, key, params):
        state = CountingState(jax.random.randint(key, (), 0, 2**30), jnp.zeros((), jnp.int32))
        return self._obs(state), state

    def step_without_reset(self, key, state, action, params):
        state = state.replace(t=state.t + 1)
        terminated = action == 1
        truncated = (state.t == COUNTING_LIMIT) & ~terminated
        return self._obs(state), state, state.t.astype(jnp.float32), terminated, truncated, {}

    def step(self, key, state, action, params):
        final_obs, stepped, reward, terminated, truncated, _ = self.step_without_reset(
            key, state, action, params
        )
        fresh = self.reset(split_step_key(key)[1], params)
        obs, next_state = self.restart(terminated | truncated, fresh, (final_obs, stepped))
        return obs, next_state, reward, terminated, truncated, {"final_observation": final_obs}

    @staticmethod
    def _obs(state):
        return jnp.stack([state.start_id, state.t]).astype(jnp.float32)

    def observation_space(self, params):
        return Box(-np.inf, np.inf, (2,))

    def action_space(self, params):
        return Discrete(2)


def _counting_step(ratio, num_envs, ends):
    """One batch step of ``num_envs`` counting envs after one step with no end, where
    ``ends`` (bool per env) says which envs end; also the per-env path from the same state
    and the step's fresh starts."""
    key = jax.random.key(0)
    optimistic = VectorEnv(EpisodeStatistics(CountingEnv(ratio)), num_envs)
    per_env = VectorEnv(EpisodeStatistics(CountingEnv(None)), num_envs)
    zeros = jnp.zeros(num_envs, jnp.int32)
    _, state = optimistic.reset(jax.random.key(1), None)
    _, state, *_ = optimistic.step(jax.random.key(2), state, zeros, None)
    action = jnp.asarray(ends, jnp.int32)
    new = optimistic.step(key, state, action, None)
    old = per_env.step(key, state, action, None)
    return new, old, optimistic.fresh_starts(key, None)


def test_start_assignment_hands_out_distinct_starts_until_they_run_out():
    done = jnp.array([True, False, True, True, False, True])
    # 4 done, 2 starts: the k-th done env takes start k mod 2; others take 0 (unused).
    np.testing.assert_array_equal(start_assignment(done, 2), [0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(start_assignment(done, 4), [0, 0, 1, 2, 0, 3])
    np.testing.assert_array_equal(start_assignment(jnp.zeros(3, bool), 1), [0, 0, 0])


def test_optimistic_step_keeps_flags_rewards_and_final_observations_of_the_per_env_step():
    ends = [True, False, True, True, False, True]  # 4 done, ceil(6 / 4) = 2 fresh starts
    new, old, (start_obs, _) = _counting_step(4, 6, ends)
    (obs, state, reward, term, trunc, info), (old_obs, old_state, *old_rest) = new, old
    for a, b in zip((reward, term, trunc), old_rest[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    for name in ("final_observation", "episode_return", "episode_length", "episode_done"):
        np.testing.assert_array_equal(info[name], old_rest[3][name])
    np.testing.assert_array_equal(term, ends)
    done = np.asarray(ends)
    np.testing.assert_array_equal(obs[~done], old_obs[~done])  # no end: the same step
    # Done envs start afresh from the step's starts, shared only because 4 > 2.
    np.testing.assert_array_equal(obs[done], start_obs[np.array([0, 1, 0, 1])])
    assert start_obs[0, 0] != start_obs[1, 0]
    np.testing.assert_array_equal(state.env_state.t[done], 0)
    np.testing.assert_array_equal(state.episode_length, old_state.episode_length)


def test_reset_ratio_one_gives_every_done_env_its_own_fresh_start():
    ends = [True, True, False, True, True]
    (obs, *_), _, (start_obs, _) = _counting_step(1, 5, ends)
    assert start_obs.shape == (5, 2)
    done = np.asarray(ends)
    np.testing.assert_array_equal(obs[done], start_obs[:4])  # starts 0..3, in env order
    assert len(set(obs[done, 0].tolist())) == 4


def test_truncation_restarts_through_the_optimistic_path_too():
    venv = VectorEnv(CountingEnv(2), 3)
    _, state = venv.reset(jax.random.key(0), None)

    def body(state, key):
        obs, state, _, _, trunc, info = venv.step(key, state, jnp.zeros(3, jnp.int32), None)
        return state, (obs, trunc, info["final_observation"])

    keys = jax.random.split(jax.random.key(1), COUNTING_LIMIT + 1)
    _, (obs, trunc, final) = jax.lax.scan(body, state, keys)
    assert trunc[COUNTING_LIMIT - 1].all() and not trunc[:-2].any()
    np.testing.assert_array_equal(final[COUNTING_LIMIT - 1, :, 1], COUNTING_LIMIT)
    np.testing.assert_array_equal(obs[COUNTING_LIMIT - 1, :, 1], 0)  # restarted
    np.testing.assert_array_equal(obs[COUNTING_LIMIT, :, 1], 1)


def test_envs_that_do_not_declare_it_step_exactly_as_before():
    env, params = envs.make("gymnax/CartPole-v1")
    venv = VectorEnv(EpisodeStatistics(env), 4)
    assert venv.reset_ratio is None and venv.num_starts is None
    _, state = venv.reset(jax.random.key(0), params)
    action = jnp.array([0, 1, 0, 1])
    got = venv.step(jax.random.key(1), state, action, params)
    keys = jax.random.split(jax.random.key(1), 4)
    want = jax.vmap(EpisodeStatistics(env).step, in_axes=(0, 0, 0, None))(
        keys, state, action, params
    )
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
    # A wrapper that keeps no rule for its own state does not forward the declaration.
    assert VectorEnv(envs.GroupReset(CountingEnv(2), 2), 3).num_starts is None
    with pytest.raises(ValueError, match="does not declare"):
        venv.fresh_starts(jax.random.key(0), params)
    with pytest.raises(ValueError, match=">= 1"):
        VectorEnv(CountingEnv(0), 3)


# --------------------------------------------------------------------------- Craftax

CRAFTAX_ID = "craftax/Craftax-Classic-Symbolic-v1"
NUM_SEEDS, NUM_ENVS, RATIO = 2, 4, 2
LIMIT = 3  # Craftax's max_timesteps: every env is truncated at step 3 (and 6)
NUM_STEPS = 2 * LIMIT + 1
craftax_installed = pytest.mark.skipif(
    not SUITES["craftax"].installed(), reason="the craftax extra is not installed"
)


def _craftax_rollout(optimistic, per_env, params, key):
    """``NUM_STEPS`` random batch steps on the optimistic path; from each state, the same
    step (same key, same actions) on the per-env path, and that step's fresh starts."""
    num_actions = optimistic.action_space(params).n

    def body(state, key):
        act_key, step_key = jax.random.split(key)
        action = jax.random.randint(act_key, (NUM_ENVS,), 0, num_actions)
        obs, next_state, reward, term, trunc, info = optimistic.step(
            step_key, state, action, params
        )
        old_obs, _, old_reward, old_term, old_trunc, old_info = per_env.step(
            step_key, state, action, params
        )
        start_obs, start_state = optimistic.fresh_starts(step_key, params)
        out = dict(
            obs=obs, reward=reward, terminated=term, truncated=trunc, info=info,
            old_obs=old_obs, old_reward=old_reward, old_terminated=old_term,
            old_truncated=old_trunc, old_info=old_info, start_obs=start_obs,
            map=next_state.env_state.map, start_map=start_state.env_state.map,
            timestep=next_state.env_state.timestep,
        )  # fmt: skip
        return next_state, out

    reset_key, key = jax.random.split(key)
    _, state = optimistic.reset(reset_key, params)
    return jax.lax.scan(body, state, jax.random.split(key, NUM_STEPS))[1]


@pytest.fixture(scope="module")
def craftax_run():
    from rlzoo.envs.craftax_env import CraftaxEnv

    name = CRAFTAX_ID.split("/", 1)[1]
    optimistic = VectorEnv(EpisodeStatistics(CraftaxEnv(name, LIMIT, RATIO)), NUM_ENVS)
    per_env = VectorEnv(EpisodeStatistics(CraftaxEnv(name, LIMIT, None)), NUM_ENVS)
    params = optimistic.default_params
    keys = jax.random.split(jax.random.key(0), NUM_SEEDS)
    start = time.perf_counter()
    run = jax.vmap(lambda k: _craftax_rollout(optimistic, per_env, params, k))
    out = jax.device_get(jax.jit(run).lower(keys).compile(_FAST)(keys))
    print(f"craftax optimistic-reset program: compile + run {time.perf_counter() - start:.1f} s")
    return optimistic, out


@craftax_installed
def test_craftax_declares_the_baselines_ratio_and_ppo_gets_it():
    from rlzoo.envs.craftax_env import DEFAULT_OPTIMISTIC_RESET_RATIO

    env, _ = envs.make(CRAFTAX_ID)
    assert env.optimistic_reset_ratio == DEFAULT_OPTIMISTIC_RESET_RATIO == 16
    # PPO's vector env, VectorEnv(EpisodeStatistics(env), num_envs), reads it.
    venv = VectorEnv(EpisodeStatistics(env), 1024)
    assert (venv.reset_ratio, venv.num_starts) == (16, 64)
    assert VectorEnv(EpisodeStatistics(env), 4).num_starts == 1  # ceil(4 / 16)
    off, _ = envs.make(CRAFTAX_ID, optimistic_reset_ratio=None)
    assert VectorEnv(EpisodeStatistics(off), 1024).num_starts is None


@craftax_installed
def test_craftax_flags_rewards_and_final_observations_match_the_per_env_reset(craftax_run):
    _, out = craftax_run
    done = out["terminated"] | out["truncated"]
    assert out["truncated"][:, LIMIT - 1].all()  # all 4 envs at once: 2 starts shared
    assert done.sum() >= NUM_SEEDS * NUM_ENVS * 2
    for name in ("reward", "terminated", "truncated"):
        np.testing.assert_array_equal(out[name], out[f"old_{name}"], err_msg=name)
    for name in ("final_observation", "episode_return", "episode_length", "episode_done"):
        np.testing.assert_array_equal(out["info"][name], out["old_info"][name], err_msg=name)
    # No end: the step is the same step; an end: the per-env path drew its own world.
    np.testing.assert_array_equal(out["obs"][~done], out["old_obs"][~done])
    assert not np.array_equal(out["obs"][done], out["old_obs"][done])


@craftax_installed
def test_craftax_done_envs_restart_from_one_of_the_steps_fresh_worlds(craftax_run):
    optimistic, out = craftax_run
    assert optimistic.num_starts == NUM_ENVS // RATIO
    done = out["terminated"] | out["truncated"]
    checked = 0
    for s, t in zip(*np.nonzero(done.any(axis=-1)), strict=True):
        index = np.asarray(start_assignment(jnp.asarray(done[s, t]), optimistic.num_starts))
        for e in np.flatnonzero(done[s, t]):
            np.testing.assert_array_equal(out["obs"][s, t, e], out["start_obs"][s, t, index[e]])
            np.testing.assert_array_equal(out["map"][s, t, e], out["start_map"][s, t, index[e]])
            assert out["timestep"][s, t, e] == 0
            checked += 1
    assert checked == done.sum()
    # Two seeds under vmap: two different sets of worlds.
    assert not np.array_equal(out["start_map"][0], out["start_map"][1])


def test_a_bad_reset_ratio_is_refused_and_none_parses_from_the_flag():
    from rlzoo.cli import parse_env_kwargs

    assert parse_env_kwargs("optimistic_reset_ratio=None") == {"optimistic_reset_ratio": None}
    with pytest.raises(ValueError, match="an integer >= 1"):
        envs.make("craftax/Craftax-Classic-Symbolic-v1", optimistic_reset_ratio=0)
