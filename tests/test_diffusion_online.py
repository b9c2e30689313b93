"""Online fine-tuning of a frozen diffusion policy: DSRL (latent-noise SAC) and DPPO.

Tiny networks and a few steps: the file checks the rules and the plumbing (base through
``data``, ``--base`` through the launcher), not learning (experiments/diffusion_finetune.py).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo import envs
from rlzoo.agents import dppo, dsrl
from rlzoo.launch.base import load_base
from rlzoo.launch.runner import RunSpec, run
from rlzoo.nets.diffusion import (
    POLICY_FIELDS,
    Denoiser,
    ddpm_chain_sample,
    ddpm_step_log_prob,
    make_schedule,
    step_time,
)

pytestmark = pytest.mark.timeout(600)

ENV = "gymnax/Pendulum-v1"
BASE_SHAPE = dict(hidden_size=8, num_blocks=1, num_denoising_steps=3, time_dim=4)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A tiny diffusion_bc run on random Pendulum transitions, trained through the launcher:
    the ``--base`` of both agents."""
    rng = np.random.default_rng(0)
    angle = rng.uniform(-np.pi, np.pi, 256)
    obs = np.stack([np.cos(angle), np.sin(angle), rng.uniform(-8, 8, 256)], -1)
    data = {
        "observations": obs.astype(np.float32),
        "actions": rng.uniform(-2, 2, (256, 1)).astype(np.float32),
        "rewards": np.zeros(256, np.float32),
        "next_observations": obs.astype(np.float32),
        "terminated": np.zeros(256, bool),
        "truncated": np.zeros(256, bool),
    }
    run_dir = tmp_path_factory.mktemp("base") / "diffusion_bc"
    overrides = dict(total_steps=4, updates_per_iteration=2, batch_size=8, num_eval_episodes=1)
    spec = RunSpec(agent="diffusion_bc", env=ENV, run_dir=str(run_dir),
                   overrides={**overrides, **BASE_SHAPE})  # fmt: skip
    run(spec, data=data, callbacks=[])
    return run_dir


def test_dsrl_leaves_the_base_bit_identical_and_vmaps_over_seeds():
    env, params = envs.make(ENV)
    cfg = dsrl.Config(
        total_steps=32, num_envs=2, num_steps=8, learning_starts=8, batch_size=8,
        buffer_size=64, latent_hidden_sizes=(8,), num_eval_episodes=1, **BASE_SHAPE,
    )  # fmt: skip
    agent = dsrl.make_agent(cfg, env, params)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    start = jax.jit(jax.vmap(lambda k: agent.init(k, cfg, None)))(keys)
    state, metrics = jax.jit(jax.vmap(dsrl.make_train(cfg, env, params)))(keys)
    # the random base (no data) sits in the state and no step changes it ...
    for a, b in zip(jax.tree.leaves(start.base), jax.tree.leaves(state.base), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # ... while the latent actor learned, differently per seed
    moved = jax.tree.leaves(state.actor_params)[0]
    assert not np.array_equal(moved, jax.tree.leaves(start.actor_params)[0])
    assert not np.array_equal(moved[0], moved[1])
    assert metrics["loss/critic"].shape == (2, agent.num_iterations)


def test_dppo_step_log_probs_match_a_direct_gaussian_density():
    schedule = make_schedule("cosine", 4)
    network = Denoiser(2, hidden_size=8, num_blocks=1, time_dim=4)
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    base_params = network.init(jax.random.PRNGKey(2), obs, jnp.zeros((5, 2)), jnp.zeros(5))
    tuned_params = jax.tree.map(lambda p: p * 1.1, base_params)
    tuned = lambda o, x, t: network.apply(tuned_params, o, x, t)
    noise = jax.random.normal(jax.random.PRNGKey(3), (5, 2))
    action, chain = ddpm_chain_sample(
        lambda o, x, t: network.apply(base_params, o, x, t), tuned, schedule,
        jax.random.PRNGKey(4), obs, noise, num_tuned=2, min_std=0.1,
    )  # fmt: skip
    assert chain.shape == (5, 3, 2)
    np.testing.assert_array_equal(chain[:, -1], action)
    betas = np.asarray(schedule.betas, np.float64)
    abar = np.cumprod(1 - betas)
    for position, index in enumerate([1, 0]):  # the two tuned steps: k = 1, then k = 0
        x, x_next = np.asarray(chain[:, position]), np.asarray(chain[:, position + 1])
        got = ddpm_step_log_prob(
            tuned, schedule, obs, chain[:, position], chain[:, position + 1],
            jnp.full(5, index), min_std=0.1,
        )  # fmt: skip
        # by hand: a_hat from the predicted noise, the DDPM posterior, std floored at 0.1
        eps = np.asarray(tuned(obs, chain[:, position], step_time(jnp.full(5, index), 4)))
        a_hat = np.clip((x - np.sqrt(1 - abar[index]) * eps) / np.sqrt(abar[index]), -1, 1)
        prev = abar[index - 1] if index > 0 else 1.0
        mean = (betas[index] * np.sqrt(prev) * a_hat
                + (1 - prev) * np.sqrt(1 - betas[index]) * x) / (1 - abar[index])  # fmt: skip
        std = max(np.sqrt(betas[index] * (1 - prev) / (1 - abar[index])), 0.1)
        want = -0.5 * ((x_next - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


def test_dsrl_trains_from_a_base_run_through_the_launcher(base_run, tmp_path):
    """``--base=RUN_DIR``: the launcher restores the diffusion_bc state, ``from_base`` turns
    it into DSRL's data and gives DSRL the base's network shape."""
    tiny = dict(total_steps=16, num_envs=1, num_steps=8, learning_starts=4, batch_size=8,
                buffer_size=64, latent_hidden_sizes=(8,), num_eval_episodes=1)  # fmt: skip
    spec = RunSpec(agent="dsrl", env=ENV, num_seeds=2, run_dir=str(tmp_path / "dsrl"),
                   base=str(base_run), overrides=tiny)  # fmt: skip
    summary = run(spec, callbacks=[])
    stored = json.loads((tmp_path / "dsrl" / "config.json").read_text())
    assert stored["config"]["hidden_size"] == 8 and stored["config"]["time_dim"] == 4
    assert np.all(np.isfinite(summary["final_eval_per_seed"]["eval/deterministic_return"]))


@pytest.mark.parametrize("agent", ["dsrl", "dppo"])
def test_from_base_takes_diffusion_bc_and_refuses_another_agent(base_run, agent):
    module = {"dsrl": dsrl, "dppo": dppo}[agent]
    _, base_config, base_state = load_base(base_run)
    data, overrides = module.from_base("diffusion_bc", base_config, base_state)
    for name in POLICY_FIELDS:
        assert overrides[name] == getattr(base_config, name)
    base = {"obs_scale": base_state.obs_scale, "params": base_state.ema_params}
    for a, b in zip(jax.tree.leaves(data), jax.tree.leaves(base), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if agent == "dppo":  # K capped at the base's 3 steps
        assert overrides["ft_denoising_steps"] == 3
    with pytest.raises(
        ValueError, match=f"^{agent} fine-tunes a diffusion_bc run, but the --base run is 'bc'.$"
    ):
        module.from_base("bc", base_config, base_state)
