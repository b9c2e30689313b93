"""GRPO on control: shared group starts, group-relative advantages, first-episode masks,
a tiny CartPole run that learns, and vmap over seeds. A continuous task (Pendulum, with BAPO,
stale rollouts, dynamic sampling and a KL term) runs in tests/test_contract.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo import envs
from rlzoo.agents import grpo_control as gc
from rlzoo.core import group_policy as gp

pytestmark = pytest.mark.timeout(300)

TINY = gc.Config(
    num_groups=4, group_size=4, max_episode_steps=32, num_epochs=1, num_minibatches=2,
    total_steps=2 * 16 * 32, hidden_sizes=(16,), num_eval_episodes=4,
)  # fmt: skip


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("gymnax/CartPole-v1")


@pytest.fixture(scope="module")
def cartpole_rollout(cartpole):
    """One rollout of the initial policy and its parts, for the structural tests."""
    env, params = cartpole
    agent = gc.make_agent(TINY, env, params)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), TINY, None)
    network = gc.Policy(action_dim=2, discrete=True, hidden_sizes=TINY.hidden_sizes)
    group_env = envs.VectorEnv(envs.GroupReset(env, TINY.group_size), TINY.num_groups)
    trajectory = jax.jit(
        lambda p, k: gc.rollout(network, group_env, params, TINY.max_episode_steps, p, k)
    )(state.params, jax.random.PRNGKey(1))
    return network, state, jax.device_get(trajectory)


def first_episode_reference(rewards, done, gamma):
    """Loop reference: each row's mask up to and including its first done, and its return."""
    mask = np.zeros(done.shape, bool)
    outcomes = np.zeros(done.shape[0])
    for i in range(done.shape[0]):
        for t in range(done.shape[1]):
            mask[i, t] = True
            outcomes[i] += gamma**t * rewards[i, t]
            if done[i, t]:
                break
    return mask, outcomes


def test_first_episode_mask_and_outcome_by_hand():
    done = jnp.array([[0, 0, 1, 0, 1], [0, 0, 0, 0, 0], [1, 0, 0, 1, 0]], bool)
    rewards = jnp.array([[1.0, 2.0, 3.0, 100.0, 100.0], [1.0] * 5, [5.0, 100.0, 0, 0, 0]])
    mask = gp.first_episode_mask(done)
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    # 1 + 2 + 3 = 6; the uncut row scores its 5 steps; 5 (the step that ends it counts).
    np.testing.assert_allclose(gp.episode_outcomes(rewards, mask), [6.0, 5.0, 5.0])
    # gamma = 0.5: 1 + 0.5 * 2 + 0.25 * 3 = 2.75; 1 + .5 + .25 + .125 + .0625 = 1.9375.
    np.testing.assert_allclose(gp.episode_outcomes(rewards, mask, 0.5), [2.75, 1.9375, 5.0])


def test_group_members_start_identically(cartpole_rollout):
    _, _, trajectory = cartpole_rollout
    g, size = TINY.num_groups, TINY.group_size
    start = trajectory.obs[:, 0].reshape(g, size, -1)
    np.testing.assert_array_equal(start, np.broadcast_to(start[:, :1], start.shape))
    assert len({tuple(s) for s in start[:, 0]}) == g  # different groups, different starts
    # Members then act independently: their trajectories differ within a group.
    assert np.any(trajectory.action.reshape(g, size, -1) != trajectory.action[::size, None])


@pytest.mark.parametrize("advantage", ["grpo", "rloo", "dr_grpo"])
def test_advantages_are_group_relative_per_member(cartpole_rollout, advantage):
    network, state, trajectory = cartpole_rollout
    cfg = TINY.replace(advantage=advantage, gamma=0.9)
    batch, stats = gc.learning_batch(network, cfg, trajectory, state.reference)
    mask, outcomes = first_episode_reference(trajectory.reward, trajectory.done, 0.9)
    np.testing.assert_array_equal(batch.mask, mask)
    grouped = outcomes.reshape(TINY.num_groups, TINY.group_size)
    centred = grouped - grouped.mean(1, keepdims=True)
    expected = {
        "grpo": centred / (grouped.std(1, ddof=1, keepdims=True) + 1e-6),
        "rloo": centred * TINY.group_size / (TINY.group_size - 1),
        "dr_grpo": centred,
    }[advantage]
    advantages = np.asarray(batch.advantages).reshape(grouped.shape)
    np.testing.assert_allclose(advantages, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(advantages.sum(1), 0.0, atol=1e-4)  # zero-sum in a group
    assert batch.advantages.shape == (TINY.num_groups * TINY.group_size,)  # one per member
    assert float(stats["rollout/valid_steps"]) == mask.sum()
    assert 0 < mask.sum() < mask.size  # some episodes ended inside the rollout


def test_steps_after_an_episode_end_get_zero_weight(cartpole_rollout):
    network, state, trajectory = cartpole_rollout
    cfg = TINY.replace(ent_coef=0.1, kl_coef=0.1)
    batch, _ = gc.learning_batch(network, cfg, trajectory, state.reference)
    # Perturb the params so that ratios differ from 1 and every term has a gradient.
    params = jax.tree.map(lambda p: p + 0.3, state.params)
    grad = jax.jit(jax.grad(lambda p, b: gc.compute_loss(p, network, cfg, b)[0]))
    dead = ~np.asarray(batch.mask)
    garbage = batch.replace(
        obs=np.where(dead[..., None], 7.0, batch.obs),
        action=np.where(dead, 1 - batch.action, batch.action),
        behaviour_log_probs=np.where(dead, -9.0, batch.behaviour_log_probs),
        reference_log_probs=np.where(dead, 3.0, batch.reference_log_probs),
    )
    for a, b in zip(
        jax.tree.leaves(grad(params, batch)), jax.tree.leaves(grad(params, garbage)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # Every step of an episode carries its member's advantage; a masked step carries none.
    by_step = jax.grad(
        lambda lp: gp.group_policy_loss(
            cfg, lp, jnp.zeros_like(lp), batch.behaviour_log_probs,
            batch.reference_log_probs, batch.advantages, batch.mask,
        )[0]
    )(batch.behaviour_log_probs)  # fmt: skip
    assert np.all(np.asarray(by_step)[dead] == 0.0)


def test_bad_configs_are_refused(cartpole):
    env, params = cartpole
    cases = {
        "episodic returns are not success rates": dict(advantage="bnpo"),
        "need G >= 2": dict(group_size=1),
        "do not split into": dict(num_minibatches=3),
        "less than one iteration": dict(total_steps=100),
        "policy_loss='nope'": dict(policy_loss="nope"),
    }
    for message, change in cases.items():
        with pytest.raises(ValueError, match=message):
            gc.make_agent(TINY.replace(**change), env, params)


@pytest.fixture(scope="module")
def learner(cartpole):
    """A config that learns CartPole in 25 iterations, its agent and ``jit(vmap(train))``."""
    env, params = cartpole
    cfg = gc.Config(
        num_groups=4, group_size=8, max_episode_steps=100, total_steps=32 * 100 * 25,
        learning_rate=3e-3, num_epochs=2, num_minibatches=2, num_eval_episodes=16,
    )  # fmt: skip
    agent = gc.make_agent(cfg, env, params)
    return agent, jax.jit(jax.vmap(gc.make_train(cfg, env, params)))


def test_a_tiny_run_improves_cartpole(learner):
    agent, train = learner
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    state, metrics = train(keys)
    returns = np.asarray(metrics["rollout/episode_return"])  # [seeds, iterations]
    assert returns.shape == (2, agent.num_iterations)
    # Training episodes are cut at 100 steps; the random start survives about 22.
    assert np.all(returns[:, :3].mean(1) < 40) and np.all(returns[:, -3:].mean(1) > 80), returns
    evaluation = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, 0, None)))(state, keys, None)
    assert np.all(np.asarray(evaluation[gc.SCORE_KEY]) > 150), evaluation  # of 500


def test_vmapped_seeds_are_independent_and_deterministic(learner):
    """A seed's run does not depend on the other seeds of its batch (same compiled program)."""
    _, train = learner
    a, b, c = (jax.random.PRNGKey(i) for i in (5, 6, 7))
    (state_ab, metrics_ab), (state_ac, metrics_ac) = (
        train(jnp.stack([a, b])),
        train(jnp.stack([a, c])),
    )
    for x, y in zip(
        jax.tree.leaves(state_ab.params), jax.tree.leaves(state_ac.params), strict=True
    ):
        np.testing.assert_array_equal(x[0], y[0])
        assert not np.array_equal(x[1], y[1])
    np.testing.assert_array_equal(
        metrics_ab["rollout/episode_return"][0], metrics_ac["rollout/episode_return"][0]
    )


@pytest.mark.skipif(not envs.SUITES["jumanji"].installed(), reason="needs jumanji")
def test_a_masked_multi_discrete_suite_env_trains_and_its_mask_holds(masked_train_and_act):
    """Jumanji MMST: pytree observations, MultiDiscrete(36, 36, 36), a per-entry mask."""
    env, params = envs.make("jumanji/MMST-v0")
    config = gc.Config(
        num_groups=2, group_size=4, hidden_sizes=(16,), max_episode_steps=16,
        num_minibatches=2, num_epochs=1,
    )  # fmt: skip
    config = config.replace(total_steps=2 * 2 * 4 * 16)
    masked_train_and_act(gc, config, env, params)
