"""The transformer's cached sampler, SFT and GRPO: bad input, and a tiny run that learns."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo import envs
from rlzoo.agents import grpo, sft
from rlzoo.core.token_eval import pass_at_k
from rlzoo.envs.tokens import EOS, completion_mask
from rlzoo.nets.transformer import (
    Transformer,
    completion_log_probs,
    sample,
    sample_without_cache,
)

pytestmark = pytest.mark.timeout(600)

MODEL = Transformer(vocab_size=12, max_length=16, d_model=32, num_layers=2, num_heads=4)


def test_cached_sampling_equals_full_recomputation():
    params = MODEL.init(jax.random.PRNGKey(0), jnp.zeros((1, 16), jnp.int32))
    prompts = jax.random.randint(jax.random.PRNGKey(1), (6, 6), 0, 12)
    key = jax.random.PRNGKey(2)
    cached = jax.jit(lambda p, x, k: sample(MODEL, p, x, k, 10, 0.8, eos=EOS))
    full = jax.jit(lambda p, x, k: sample_without_cache(MODEL, p, x, k, 10, 0.8, eos=EOS))
    tokens, log_probs = cached(params, prompts, key)
    ref_tokens, ref_log_probs = full(params, prompts, key)
    np.testing.assert_array_equal(tokens, ref_tokens)
    np.testing.assert_allclose(log_probs, ref_log_probs, atol=1e-5)
    # The training forward pass gives the sampler's log-probs on every token up to EOS.
    recomputed, _ = jax.jit(lambda p, x, c: completion_log_probs(MODEL, p, x, c, 0.8))(
        params, prompts, tokens
    )
    mask = completion_mask(tokens)
    np.testing.assert_allclose(np.where(mask, recomputed, 0.0), log_probs, atol=1e-5)
    assert np.all(np.asarray(log_probs)[~np.asarray(mask)] == 0.0)


def test_prompts_longer_than_the_context_are_refused():
    params = MODEL.init(jax.random.PRNGKey(0), jnp.zeros((1, 16), jnp.int32))
    with pytest.raises(ValueError, match="exceed the model context of 16"):
        sample(MODEL, params, jnp.zeros((2, 12), jnp.int32), jax.random.PRNGKey(0), 6)


def test_pass_at_k_matches_the_combinatorial_formula():
    from math import comb

    solved = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], bool)
    for k in (1, 2, 3):
        expected = np.mean([1 - comb(4 - c, k) / comb(4, k) for c in solved.sum(1)])
        assert float(pass_at_k(jnp.asarray(solved), k)) == pytest.approx(expected, rel=1e-5)


def test_bad_grpo_configs_are_refused():
    env, params = envs.make("tokens/copy-2")
    with pytest.raises(ValueError, match="G >= 2"):
        grpo.make_agent(grpo.Config(group_size=1), env, params)
    with pytest.raises(ValueError, match=r"policy_loss='ppo'; one of ppo_clip"):
        grpo.make_agent(grpo.Config(policy_loss="ppo"), env, params)
    with pytest.raises(ValueError, match=r"c_low starts at 0.95 above its maximum 0.9"):
        grpo.make_agent(grpo.Config(bapo_c_low_start=0.95), env, params)
    with pytest.raises(ValueError, match="extra_length >= overlong_cache"):
        grpo.make_agent(grpo.Config(overlong_penalty=True), env, params)
    gym_env, gym_params = envs.make("gymnax/CartPole-v1")
    with pytest.raises(ValueError, match="not a token task"):
        grpo.make_agent(grpo.Config(), gym_env, gym_params)


def test_a_base_policy_of_another_shape_is_refused():
    env, params = envs.make("tokens/copy-2")
    small = sft.Config(d_model=16, num_layers=1, num_heads=2, total_steps=100)
    base = sft.make_agent(small, env, params).init(jax.random.PRNGKey(0), small, None)
    agent = grpo.make_agent(grpo.Config(d_model=32, num_layers=1, num_heads=2), env, params)
    with pytest.raises(ValueError, match="base policy's parameters do not fit"):
        agent.init(jax.random.PRNGKey(0), grpo.Config(), grpo.data_from_sft_state(base))


TASK = dict(vocab=3)  # tokens/copy-2 over 3 symbols: 9 prompts, easy
NET = dict(d_model=32, num_layers=1, num_heads=2, num_eval_episodes=64)


def run(agent, config, data, key):
    state = jax.jit(agent.init)(key, config, data)
    state, metrics = jax.jit(
        lambda s, d: jax.lax.scan(lambda c, _: agent.update(c, d), s, None, agent.num_iterations)
    )(state, data)
    evaluation = jax.jit(agent.evaluate)(state, jax.random.PRNGKey(99), data)
    return state, metrics, evaluation


def test_sft_then_grpo_improves_held_out_accuracy():
    env, params = envs.make("tokens/copy-2", **TASK)
    # A weak base: 150 gradient steps on demonstrations with 30% of answer tokens wrong.
    base_cfg = sft.Config(
        total_steps=150, updates_per_iteration=50, batch_size=32, demo_noise=0.3, **NET
    )
    base_agent = sft.make_agent(base_cfg, env, params)
    base_state, base_metrics, base_eval = run(base_agent, base_cfg, None, jax.random.PRNGKey(0))
    assert base_metrics["loss/nll"][-1] < base_metrics["loss/nll"][0]
    data = grpo.data_from_sft_state(base_state)
    cfg = grpo.Config(
        total_steps=8 * 8 * 8, num_prompts=8, group_size=8, learning_rate=1e-3,
        policy_loss="bapo", kl_coef=0.01, **NET,
    )  # fmt: skip
    agent = grpo.make_agent(cfg, env, params)
    _, metrics, evaluation = run(agent, cfg, data, jax.random.PRNGKey(1))
    start = float(base_eval["eval/pass@1"])
    end = float(evaluation["eval/pass@1"])
    assert 0.2 < start < 0.8, start  # the base is far from perfect
    assert end > start + 0.15, (start, end)
    assert np.all(np.isfinite(metrics["loss/total"]))
    assert np.all(metrics["policy/clip_low"] >= 0.6) and np.all(metrics["policy/clip_high"] <= 3.0)
    assert metrics["rollout/solved"][-1] > metrics["rollout/solved"][0]


@pytest.mark.parametrize(
    "changes",
    [
        dict(policy_loss="clip_higher", advantage="dr_grpo", loss_aggregation="sequence_sum"),
        dict(policy_loss="dual_clip", advantage="rloo", loss_aggregation="sequence_mean"),
        dict(policy_loss="topr", advantage="bnpo", dynamic_sampling=True),
        dict(policy_loss="apa", kl_estimator="k1", kl_coef=0.1, overlong_penalty=True),
        dict(policy_loss="bapo", bapo_ordering="authors", staleness=2, ent_coef=0.01),
    ],
)
def test_every_option_runs_and_stays_finite(changes):
    env, params = envs.make("tokens/copy-2", extra_length=2, **TASK)
    cfg = grpo.Config(
        total_steps=16, num_prompts=4, group_size=4, d_model=16, num_layers=1,
        num_heads=2, num_eval_episodes=2, eval_k=2, **changes,
    )  # fmt: skip
    agent = grpo.make_agent(cfg, env, params)
    state, metrics, evaluation = run(agent, cfg, None, jax.random.PRNGKey(0))
    for name, value in {**metrics, **evaluation}.items():
        assert np.all(np.isfinite(value)), (changes, name)
    if cfg.staleness:
        assert jax.tree.leaves(state.history)[0].shape[0] == cfg.staleness
    assert dataclasses.asdict(cfg)["policy_loss"] == changes["policy_loss"]


def test_act_on_the_step_interface_matches_greedy_sampling():
    env, params = envs.make("tokens/reverse-3")
    cfg = grpo.Config(d_model=16, num_layers=1, num_heads=2)
    agent = grpo.make_agent(cfg, env, params)
    state = agent.init(jax.random.PRNGKey(0), cfg, None)
    obs, env_state = env.reset(jax.random.PRNGKey(1), params)
    written = []
    for t in range(env.task.completion_length):
        token = agent.act(agent.policy_params(state), obs, jax.random.PRNGKey(t), True)
        written.append(int(token))
        obs, env_state, _, done, _, _ = env.step(jax.random.PRNGKey(t), env_state, token, params)
        if bool(done):
            break
    model = Transformer(env.task.vocab_size, env.sequence_length, 16, 1, 2)
    prompt = env.reset(jax.random.PRNGKey(1), params)[1]["prompt"][None]
    greedy, _ = sample(model, state.params, prompt, jax.random.PRNGKey(0), 4, greedy=True)
    np.testing.assert_array_equal(written, np.asarray(greedy)[0, : len(written)])
