"""Diffusion-QL, IDQL and FQL: the rules that make each one what it is.

The agent contract (jit, vmap over seeds and configs, checkpoints) is checked for all three
in ``tests/test_contract.py``; here: Diffusion-QL's Q term reaches the denoiser through the
sampling chain and vanishes with ``eta = 0`` (leaving diffusion BC's loss), IDQL's acting
keeps the candidate with the highest Q (or draws by the expectile weights), and FQL's
one-step policy moves to the flow policy under the distillation term when Q is constant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo import envs
from rlzoo.agents import diffusion_ql, fql, idql
from rlzoo.core.candidates import choose_candidate
from rlzoo.nets import ActionBounds, QNetwork, ValueNetwork
from rlzoo.nets.diffusion import policy_from_config

pytestmark = pytest.mark.timeout(300)

TINY_POLICY = dict(hidden_size=8, num_blocks=1, num_denoising_steps=3, time_dim=4)
OBS = jax.random.normal(jax.random.PRNGKey(1), (16, 3))
ACTIONS = jnp.tanh(jax.random.normal(jax.random.PRNGKey(2), (16, 2)))


def tiny_nets():
    config = diffusion_ql.Config(critic_hidden_sizes=(8,), **TINY_POLICY)
    nets = diffusion_ql.Networks(
        policy=policy_from_config(config, 2), critic=QNetwork((8,), "silu")
    )
    params = nets.policy.init(jax.random.PRNGKey(3), OBS[0])
    critic_params = nets.critic.init(jax.random.PRNGKey(4), OBS[0], ACTIONS[0])
    return nets, params, critic_params


def test_diffusion_ql_q_term_is_normalised_by_the_other_critic():
    q = jnp.array([[1.0, 2.0], [-3.0, -4.0]])
    np.testing.assert_allclose(diffusion_ql.normalized_q_loss(q, True), -1.5 / 3.5, rtol=1e-6)
    np.testing.assert_allclose(diffusion_ql.normalized_q_loss(q, False), 3.5 / 1.5, rtol=1e-6)
    # the denominator is a constant: d/dq0 of -mean(q0) / c is -1 / (2c)
    grad = jax.grad(lambda q: diffusion_ql.normalized_q_loss(q, True))(q)
    np.testing.assert_allclose(grad, [[-1 / 7, -1 / 7], [0.0, 0.0]], rtol=1e-6)


def test_diffusion_ql_q_gradient_flows_through_the_chain_and_eta_zero_is_diffusion_bc():
    nets, params, critic_params = tiny_nets()
    key = jax.random.PRNGKey(5)

    @jax.jit
    def loss_and_grad(eta):
        return jax.value_and_grad(
            lambda p: diffusion_ql.actor_loss(nets, p, critic_params, OBS, ACTIONS, eta, key),
            has_aux=True,
        )(params)

    (loss0, _), grads0 = loss_and_grad(0.0)
    (_, info1), grads1 = loss_and_grad(1.0)
    # eta = 0: diffusion BC's loss (rlzoo.agents.diffusion_bc sums over action dims; /A)
    bc = jnp.mean(nets.policy.loss(params, jax.random.split(key, 4)[0], OBS, ACTIONS)) / 2
    np.testing.assert_allclose(loss0, bc, rtol=1e-6)
    np.testing.assert_allclose(info1["loss/denoise"], bc, rtol=1e-6)
    # eta = 1: the Q term changes the gradient of every layer of the denoiser, the first
    # included: it comes back through the sampled action, i.e. through the chain.
    for g0, g1 in zip(jax.tree.leaves(grads0), jax.tree.leaves(grads1), strict=True):
        assert not np.allclose(g0, g1), "a denoiser parameter got no Q gradient"


def test_diffusion_ql_acting_selects_by_the_target_critics():
    nets, params, critic_params = tiny_nets()
    bounds = ActionBounds(-np.ones(2), np.ones(2))
    policy_params = (lambda o: o, params, critic_params)
    key = jax.random.PRNGKey(6)

    @jax.jit
    def greedy_and_reference(key):
        greedy = diffusion_ql.act(nets, bounds, 8, "softmax", policy_params, OBS, key, True)
        candidates = nets.policy.act(params, OBS, jax.random.split(key)[0], False, 8)
        q = nets.critic.apply(critic_params, jnp.repeat(OBS[:, None], 8, 1), candidates).min(0)
        return greedy, candidates[jnp.arange(16), jnp.argmax(q, -1)]

    np.testing.assert_allclose(*greedy_and_reference(key), atol=1e-6)


def test_idql_picks_the_argmax_q_candidate_and_resamples_by_expectile_weights():
    config = idql.Config(critic_hidden_sizes=(8,), **TINY_POLICY)
    nets = idql.Networks(
        policy=policy_from_config(config, 2),
        value=ValueNetwork((8,)),
        critic=QNetwork((8,)),
    )
    params = nets.policy.init(jax.random.PRNGKey(3), OBS[0])
    critic_params = nets.critic.init(jax.random.PRNGKey(4), OBS[0], ACTIONS[0])
    value_params = nets.value.init(jax.random.PRNGKey(5), OBS[0])
    bounds = ActionBounds(-2 * np.ones(2), 2 * np.ones(2))  # env units: twice the unit box
    policy_params = (lambda o: o, params, critic_params, value_params, 0.7)
    key = jax.random.PRNGKey(7)

    @jax.jit
    def chosen_and_reference(key):
        chosen = idql.act(nets, bounds, 32, "expectile", policy_params, OBS, key, True)
        candidates = nets.policy.act(params, OBS, jax.random.split(key)[0], False, 32)
        q = nets.critic.apply(critic_params, jnp.repeat(OBS[:, None], 32, 1), candidates).min(0)
        return chosen, 2 * candidates[jnp.arange(16), jnp.argmax(q, -1)]

    np.testing.assert_allclose(*chosen_and_reference(key), atol=1e-6)
    # expectile resampling: weight tau above V, 1 - tau below; 1 of 4 candidates above
    scores = idql.expectile_log_weights(jnp.array([[3.0, 0.0, 0.0, 0.0]]), jnp.array([1.0]), 0.9)
    draw = jax.jit(
        jax.vmap(lambda k: choose_candidate(k, jnp.arange(4.0)[None, :, None], scores, False))
    )
    picks = draw(jax.random.split(jax.random.PRNGKey(8), 4000))
    share = np.mean(np.asarray(picks) == 0)
    assert abs(share - 0.9 / (0.9 + 3 * 0.1)) < 0.03, share


@pytest.fixture(scope="module")
def fql_run():
    """FQL steps with rewards 0 and zero critics: Q stays exactly 0 (constant), so only the
    distillation term moves the one-step policy. Two values of alpha x 2 seeds, one program."""
    env, env_params = envs.make("gymnax/Pendulum-v1")
    rng = np.random.default_rng(0)
    n = 512
    data = {
        "observations": rng.normal(size=(n, 3)).astype(np.float32),
        "actions": rng.uniform(-2, 2, (n, 1)).astype(np.float32),
        "rewards": np.zeros(n, np.float32),
        "terminated": np.zeros(n, bool),
        "truncated": np.zeros(n, bool),
        "next_observations": rng.normal(size=(n, 3)).astype(np.float32),
    }
    config = fql.Config(
        total_steps=200, updates_per_iteration=100, batch_size=32, learning_rate=3e-3,
        critic_hidden_sizes=(8,), num_eval_episodes=1, **TINY_POLICY,
    )  # fmt: skip
    agent = fql.make_agent(config, env, env_params)
    batched = config.replace(alpha=jnp.array([0.0, 0.0, 100.0, 100.0]))
    axes = jax.tree.map(lambda x: 0 if jnp.ndim(x) else None, batched)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)

    def train(key, cfg):
        state = agent.init(key, cfg, data)
        zero = jax.tree.map(jnp.zeros_like, state.critic_params)
        state = state.replace(critic_params=zero, target_critic_params=zero)
        final, metrics = jax.lax.scan(lambda s, _: agent.update(s, data), state, None, 2)
        return state, final, metrics

    return jax.jit(jax.vmap(train, in_axes=(0, axes)))(keys, batched)


def test_fql_one_step_policy_moves_to_the_flow_policy_when_q_is_constant(fql_run):
    start, final, metrics = fql_run
    assert np.all(np.asarray(metrics["value/q"]) == 0.0)  # Q really is constant
    distill = np.asarray(metrics["loss/distill"])  # [seed, iteration]
    # alpha = 0 and a constant Q: no gradient, the one-step policy never moves ...
    for a, b in zip(jax.tree.leaves(start.params), jax.tree.leaves(final.params), strict=True):
        np.testing.assert_array_equal(a[:2], b[:2])
    # ... while the flow policy learns; alpha = 100 pulls the one-step policy onto it.
    assert np.all(distill[2:, -1] < 0.2 * distill[:2, -1]), distill
    assert not np.allclose(distill[2], distill[3]), "the two seeds should differ"
