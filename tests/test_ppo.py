"""PPO: vmapping over hyperparameters, determinism, learning, every action/obs kind."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo import envs
from rlzoo.agents import ppo
from rlzoo.core.hparams import vmap_axes

pytestmark = pytest.mark.timeout(300)

TINY = ppo.Config(num_envs=4, num_steps=16, num_epochs=2, num_minibatches=2, total_steps=192)


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("gymnax/CartPole-v1")


def test_two_learning_rates_in_one_program_equal_two_separate_runs(cartpole):
    env, params = cartpole
    train = ppo.make_train(TINY, env, params)
    key = jax.random.PRNGKey(3)
    rates = jnp.array([1e-3, 3e-2])
    batched = TINY.replace(learning_rate=rates)
    swept_state, swept_metrics = jax.jit(jax.vmap(train, in_axes=(None, vmap_axes(batched))))(
        key, batched
    )
    single = jax.jit(train)
    for i, rate in enumerate(rates):
        state, metrics = single(key, TINY.replace(learning_rate=rate))
        jax.tree.map(
            lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=2e-5, atol=2e-6),
            swept_state.params,
            state.params,
        )
        np.testing.assert_allclose(
            swept_metrics["loss/total"][i], metrics["loss/total"], rtol=2e-5, atol=2e-6
        )
    # The two rates really trained different agents.
    first = jax.tree.leaves(swept_state.params)[0]
    assert not np.allclose(first[0], first[1])


def test_reward_normalisation_discounts_with_each_swept_gamma(cartpole):
    """A traced gamma sweep: each point's return statistics use its own discount."""
    env, params = cartpole
    base = TINY.replace(normalize_rewards=True)
    batched = base.replace(gamma=jnp.array([0.9, 0.99]))
    train = ppo.make_train(base, env, params)  # built with the base gamma, 0.99
    swept, _ = jax.jit(jax.vmap(train, in_axes=(None, vmap_axes(batched))))(
        jax.random.PRNGKey(4), batched
    )
    np.testing.assert_allclose(swept.env_state.gamma, [0.9, 0.99])
    alone = base.replace(gamma=0.9)  # the same point, built on its own
    single, _ = jax.jit(ppo.make_train(alone, env, params))(jax.random.PRNGKey(4), alone)
    np.testing.assert_allclose(
        swept.env_state.return_stats.var[0], single.env_state.return_stats.var, rtol=1e-5
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a[0], b, rtol=2e-5, atol=2e-6),
        swept.params,
        single.params,
    )


def test_patch_convolution_equals_flax_conv_and_keeps_its_parameters():
    import flax.linen as nn

    from rlzoo.nets.torsos import PatchConv, orthogonal

    x = jax.random.normal(jax.random.PRNGKey(1), (3, 10, 10, 4))
    conv = nn.Conv(16, (3, 3), padding="VALID", kernel_init=orthogonal())
    params = conv.init(jax.random.PRNGKey(0), x)
    patch = PatchConv(16, (3, 3))
    jax.tree.map(np.testing.assert_array_equal, patch.init(jax.random.PRNGKey(0), x), params)
    np.testing.assert_allclose(patch.apply(params, x), conv.apply(params, x), atol=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "flat_mlp", "cnn"])
def test_a_torso_with_a_zero_or_negative_width_is_refused_with_the_field_named(kind):
    from rlzoo.nets.torsos import make_torso

    x = jnp.zeros((1, 10, 10, 4))
    for sizes in [(64, 0), (-1,)]:
        with pytest.raises(ValueError, match=r"hidden layer sizes must be >= 1.*hidden_sizes"):
            make_torso(kind, sizes, "relu").init(jax.random.PRNGKey(0), x)


def test_same_key_same_result_different_key_different_result(cartpole):
    env, params = cartpole
    train = jax.jit(jax.vmap(ppo.make_train(TINY, env, params)))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    a, metrics_a = train(keys)
    b, metrics_b = train(keys)
    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
    np.testing.assert_array_equal(metrics_a["loss/total"], metrics_b["loss/total"])
    leaf = jax.tree.leaves(a.params)[0]
    assert not np.array_equal(leaf[0], leaf[1])


def test_short_cartpole_run_clearly_learns(cartpole):
    env, params = cartpole
    config = ppo.Config(total_steps=100_352, num_eval_episodes=16)
    agent = ppo.make_agent(config, env, params)

    @jax.jit
    @jax.vmap
    def train_and_evaluate(key):
        state, metrics = ppo.make_train(config, env, params)(key)
        return agent.evaluate(state, jax.random.fold_in(key, 1)), metrics["rollout/episode_return"]

    evaluation, curve = train_and_evaluate(jax.random.split(jax.random.PRNGKey(1), 2))
    # A uniformly random CartPole policy lasts about 22 steps.
    assert float(np.mean(evaluation["eval/deterministic_return"])) > 150.0
    assert float(np.mean(curve[:, -10:])) > 2 * float(np.mean(curve[:, :5]))


@pytest.mark.parametrize(
    "env_id,overrides",
    [
        ("gymnax/Pendulum-v1", dict(normalize_observations=True, normalize_rewards=True)),
        ("gymnax/Breakout-MinAtar", dict(num_envs=4, num_steps=8, num_minibatches=2)),
        (
            "gymnax/Breakout-MinAtar",
            dict(num_envs=4, num_steps=8, num_minibatches=2, torso="cnn", hidden_sizes=(16,)),
        ),
        ("brax/inverted_pendulum", dict(num_envs=8, num_steps=8, num_minibatches=2)),
    ],
)
def test_continuous_image_and_brax_envs_train_and_evaluate(env_id, overrides):
    env, params = envs.make(env_id, **({"episode_length": 50} if env_id.startswith("brax") else {}))
    config = ppo.default_config(env_id).replace(
        num_steps=overrides.pop("num_steps", 16), num_eval_episodes=2, **overrides
    )
    config = config.replace(total_steps=2 * config.num_envs * config.num_steps)
    agent = ppo.make_agent(config, env, params)
    state, metrics = jax.jit(ppo.make_train(config, env, params))(jax.random.PRNGKey(0))
    assert metrics["loss/total"].shape == (2,)
    assert all(bool(np.all(np.isfinite(v))) for v in metrics.values())
    evaluation = jax.jit(agent.evaluate)(state, jax.random.PRNGKey(1))
    assert np.isfinite(evaluation["eval/deterministic_return"])
    assert evaluation["eval/stochastic_length"] >= 1


# ----------------------------------------------------------------------------- pytree obs


class MaskedTreeCartPole(envs.Wrapper):
    """CartPole with a pytree observation and a third, always-masked action.

    Observation: ``{"state": CartPole's 4 floats, "steps": int32 step count, "action_mask":
    [True, True, False]}``. Action 2 (never allowed) pushes left like action 0 and is
    counted in the state, so a test can tell whether a masked action was ever taken.
    """

    MASK = (True, True, False)

    def observation_space(self, params):
        return envs.Dict(
            {
                "state": self.env.observation_space(params),
                "steps": envs.Box(0, 500, (), jnp.int32),
                "action_mask": envs.Bool((3,)),
            }
        )

    def action_space(self, params):
        return envs.Discrete(3)

    def _obs(self, obs, steps):
        mask = jnp.asarray(self.MASK)
        return envs.TreeObservation({"state": obs, "steps": steps, "action_mask": mask})

    def reset(self, key, params):
        obs, state = self.env.reset(key, params)
        zero = jnp.zeros((), jnp.int32)
        return self._obs(obs, zero), (state, zero, zero)

    def step(self, key, state, action, params):
        inner, steps, masked_taken = state
        obs, inner, reward, terminated, truncated, info = self.env.step(
            key, inner, jnp.where(action == 2, 0, action), params
        )
        done = terminated | truncated
        steps = jnp.where(done, 0, steps + 1)
        final = self._obs(info["final_observation"], steps)
        state = (inner, steps, masked_taken + (action == 2))
        info = {**info, "final_observation": final}
        return self._obs(obs, steps), state, reward, terminated, truncated, info


def test_masked_logits_give_invalid_actions_probability_zero():
    from rlzoo.nets.actor_critic import masked_logits

    mask = jnp.array([[True, False, True], [False, False, True]])
    logits = masked_logits(jax.random.normal(jax.random.PRNGKey(0), (2, 3)) * 50, mask)
    probs = jax.nn.softmax(logits)
    np.testing.assert_array_equal(probs[~mask], 0.0)
    samples = jax.random.categorical(jax.random.PRNGKey(1), logits, shape=(4096, 2))
    assert np.all(np.take_along_axis(np.asarray(mask), np.asarray(samples.T), 1))


def test_pytree_observations_train_with_a_masked_policy_and_normalisation(cartpole):
    env = MaskedTreeCartPole(cartpole[0])
    params = cartpole[1]
    config = ppo.Config(
        learning_rate=1e-3, total_steps=61_440, normalize_observations=True, num_eval_episodes=8
    )
    agent = ppo.make_agent(config, env, params)

    @jax.jit
    def train_and_evaluate(key):
        state, metrics = ppo.make_train(config, env, params)(key)
        return state, metrics, agent.evaluate(state, jax.random.fold_in(key, 1))

    state, metrics, evaluation = train_and_evaluate(jax.random.PRNGKey(2))
    # The masked action was never taken, in training or by the policy's samples.
    masked_taken = state.env_state.env_state.env_state[2]  # Normalize(Vector(Stats(env)))
    assert masked_taken.shape == (config.num_envs,) and int(masked_taken.sum()) == 0
    # Per-entry observation statistics; the bool mask is not normalised.
    stats = ppo.policy_params(state)[0]
    assert set(stats) == {"state", "steps"} and float(stats["steps"].mean) > 1.0
    assert np.isfinite(np.asarray(metrics["loss/total"])).all()
    # Two valid actions: entropy at most log 2 (log 3 if the mask leaked).
    assert float(metrics["policy/entropy"][0]) <= np.log(2.0) + 1e-4
    # A uniformly random CartPole policy lasts about 22 steps.
    assert float(evaluation["eval/deterministic_return"]) > 100.0


# ----------------------------------------------------------------------------- MultiDiscrete


def _log_softmax(x):
    x = np.asarray(x, np.float64)
    return x - x.max() - np.log(np.exp(x - x.max()).sum())


def test_factorised_categorical_log_prob_and_entropy_are_sums_over_entries():
    from rlzoo.nets.actor_critic import multi_categorical

    nvec = (3, 1, 4)
    logits = np.array(
        [[0.5, -1.0, 2.0, 0.3, 1.0, -0.5, 0.0, 3.0], [-2.0, 0.0, 1.0, -4.0, 0.2, 0.1, -0.3, 0.4]],
        np.float32,
    )
    actions = np.array([[2, 0, 3], [0, 0, 1]], np.int32)
    # Entry 0 may not be 1, entry 2 may be only 1 or 3; the padded slot 3 of entry 0 is
    # allowed here but lies out of range, so it must stay impossible.
    mask = np.array([[True, False, True, True], [True] * 4, [False, True, False, True]])
    masks = np.broadcast_to(mask, (2, 3, 4))
    for entry_mask in (None, masks):
        dist = multi_categorical(
            jnp.asarray(logits), nvec, None if entry_mask is None else jnp.asarray(entry_mask)
        )
        expected_log_prob, expected_entropy = np.zeros(2), np.zeros(2)
        for b in range(2):
            start = 0
            for i, n in enumerate(nvec):
                entry = logits[b, start : start + n].astype(np.float64)
                if entry_mask is not None:
                    entry = np.where(entry_mask[b, i, :n], entry, -np.inf)
                log_p = _log_softmax(entry)
                expected_log_prob[b] += log_p[actions[b, i]]
                p = np.exp(log_p)
                expected_entropy[b] -= np.sum(p[p > 0] * log_p[p > 0])
                start += n
        np.testing.assert_allclose(dist.log_prob(jnp.asarray(actions)), expected_log_prob, 1e-5)
        np.testing.assert_allclose(dist.entropy(), expected_entropy, 1e-5)
    samples = np.asarray(dist.sample(seed=jax.random.key(0), sample_shape=(2048,)))
    assert samples.shape == (2048, 2, 3) and samples.dtype == np.int32
    assert np.all(np.take_along_axis(masks[None], samples[..., None], -1))  # never masked
    assert np.all(samples < np.asarray(nvec))  # never a padded slot
    np.testing.assert_array_equal(dist.mode(), [[2, 0, 3], [2, 0, 3]])


class JointMaskedMultiDiscrete(envs.Wrapper):
    """Spaces only: a MultiDiscrete(4, 10) action with a joint (4, 10) mask, as Tetris's."""

    def observation_space(self, params):
        state = self.env.observation_space(params)
        return envs.Dict({"state": state, "action_mask": envs.Bool((4, 10))})

    def action_space(self, params):
        return envs.MultiDiscrete((4, 10))


def test_a_joint_mask_and_bc_refuse_multi_discrete_in_one_line(cartpole):
    from rlzoo.agents import bc

    env = JointMaskedMultiDiscrete(cartpole[0])
    with pytest.raises(ValueError, match=r"per-entry mask of shape \(2, 10\)") as err:
        ppo.make_agent(TINY, env, cartpole[1])
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"PPO \(--agent=ppo\) trains MultiDiscrete") as err:
        bc.make_agent(bc.Config(), env, cartpole[1])
    assert "\n" not in str(err.value)


@pytest.mark.skipif(not envs.SUITES["jumanji"].installed(), reason="needs jumanji")
def test_a_multi_discrete_jumanji_env_trains_with_its_per_entry_mask(masked_train_and_act):
    """JobShop: 10 machines each pick a job (or no-op, 21 values), masked per machine."""
    env_id = "jumanji/JobShop-v0"
    env, params = envs.make(env_id)
    assert env.action_space(params) == envs.MultiDiscrete((21,) * 10)
    config = ppo.default_config(env_id).replace(
        num_envs=4, num_steps=8, num_minibatches=2, num_epochs=2, hidden_sizes=(32,)
    )
    config = config.replace(total_steps=2 * config.num_envs * config.num_steps)
    metrics = masked_train_and_act(ppo, config, env, params)
    # Masked: entropy below the unmasked 10 * log 21 (about 30.4).
    assert float(metrics["policy/entropy"][0]) < 10 * np.log(21) - 1.0
