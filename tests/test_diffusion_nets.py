"""Diffusion and flow samplers (rlzoo.nets.diffusion): shapes, determinism, and exactness.

For data that is one Gaussian ``N(mu, s^2)`` the optimal noise predictor and velocity are
known in closed form, so the samplers are checked on them without training a network: each
must give back the data's mean and standard deviation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlzoo.nets import diffusion

MU, STD = 0.3, 0.2


def optimal_noise(schedule):
    """``E[eps | x_t]`` for data ``N(MU, STD^2)``: ``sqrt(1 - abar) (x - sqrt(abar) MU) / var``."""

    def denoise(obs, x, t):
        index = jnp.round(t * schedule.num_steps - 1).astype(jnp.int32)
        abar = schedule.alpha_bars[index]
        return jnp.sqrt(1 - abar) * (x - jnp.sqrt(abar) * MU) / (abar * STD**2 + 1 - abar)

    return denoise


def optimal_velocity(obs, x, t):
    """``E[a - x_0 | x_t]`` along ``x_t = (1 - t) x_0 + t a``, ``a ~ N(MU, STD^2)``."""
    var = (1 - t) ** 2 + t**2 * STD**2
    return MU + (t * STD**2 - (1 - t)) / var * (x - t * MU)


NOISE = jax.random.normal(jax.random.PRNGKey(0), (20_000, 1))
OBS = jnp.zeros((20_000, 2))


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_ddpm_and_ddim_recover_a_gaussian(name):
    schedule = diffusion.make_schedule(name, 1000)
    denoise = optimal_noise(schedule)
    ddpm = diffusion.ddpm_sample(denoise, schedule, jax.random.PRNGKey(1), OBS, NOISE, clip=None)
    ddim = diffusion.ddim_sample(denoise, schedule, OBS, NOISE, clip=None)
    for samples in (ddpm, ddim):
        assert abs(float(samples.mean()) - MU) < 0.01
        assert abs(float(samples.std()) - STD) < 0.01


def test_flow_euler_recovers_a_gaussian_and_converges():
    errors = []
    for steps in (10, 100, 400):
        samples = diffusion.flow_sample(optimal_velocity, OBS, NOISE, steps, clip=None)
        assert abs(float(samples.mean()) - MU) < 0.01
        errors.append(abs(float(samples.std()) - STD))
    assert errors[0] > errors[1] > errors[2]  # Euler's error falls with the step count
    assert errors[2] < 0.002


def test_schedules_end_near_pure_noise_and_reject_bad_input():
    for name, last in (("linear", 1e-3), ("cosine", 1e-3), ("vp", 1e-2)):
        schedule = diffusion.make_schedule(name, 50)
        abar = np.asarray(schedule.alpha_bars)
        assert np.all(np.diff(abar) < 0) and abar[0] > 0.9 and abar[-1] < last, name
    with pytest.raises(ValueError, match="known: linear, cosine, vp"):
        diffusion.make_schedule("sigmoid", 10)
    with pytest.raises(ValueError, match=r"DDIM steps must be in 1\.\.10"):
        diffusion.ddim_sample(None, diffusion.make_schedule("vp", 10), OBS, NOISE, num_steps=20)
    from rlzoo.agents import diffusion_bc

    for change in (dict(hidden_size=0), dict(time_dim=-4), dict(num_blocks=-1)):
        ((name, value),) = change.items()
        config = diffusion_bc.Config(**change)
        with pytest.raises(ValueError, match=f"{name} must be >= ., got {value}"):
            diffusion.policy_from_config(config, 2)


def test_candidates_shapes_determinism_and_a_learning_denoiser():
    """N candidates per state in one call; the same key gives the same actions; the
    denoising loss falls on a tiny dataset."""
    net = diffusion.Denoiser(action_dim=2, hidden_size=32, num_blocks=1, layer_norm=True)
    obs = jax.random.normal(jax.random.PRNGKey(2), (16, 3))
    actions = jnp.tanh(obs[:, :2] * 2.0)
    params = net.init(jax.random.PRNGKey(3), obs, actions, jnp.zeros(16))
    schedule = diffusion.make_schedule("vp", 5)

    def sample(params, key):
        noise = jax.random.normal(key, (16, 7, 2))  # 7 candidate actions per state
        denoise = lambda o, x, t: net.apply(params, o, x, t)
        return diffusion.ddpm_sample(denoise, schedule, key, obs, noise)

    first = jax.jit(sample)(params, jax.random.PRNGKey(4))
    assert first.shape == (16, 7, 2) and float(jnp.max(jnp.abs(first))) <= 1.0
    np.testing.assert_array_equal(first, jax.jit(sample)(params, jax.random.PRNGKey(4)))
    assert not np.array_equal(first, jax.jit(sample)(params, jax.random.PRNGKey(5)))

    optimizer = optax.adam(3e-3)

    def loss(params, key):
        denoise = lambda o, x, t: net.apply(params, o, x, t)
        return jnp.mean(diffusion.ddpm_loss(denoise, schedule, key, obs, actions))

    @jax.jit
    def train(params):
        def step(carry, key):
            params, opt_state = carry
            value, grads = jax.value_and_grad(loss)(params, key)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), value

        keys = jax.random.split(jax.random.PRNGKey(6), 300)
        return jax.lax.scan(step, (params, optimizer.init(params)), keys)[1]

    losses = np.asarray(train(params))
    assert losses[-50:].mean() < 0.5 * losses[:50].mean()
