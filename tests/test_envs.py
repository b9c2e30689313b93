"""Tests for rlzoo.envs: adapters (gymnax, Brax), the registry and the wrappers.

Expected values come from numpy references or hand-computed sequences, never from the code
under test. Compiles run with XLA's cheap CPU settings to keep this file fast on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rlzoo.envs as envs
from rlzoo.core.evaluation import episode_limit
from rlzoo.envs import (
    Box,
    ClipAction,
    Environment,
    EpisodeStatistics,
    NormalizeObservation,
    NormalizeReward,
    RescaleAction,
    VectorEnv,
    init_running_stats,
    normalize,
    observation_statistics,
    update_running_stats,
)

pytestmark = pytest.mark.timeout(300)

# Optimised machine code does not matter for a handful of steps; compile time does.
_FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def jit(fn):
    return jax.jit(fn, compiler_options=_FAST)


# --------------------------------------------------------------------------- a toy env


class ToyEnv(Environment):
    """Deterministic env driven entirely by its action ``[reward, end, o1, o2]``.

    Observation after a step is ``[o1, o2]``; ``end > 0.5`` terminates; the episode is
    truncated when ``params`` (max steps) is reached. Reset observation is ``[1, -1]``.
    ``info["action"]`` echoes the action it received (to test action wrappers).
    """

    id = "toy"
    low = np.array([-100.0, 0.0, -100.0, 2.0], np.float32)
    high = np.array([100.0, 1.0, 100.0, 6.0], np.float32)

    @property
    def default_params(self):
        return 1000

    def reset(self, key, params):
        return jnp.array([1.0, -1.0], jnp.float32), jnp.zeros((), jnp.int32)

    def step(self, key, state, action, params):
        t = state + 1
        terminated = action[1] > 0.5
        truncated = (t >= params) & ~terminated
        done = terminated | truncated
        stepped = action[2:4].astype(jnp.float32)
        reset_obs, _ = self.reset(key, params)
        obs = jnp.where(done, reset_obs, stepped)
        info = {"final_observation": stepped, "action": action}
        return obs, jnp.where(done, 0, t), action[0], terminated, truncated, info

    def observation_space(self, params):
        return Box(-np.inf, np.inf, (2,))

    def action_space(self, params):
        return Box(self.low, self.high, (4,))


def rollout(env, params, actions, seed=0):
    """Reset, then step through ``actions`` (leading axis = time) under one jit."""

    @jit
    def run(key, actions):
        obs, state = env.reset(key, params)

        def body(state, xs):
            k, a = xs
            obs, state, reward, term, trunc, info = env.step(k, state, a, params)
            return state, (obs, reward, term, trunc, info)

        keys = jax.random.split(key, actions.shape[0])
        state, out = jax.lax.scan(body, state, (keys, actions))
        return obs, state, out

    return jax.device_get(run(jax.random.key(seed), jnp.asarray(actions)))


# --------------------------------------------------------------------------- registry


def test_registered_ids_cover_every_backend():
    import brax.envs

    from rlzoo.envs.tokens import token_names

    ids = envs.registered_ids()
    assert {f"gymnax/{n}" for n in gymnax.registered_envs} <= set(ids)
    assert {f"brax/{n}" for n in brax.envs._envs} <= set(ids)
    assert {f"tokens/{n}" for n in token_names()} <= set(ids)
    built_in = [i for i in ids if i.split("/", 1)[0] in ("gymnax", "brax", "tokens")]
    expected = len(gymnax.registered_envs) + len(brax.envs._envs) + len(token_names())
    assert len(ids) == len(set(ids)) and len(built_in) == expected  # others: envs.register
    assert sorted(envs.BRAX_NAMES) == sorted(brax.envs._envs)  # the list written out


def test_an_unknown_env_id_is_answered_without_importing_brax():
    script = (
        "import sys\nfrom rlzoo import envs\ntry:\n    envs.make('gymnax/CartPol')\n"
        "except ValueError as e:\n    assert 'hopper' in str(e), e\n"
        "assert 'brax' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_a_gymnax_run_defers_the_plotting_stack_until_something_draws():
    script = (
        "import sys\nfrom rlzoo import envs\nenvs.make('gymnax/Pong-misc')\n"
        "heavy = ('scipy.stats', 'pandas', 'seaborn.palettes', 'matplotlib.figure')\n"
        "loaded = [m for m in heavy if m in sys.modules]\nassert not loaded, loaded\n"
        # gymnax's own references still reach the real modules when it renders.
        "import gymnax.environments.misc.pong as pong\n"
        "assert pong.sns.color_palette('Set1', 3) and callable(pong.plt.subplots)\n"
        "import seaborn\nassert 'scipy.stats' in sys.modules and hasattr(seaborn, 'heatmap')"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


@pytest.mark.parametrize(
    ("bad_id", "suggestion"),
    [
        ("gymnax/CartPole-v2", "gymnax/CartPole-v1"),
        ("CartPole-v1", "gymnax/CartPole-v1"),
        ("brax/hoper", "brax/hopper"),
        ("gym/Acrobot-v1", "gymnax/Acrobot-v1"),
    ],
)
def test_unknown_id_lists_close_matches_and_known_ids(bad_id, suggestion):
    with pytest.raises(ValueError) as err:
        envs.make(bad_id)
    msg = str(err.value)
    assert repr(bad_id) in msg
    head, known = msg.split("Known ids", 1)
    assert "did you mean" in head and repr(suggestion) in head
    assert "Breakout-MinAtar" in known and "humanoid" in known


# --------------------------------------------------------------------------- gymnax


def _fake_mnist(directory="/tmp/mnist"):
    # int8 like gymnax's parser: -1 is the byte 255 (white), 127 is 127.
    images = np.zeros((8, 28, 28), np.int8)
    images[:, 0, 0] = -1
    images[:, 5, 5] = 127
    labels = np.arange(8, dtype=np.uint8)
    return (images, labels), (images, labels)


@pytest.mark.parametrize("name", gymnax.registered_envs)
def test_gymnax_env_resets_and_steps_under_jit(name, monkeypatch):
    if name == "MNISTBandit-bsuite":  # would download MNIST; the adapter only needs arrays
        import gymnax.utils.load_mnist

        monkeypatch.setattr(gymnax.utils.load_mnist, "load_mnist", _fake_mnist)
    env, params = envs.make(f"gymnax/{name}")
    assert env.id == f"gymnax/{name}"
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    assert isinstance(obs_space, Box)

    @jit
    def run(key):
        k1, k2, k3 = jax.random.split(key, 3)
        obs, state = env.reset(k1, params)
        action = act_space.sample(k2)
        out = env.step(k3, state, action, params)
        return obs, action, out, obs_space.contains(obs), act_space.contains(action)

    obs, action, (obs2, _, reward, term, trunc, info), obs_ok, act_ok = run(jax.random.key(1))
    assert action.shape == act_space.shape
    for o in (obs, obs2, info["final_observation"]):
        assert o.shape == obs_space.shape and o.dtype == jnp.float32
        assert np.all(np.isfinite(o))
    assert bool(obs_ok) and bool(act_ok)
    assert reward.shape == () and reward.dtype == jnp.float32
    assert term.dtype == jnp.bool_ and trunc.dtype == jnp.bool_
    assert not (bool(term) and bool(trunc))
    if name == "MNISTBandit-bsuite":
        assert float(obs.max()) == 1.0 and float(obs.min()) == 0.0  # 255 / 255, not -1 / 255
    if name == "FrozenLake-misc":  # Discrete(16) observation, one-hot encoded
        assert obs.shape == (16,) and float(obs.sum()) == 1.0


def test_gymnax_truncation_is_separate_from_termination():
    env, params = envs.make("gymnax/CartPole-v1")

    @jit
    def run(key, params, actions):
        obs, state = env.reset(key, params)

        def body(state, xs):
            k, a = xs
            obs, state, _, term, trunc, info = env.step(k, state, a, params)
            return state, (obs, term, trunc, info["final_observation"])

        keys = jax.random.split(key, actions.shape[0])
        return obs, jax.lax.scan(body, state, (keys, actions))[1]

    # Time limit of 3 steps, balanced actions: truncated at steps 3 and 6, never terminated.
    short = params.replace(max_steps_in_episode=3)
    assert episode_limit(env, short) == 3 and episode_limit(env, params) == 500
    actions = jnp.array([0, 1, 0, 1, 0, 1, 0], jnp.int32)
    reset_obs, (obs, term, trunc, final) = run(jax.random.key(0), short, actions)
    np.testing.assert_array_equal(trunc, [0, 0, 1, 0, 0, 1, 0])
    assert not term.any()
    for t in range(7):
        if trunc[t]:
            assert not np.allclose(final[t], obs[t])  # final obs of the old episode
            assert np.all(np.abs(obs[t]) <= 0.05)  # CartPole resets to U(-0.05, 0.05)
        else:
            np.testing.assert_array_equal(final[t], obs[t])
    assert not np.allclose(final[2], reset_obs)

    # Always pushing right makes the pole fall: terminated, not truncated.
    _, (obs, term, trunc, final) = run(jax.random.key(0), params, jnp.ones(40, jnp.int32))
    assert term.any() and not trunc.any()
    t = int(np.argmax(term))
    assert abs(final[t][2]) > 0.2094 or abs(final[t][0]) > 2.4  # outside CartPole's limits
    assert np.all(np.abs(obs[t]) <= 0.05)


def test_gymnax_terminal_step_at_time_limit_is_terminated_only():
    # DeepSea (size 8) always ends after 8 steps, where gymnax flags both the terminal state
    # and the time limit; a terminal state must not be reported as a truncation.
    env, params = envs.make("gymnax/DeepSea-bsuite")
    _, _, (_, _, term, trunc, _) = rollout(env, params, jnp.zeros(9, jnp.int32))
    np.testing.assert_array_equal(term, [0] * 7 + [1, 0])
    assert not trunc.any()


# --------------------------------------------------------------------------- brax


def test_brax_inverted_pendulum_truncates_and_terminates_separately():
    env, params = envs.make("brax/inverted_pendulum", backend="positional", episode_length=5)
    assert env.id == "brax/inverted_pendulum"
    assert env.observation_space(params).shape == (4,)
    assert env.action_space(params) == Box(-1.0, 1.0, (1,))
    assert episode_limit(env, params) == 5

    reset = jit(env.reset)

    @jit
    def run(key, state, actions):
        def body(state, xs):
            k, a = xs
            obs, state, reward, term, trunc, info = env.step(k, state, a, params)
            return state, (obs, reward, term, trunc, info["final_observation"], state.time)

        keys = jax.random.split(key, actions.shape[0])
        return jax.lax.scan(body, state, (keys, actions))[1]

    reset_obs, state = reset(jax.random.key(0), params)
    assert reset_obs.dtype == jnp.float32 and reset_obs.shape == (4,)

    # No force: the pendulum stays up for 5 steps, so the episode is truncated at step 5.
    obs, reward, term, trunc, final, time = run(jax.random.key(1), state, jnp.zeros((7, 1)))
    np.testing.assert_array_equal(trunc, [0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(time, [1, 2, 3, 4, 0, 1, 2])
    assert not term.any()
    assert reward.dtype == np.float32 and np.all(reward == 1.0)
    assert not np.allclose(final[4], obs[4])
    np.testing.assert_array_equal(final[:4], obs[:4])
    assert np.all(np.abs(obs[4]) <= 0.011)  # fresh episode: brax resets within +-0.01

    # Full force with a long time budget (time starts at -20; same compiled function): the
    # pole passes the 0.2 rad limit, which is a termination, not a truncation.
    long_state = state.replace(time=jnp.asarray(-20, jnp.int32))
    obs, reward, term, trunc, final, time = run(jax.random.key(1), long_state, jnp.ones((7, 1)))
    assert term.any() and not trunc.any()
    t = int(np.argmax(term))
    assert abs(final[t][1]) > 0.2 and np.all(np.abs(obs[t]) <= 0.011) and time[t] == 0


def test_brax_action_repeat_sums_reward_and_counts_physics_steps():
    # "fast": vel += dt * (action > 0); pos += dt * vel; reward = pos; obs = [pos, vel].
    env, _ = envs.make("brax/fast", episode_length=6, action_repeat=3)
    obs0, state = jit(env.reset)(jax.random.key(0), None)
    step = jit(env.step)
    obs1, state, r1, term1, trunc1, _ = step(jax.random.key(1), state, jnp.ones(1), None)
    obs2, state, r2, term2, trunc2, info2 = step(jax.random.key(2), state, jnp.ones(1), None)

    dt, pos, vel, rewards, states = 0.02, 0.0, 0.0, [], []
    for _ in range(6):
        vel += dt
        pos += dt * vel
        rewards.append(pos)
        states.append([pos, vel])
    np.testing.assert_allclose(obs0, [0.0, 0.0])
    np.testing.assert_allclose(obs1, states[2], rtol=1e-5)
    np.testing.assert_allclose(r1, sum(rewards[:3]), rtol=1e-5)
    np.testing.assert_allclose(r2, sum(rewards[3:]), rtol=1e-5)
    assert not trunc1 and trunc2 and not term1 and not term2  # 6 physics steps = limit
    assert episode_limit(env, None) == 2  # the evaluator's cap counts env steps
    np.testing.assert_allclose(info2["final_observation"], states[5], rtol=1e-5)
    np.testing.assert_allclose(obs2, [0.0, 0.0])
    assert int(state.time) == 0


# --------------------------------------------------------------------------- wrappers


def test_episode_statistics_under_vector_env():
    env = VectorEnv(EpisodeStatistics(ToyEnv()), num_envs=2)
    params = 4  # time limit of 4 steps
    # env 0: rewards 1..6, ends (terminates) after steps 2 and 5.
    # env 1: rewards 10 each, never terminates -> truncated after step 4.
    actions = np.zeros((6, 2, 4), np.float32)
    actions[:, 0, 0] = [1, 2, 3, 4, 5, 6]
    actions[[1, 4], 0, 1] = 1.0
    actions[:, 1, 0] = 10.0
    actions[..., 3] = 2.0  # inside the toy's bounds; irrelevant here
    _, _, (obs, reward, term, trunc, info) = rollout(env, params, actions)
    assert obs.shape == (6, 2, 2)
    np.testing.assert_allclose(reward[:, 0], [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(term[:, 0], [0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(info["episode_done"][:, 0], [0, 1, 0, 0, 1, 0])
    np.testing.assert_allclose(info["episode_return"][:, 0], [0, 3, 3, 3, 12, 12])
    np.testing.assert_array_equal(info["episode_length"][:, 0], [0, 2, 2, 2, 3, 3])
    np.testing.assert_array_equal(info["episode_done"][:, 1], [0, 0, 0, 1, 0, 0])
    np.testing.assert_allclose(info["episode_return"][:, 1], [0, 0, 0, 40, 40, 40])
    np.testing.assert_array_equal(info["episode_length"][:, 1], [0, 0, 0, 4, 4, 4])
    np.testing.assert_array_equal(trunc[:, 1], [0, 0, 0, 1, 0, 0])


def test_running_stats_match_numpy_over_concatenated_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (n, 3)).astype(np.float32) for n in (5, 1, 17, 8)]
    stats = init_running_stats((3,))
    np.testing.assert_allclose(normalize(stats, batches[0]), np.clip(batches[0], -10, 10))
    for b in batches:
        stats = update_running_stats(stats, jnp.asarray(b))
    everything = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, everything.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, everything.var(0), rtol=1e-4)
    assert float(stats.count) == len(everything)
    # An unbatched sample counts as one.
    one = update_running_stats(stats, jnp.asarray(batches[0][0]))
    np.testing.assert_allclose(one.mean, np.concatenate([everything, batches[0][:1]]).mean(0))
    x = rng.normal(size=(4, 3)).astype(np.float32) * 50
    expected = np.clip((x - everything.mean(0)) / np.sqrt(everything.var(0) + 1e-8), -2, 2)
    np.testing.assert_allclose(normalize(stats, x, clip=2.0), expected, rtol=1e-4, atol=1e-5)


def _random_toy_actions(rng, steps, num_envs, end_prob=0.3):
    actions = np.zeros((steps, num_envs, 4), np.float32)
    actions[..., 0] = rng.normal(0.0, 2.0, (steps, num_envs))
    actions[..., 1] = rng.random((steps, num_envs)) < end_prob
    actions[..., 2:] = rng.normal(5.0, 3.0, (steps, num_envs, 2))
    return actions


def test_normalize_observation_matches_numpy_reference():
    n, steps = 3, 5
    env = NormalizeObservation(VectorEnv(ToyEnv(), n), clip=10.0)
    actions = _random_toy_actions(np.random.default_rng(1), steps, n)
    reset_obs, state, (obs, _, term, trunc, info) = rollout(env, 1000, actions)

    def ref_norm(seen, x):
        seen = np.concatenate(seen)
        return np.clip((x - seen.mean(0)) / np.sqrt(seen.var(0) + 1e-8), -10, 10)

    raw_reset = np.tile([1.0, -1.0], (n, 1))
    seen = [raw_reset]
    np.testing.assert_allclose(reset_obs, ref_norm(seen, raw_reset), atol=1e-5)
    for t in range(steps):
        raw_final = actions[t, :, 2:]
        raw_obs = np.where((term[t] | trunc[t])[:, None], raw_reset, raw_final)
        seen.append(raw_obs)
        np.testing.assert_allclose(obs[t], ref_norm(seen, raw_obs), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            info["final_observation"][t], ref_norm(seen, raw_final), rtol=1e-4, atol=1e-4
        )
    assert term.any()  # the reference above exercised the auto-reset branch
    stats = observation_statistics(state)
    assert stats is not None and float(stats.count) == n * (steps + 1)
    np.testing.assert_allclose(stats.mean, np.concatenate(seen).mean(0), rtol=1e-5)


def test_normalize_reward_matches_numpy_reference():
    n, steps, gamma = 4, 12, 0.9
    env = NormalizeReward(VectorEnv(ToyEnv(), n), gamma=gamma, clip=1.5)
    actions = _random_toy_actions(np.random.default_rng(2), steps, n, end_prob=0.2)
    _, _, (_, reward, term, trunc, _) = rollout(env, 5, actions)  # time limit 5

    ret, seen = np.zeros(n), []
    for t in range(steps):
        r = actions[t, :, 0].astype(np.float64)
        ret = gamma * ret + r
        seen.append(ret.copy())
        expected = np.clip(r / np.sqrt(np.var(np.concatenate(seen)) + 1e-8), -1.5, 1.5)
        np.testing.assert_allclose(reward[t], expected, rtol=1e-4, atol=1e-5)
        ret[term[t] | trunc[t]] = 0.0
    assert trunc.any() and term.any()
    assert np.abs(reward).max() == pytest.approx(1.5)  # clipping was exercised


def test_rescale_and_clip_action():
    toy = ToyEnv()
    rescaled = RescaleAction(toy, low=-1.0, high=1.0)
    assert rescaled.action_space(1000) == Box(-1.0, 1.0, (4,))
    step = jit(lambda s, a: rescaled.step(jax.random.key(0), s, a, 1000))
    _, state = toy.reset(jax.random.key(0), 1000)
    # inner low [-100, 0, -100, 2], high [100, 1, 100, 6]
    info = step(state, jnp.array([0.5, -1.0, 0.0, 1.0]))[-1]
    np.testing.assert_allclose(info["action"], [50.0, 0.0, 0.0, 6.0], atol=1e-5)
    info = step(state, jnp.array([-1.0, 1.0, -0.5, 0.0]))[-1]
    np.testing.assert_allclose(info["action"], [-100.0, 1.0, -50.0, 4.0], atol=1e-5)

    clipped = ClipAction(VectorEnv(toy, 2))
    _, state = clipped.reset(jax.random.key(0), 1000)
    action = jnp.array([[500.0, -3.0, 7.0, 0.0], [-500.0, 0.5, -1e4, 9.0]])
    info = jit(lambda s, a: clipped.step(jax.random.key(0), s, a, 1000))(state, action)[-1]
    np.testing.assert_allclose(info["action"], [[100, 0, 7, 2], [-100, 0.5, -100, 6]])

    with pytest.raises(TypeError):
        ClipAction(envs.make("gymnax/CartPole-v1")[0])


def test_observation_statistics_walks_nested_states():
    env = NormalizeReward(NormalizeObservation(VectorEnv(EpisodeStatistics(ToyEnv()), 2)))
    _, state = jit(env.reset)(jax.random.key(0), 1000)
    stats = observation_statistics(state)
    np.testing.assert_allclose(stats.mean, [1.0, -1.0])
    assert observation_statistics(VectorEnv(ToyEnv(), 2).reset(jax.random.key(0), 10)[1]) is None
