"""Shared pure functions against small numpy references."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo.analysis.stats import iqm
from rlzoo.core import losses
from rlzoo.core.advantages import gae
from rlzoo.core.hparams import override, static_names, traced_names

pytestmark = pytest.mark.timeout(120)


def gae_reference(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Textbook GAE, one env at a time, written with explicit loops."""
    T, N = rewards.shape
    advantages = np.zeros((T, N))
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            bootstrap = 0.0 if terminated[t, n] else gamma * next_values[t, n]
            delta = rewards[t, n] + bootstrap - values[t, n]
            if terminated[t, n] or truncated[t, n]:
                running = delta  # the episode ends here: nothing flows back from t + 1
            else:
                running = delta + gamma * lam * running
            advantages[t, n] = running
    return advantages


def test_gae_matches_reference_with_truncation_and_termination():
    rng = np.random.default_rng(0)
    T, N = 17, 5
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    next_values = rng.normal(size=(T, N))
    terminated = rng.random((T, N)) < 0.15
    truncated = (rng.random((T, N)) < 0.15) & ~terminated
    assert terminated.any() and truncated.any()
    adv, ret = gae(
        jnp.asarray(rewards, jnp.float32),
        jnp.asarray(values, jnp.float32),
        jnp.asarray(next_values, jnp.float32),
        jnp.asarray(terminated),
        jnp.asarray(truncated),
        0.97,
        0.9,
    )
    expected = gae_reference(rewards, values, next_values, terminated, truncated, 0.97, 0.9)
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, expected + values, rtol=1e-5, atol=1e-5)


def test_gae_truncation_bootstraps_but_termination_does_not():
    # One step, reward 1, V(s) = 0, V(final) = 10, gamma = 0.5.
    ones, zeros = jnp.ones((1, 1)), jnp.zeros((1, 1))
    final_value = 10.0 * ones
    adv_trunc, _ = gae(ones, zeros, final_value, zeros > 0, ones > 0, 0.5, 0.95)
    adv_term, _ = gae(ones, zeros, final_value, ones > 0, zeros > 0, 0.5, 0.95)
    assert float(adv_trunc[0, 0]) == pytest.approx(1.0 + 0.5 * 10.0)
    assert float(adv_term[0, 0]) == pytest.approx(1.0)


def test_clipped_surrogate_clips_on_the_right_side():
    log_ratio = jnp.log(jnp.array([1.5, 1.5, 0.5, 0.5, 1.1]))
    adv = jnp.array([1.0, -1.0, 1.0, -1.0, 1.0])
    loss, clipped = losses.clipped_surrogate(log_ratio, adv, 0.2)
    # min(r A, clip(r) A): positive A caps the ratio at 1.2, negative A floors it at 0.8.
    np.testing.assert_allclose(loss, [-1.2, 1.5, -0.5, 0.8, -1.1], rtol=1e-6)
    np.testing.assert_array_equal(clipped, [True, True, True, True, False])
    loss_high, _ = losses.clipped_surrogate(log_ratio[:1], adv[:1], 0.2, clip_high=0.28)
    np.testing.assert_allclose(loss_high, [-1.28], rtol=1e-6)


def test_value_loss_clipping_takes_the_pessimistic_error():
    values, old, returns = jnp.array([2.0]), jnp.array([0.0]), jnp.array([3.0])
    assert float(losses.value_loss(values, old, returns)[0]) == pytest.approx(0.5)
    # Clipped prediction is 0.2, error 2.8: the larger of the two errors is kept.
    assert float(losses.value_loss(values, old, returns, 0.2)[0]) == pytest.approx(0.5 * 2.8**2)


def test_iqm_matches_trimmed_mean():
    x = np.arange(8.0)  # middle half: 2, 3, 4, 5
    assert iqm(x) == pytest.approx(3.5)
    assert iqm(np.array([1.0, 100.0, 2.0, 3.0])) == pytest.approx(2.5)
    assert iqm(np.arange(5.0)) == pytest.approx(2.0)  # int(5 / 4) = 1 cut per end: 1, 2, 3


def test_config_traced_and_static_fields_and_misspelt_override():
    from rlzoo.agents import ppo

    assert "learning_rate" in traced_names(ppo.Config)
    assert "num_envs" in static_names(ppo.Config)
    config = override(ppo.Config(), learning_rate=1e-3)
    assert config.learning_rate == 1e-3 and dataclasses.is_dataclass(config)
    with pytest.raises(ValueError, match="learning_rate"):
        override(ppo.Config(), learning_rat=1e-3)


def test_batch_that_does_not_split_names_the_numbers():
    from rlzoo.agents import ppo

    with pytest.raises(ValueError, match=r"4 \* 10 = 40 .* num_minibatches = 3"):
        ppo.check_config(ppo.Config(num_envs=4, num_steps=10, num_minibatches=3))
