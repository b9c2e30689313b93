"""The replay buffer: ring wrap-around, uniform sampling, n-step returns, vmap over seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo.data.replay import BACKENDS, ReplayBuffer

pytestmark = pytest.mark.timeout(300)


def step(t, num_envs, terminated=None, truncated=None):
    """Env step ``t`` of every env: observation 100*env + t, reward t, action -t."""
    env = jnp.arange(num_envs, dtype=jnp.float32)
    obs = (100.0 * env + t)[:, None]
    zeros = jnp.zeros(num_envs, bool)
    return {
        "observations": obs,
        "actions": -jnp.full((num_envs, 1), t, jnp.float32),
        "rewards": jnp.full((num_envs,), t, jnp.float32),
        "terminated": zeros if terminated is None else terminated,
        "truncated": zeros if truncated is None else truncated,
        "next_observations": obs + 1.0,
    }


def filled(buffer, num_steps, flags=None):
    """A buffer after ``num_steps`` steps; ``flags[t]``: episode-end flags of step t."""
    flags = flags or {}
    state = buffer.init(jax.tree.map(lambda x: x[0], step(0, buffer.num_envs)))
    for t in range(num_steps):
        state = buffer.add(state, step(t, buffer.num_envs, **flags.get(t, {})))
    return state


@pytest.mark.parametrize("backend", BACKENDS)
def test_ring_wraps_around_keeping_the_newest_rows(backend):
    buffer = ReplayBuffer(capacity=10, num_envs=2, backend=backend)  # 5 rows per env
    state = filled(buffer, 3)
    assert int(buffer.size(state)) == 6 and not bool(state.is_full)
    state = filled(buffer, 7)  # steps 0..6: rows hold 5 6 2 3 4 (2 oldest overwritten)
    assert int(buffer.size(state)) == 10 and bool(state.is_full)
    assert int(state.current_index) == 2
    np.testing.assert_array_equal(state.experience["rewards"][0], [5, 6, 2, 3, 4])
    observations = state.experience["observations"][1, :, 0]
    np.testing.assert_array_equal(observations, [105, 106, 102, 103, 104])


@pytest.mark.parametrize("backend", BACKENDS)
def test_sampling_is_uniform_over_stored_transitions_only(backend):
    buffer = ReplayBuffer(capacity=8, num_envs=2, backend=backend)  # 4 rows per env
    state = filled(buffer, 6)  # steps 2..5 remain
    batch = jax.jit(lambda s, k: buffer.sample(s, k, 20_000))(state, jax.random.PRNGKey(0))
    obs = np.asarray(batch["observations"][:, 0])
    values, counts = np.unique(obs, return_counts=True)
    np.testing.assert_array_equal(values, [2, 3, 4, 5, 102, 103, 104, 105])
    np.testing.assert_allclose(counts / counts.sum(), 1 / 8, atol=0.01)
    # Fields of one sample stay together.
    np.testing.assert_array_equal(batch["rewards"], obs % 100)
    np.testing.assert_array_equal(batch["next_observations"][:, 0], obs + 1)
    np.testing.assert_allclose(batch["discounts"], 0.99)


def n_step_reference(rewards, terminated, truncated, start, n, gamma):
    """A loop over the steps: the return until the first end, and the bootstrap discount."""
    total, discount = 0.0, 1.0
    for k in range(n):
        t = start + k
        total += discount * rewards[t]
        discount *= gamma
        if terminated[t]:
            return total, 0.0, t
        if truncated[t]:
            return total, discount, t
    return total, discount, start + n - 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_n_step_returns_match_a_loop_and_stop_at_episode_ends(backend):
    n, gamma, steps = 3, 0.9, 12
    terminated = np.zeros(steps, bool)
    truncated = np.zeros(steps, bool)
    terminated[4], truncated[8] = True, True
    flags = {t: dict(terminated=jnp.array([terminated[t]]), truncated=jnp.array([truncated[t]]))
             for t in range(steps)}  # fmt: skip
    buffer = ReplayBuffer(capacity=16, num_envs=1, backend=backend)
    state = filled(buffer, steps, flags)
    batch = buffer.sample(state, jax.random.PRNGKey(1), 512, n_step=n, gamma=gamma)
    starts = np.asarray(batch["observations"][:, 0]).astype(int)
    assert set(starts) == set(range(steps - n + 1))  # windows never run past the newest step
    rewards = np.arange(steps, dtype=np.float64)
    for i, start in enumerate(starts):
        ret, discount, last = n_step_reference(rewards, terminated, truncated, start, n, gamma)
        np.testing.assert_allclose(batch["rewards"][i], ret, rtol=1e-6)
        np.testing.assert_allclose(batch["discounts"][i], discount, rtol=1e-6)
        assert batch["next_observations"][i, 0] == last + 1


def test_backends_agree_and_vmap_over_seeds():
    """Seeds get independent buffers in one program; both backends store the same rows."""
    seeds = 3

    def program(backend):
        buffer = ReplayBuffer(capacity=12, num_envs=2, backend=backend)

        def run(key):
            state = buffer.init(jax.tree.map(lambda x: x[0], step(0, 2)))

            def body(state, t):
                transitions = step(t, 2)
                noise = jax.random.normal(jax.random.fold_in(key, t), (2,))
                transitions["rewards"] = transitions["rewards"] + noise
                return buffer.add(state, transitions), None

            state, _ = jax.lax.scan(body, state, jnp.arange(9, dtype=jnp.float32))
            return state.experience, buffer.sample(state, key, 4)

        return jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(0), seeds))

    (flash_rows, flash_batch), (ring_rows, ring_batch) = program("flashbax"), program("ring")
    for a, b in zip(jax.tree.leaves(flash_rows), jax.tree.leaves(ring_rows), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(flash_batch), jax.tree.leaves(ring_batch), strict=True):
        np.testing.assert_array_equal(a, b)
    rewards = np.asarray(flash_rows["rewards"])
    assert rewards.shape == (seeds, 2, 6) and not np.allclose(rewards[0], rewards[1])


def test_a_buffer_too_small_for_its_envs_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        ReplayBuffer(capacity=4, num_envs=4)
