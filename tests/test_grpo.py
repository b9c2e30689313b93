"""The transformer's cached sampler, SFT and GRPO: bad input, and a tiny run that learns."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo import envs
from rlzoo.agents import grpo, sft
from rlzoo.core import group_policy as gp
from rlzoo.core.token_eval import make_token_model, pass_at_k
from rlzoo.envs.tokens import EOS, completion_mask
from rlzoo.launch.runner import QUICK_COMPILE
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
    with pytest.raises(ValueError, match=r"bapo_share='abs'; one of signed, absolute"):
        grpo.make_agent(grpo.Config(bapo_share="abs"), env, params)
    with pytest.raises(ValueError, match="extra_length >= overlong_cache"):
        grpo.make_agent(grpo.Config(overlong_penalty=True), env, params)
    with pytest.raises(ValueError, match="partial_rollout_tokens must be >= 0, got -1; use 0"):
        grpo.make_agent(grpo.Config(partial_rollout_tokens=-1), env, params)
    with pytest.raises(
        ValueError, match=r"= 3 is not partial: .* at most 3 tokens long; use 1 to 2"
    ):
        grpo.make_agent(grpo.Config(partial_rollout_tokens=3), env, params)
    with pytest.raises(ValueError, match="use grpo, dr_grpo or rloo with partial rollouts"):
        grpo.make_agent(grpo.Config(partial_rollout_tokens=1, advantage="bnpo"), env, params)
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
        dict(
            policy_loss="bapo",
            bapo_ordering="authors",
            staleness=2,
            ent_coef=0.01,
            partial_rollout_tokens=2,
        ),
        dict(policy_loss="bapo", bapo_share="absolute"),
    ],
)
def test_every_option_runs_and_stays_finite(changes, checkpoint_round_trip):
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
    if cfg.partial_rollout_tokens:  # with staleness: each piece sampled by a stale policy
        assert "rollout/complete_groups" in metrics
        assert state.partial.position.max() <= cfg.partial_rollout_tokens * agent.num_iterations
        # The carried completions survive a checkpoint round trip, bit for bit.
        restored, _ = checkpoint_round_trip(state)
        pairs = zip(jax.tree.leaves(state.partial), jax.tree.leaves(restored.partial), strict=True)
        for a, b in pairs:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
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


def random_params(model, *batch, scale=0.3, seed=0):
    """Random parameters of ``model`` with leading ``batch`` axes, drawn by numpy (compiling
    flax's initialisers takes longer on CPU than the tests that need them)."""
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32))
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: scale * rng.standard_normal((*batch, *x.shape), np.float32), shapes
    )


# Partial rollouts: 2 groups of 2 over tokens/copy-2 with 5-token completions, 2 per iteration.
PARTIAL_NET = dict(
    total_steps=16, num_prompts=2, group_size=2, num_epochs=1, num_minibatches=1, d_model=16,
    num_layers=1, num_heads=2, num_eval_episodes=2, eval_k=2, ent_coef=0.01,
)  # fmt: skip


def test_partial_rollouts_off_is_todays_update():
    env, params = envs.make("tokens/copy-2", extra_length=2, **TASK)
    cfg = grpo.Config(**PARTIAL_NET)
    assert cfg.partial_rollout_tokens == 0  # the default
    agent = grpo.make_agent(cfg, env, params)
    model = make_token_model(cfg, env.task)

    def before(state, data):  # the update as it was before partial rollouts, from its parts
        cfg, key, rollout_key = state.config, *jax.random.split(state.key)
        reference = data["params"]
        batch, stats = grpo.rollout(model, env.task, cfg, state.params, reference, rollout_key)
        loss = lambda p, minibatch: grpo.compute_loss(p, model, cfg, minibatch)
        out = gp.minibatch_epochs(loss, grpo.make_optimizer(cfg), state.params, state.opt_state,
                                  key, batch, cfg.num_epochs, cfg.num_minibatches)  # fmt: skip
        new = state.replace(
            params=out[0], opt_state=out[1], key=out[2], iteration=state.iteration + 1
        )
        return new, {**out[3], **stats}

    data = grpo.data_from_params(random_params(model))
    state = jax.jit(agent.init, compiler_options=QUICK_COMPILE)(jax.random.PRNGKey(0), cfg, data)
    assert state.partial is None
    # One program holding both, so that any difference is one of computation, not of fusion.
    both = jax.jit(lambda s, d: (agent.update(s, d), before(s, d)), compiler_options=QUICK_COMPILE)
    (new, metrics), (ref, ref_metrics) = both(state, data)
    assert jax.tree.structure(new) == jax.tree.structure(ref)
    assert sorted(metrics) == sorted(ref_metrics)  # no partial-rollout metrics either
    leaves = jax.tree.leaves((new, metrics)), jax.tree.leaves((ref, ref_metrics))
    for a, b in zip(*leaves, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_completion_written_in_pieces_equals_the_sampler_in_one_go():
    n, stop = 10, np.arange(1, 7)  # a different first piece per completion

    @functools.partial(jax.jit, compiler_options=QUICK_COMPILE)
    def whole_and_pieces(params, key, other_key):
        prompts = jax.random.randint(jax.random.PRNGKey(1), (6, 6), 0, 12)
        whole, _ = sample(MODEL, params, prompts, key, n, 0.8, eos=EOS)

        def write(completions, start, stop, key):
            return grpo.continue_completions(
                MODEL, params, prompts, completions, start, stop, key, 0.8
            )

        first, written = write(jnp.zeros((6, n), jnp.int32), 0 * stop, stop, key)
        second, _ = write(first, stop, stop + 3, key)
        third, _ = write(second, stop + 3, np.full(6, n), key)
        other, _ = write(first, stop, stop + 3, other_key)
        return whole, first, written, second, third, other

    out = whole_and_pieces(random_params(MODEL), jax.random.PRNGKey(2), jax.random.PRNGKey(3))
    whole, first, written, second, third, other = map(np.asarray, out)
    np.testing.assert_array_equal(written, np.arange(n) < stop[:, None])
    np.testing.assert_array_equal(np.where(written, whole, 0), first)  # PAD beyond the piece
    np.testing.assert_array_equal(third, whole)
    assert np.any(whole[:, :-1] == EOS)  # an EOS inside a piece: PAD after it
    assert np.any(other != second)  # the key matters


def test_partial_rollouts_carry_tokens_and_their_behaviour_log_probs():
    env, params = envs.make("tokens/copy-2", extra_length=2, **TASK)
    cfg = grpo.Config(partial_rollout_tokens=2, **PARTIAL_NET)
    grpo.make_agent(cfg, env, params)  # a valid config
    task, model, g = env.task, make_token_model(cfg, env.task), cfg.group_size
    n, steps = task.completion_length, np.arange(task.completion_length)
    # Two seeds (vmapped), each with a different policy in each of 4 iterations.
    policies = random_params(model, 2, 4)

    @functools.partial(jax.jit, compiler_options=QUICK_COMPILE)
    @functools.partial(jax.vmap, in_axes=(0, None, 0, 0))
    def iteration(policies, it, pool, key):  # the rollout of grpo.update, policy number `it`
        params = jax.tree.map(lambda p: p[it], policies)
        batch, pool, stats = grpo.partial_rollout(model, task, cfg, params, params, pool, key)
        under = jax.vmap(lambda p: completion_log_probs(model, p, pool.prompts, pool.completions))
        return (
            batch.mask,
            pool,
            stats,
            under(policies)[0],
            task.score(pool.prompts, pool.completions),
        )

    pool = jax.tree.map(lambda x: np.stack([x, x]), grpo.empty_partial_rollouts(task, cfg))
    writer = np.zeros(pool.completions.shape, int)  # the iteration that wrote each token
    scored = []  # [iteration][seed, group]: the group entered the loss
    for it in range(4):
        old, key = pool, jax.random.split(jax.random.PRNGKey(it + 1), 2)
        mask, pool, stats, under, rewards = jax.tree.map(
            np.asarray, iteration(policies, it, old, key)
        )
        # The rule: groups whose members have all ended get fresh prompts and start at 0; every
        # other slot that has not ended gets at most `partial_rollout_tokens` new tokens.
        ended = (old.completions == EOS).any(-1) | (old.position >= n)
        refilled = np.repeat(ended.reshape(2, -1, g).all(-1), g, axis=-1)
        start = np.where(refilled, 0, old.position)
        stop = np.where(ended & ~refilled, start, np.minimum(start + cfg.partial_rollout_tokens, n))
        np.testing.assert_array_equal(pool.position, stop)
        carried = steps < start[..., None]
        new = ~carried & (steps < stop[..., None])
        for name in ("completions", "behaviour_log_probs"):  # carried: never overwritten
            now, before = getattr(pool, name), getattr(old, name)
            np.testing.assert_array_equal(np.where(carried, now, 0), np.where(carried, before, 0))
        assert np.all(pool.completions[~(carried | new)] == 0)  # PAD beyond the piece
        # Each stored log-prob is that of the policy that sampled the token, not today's.
        writer = np.where(new, it, writer)
        sampler = np.take_along_axis(under, writer[:, None], axis=1)[:, 0]
        written = carried | new
        np.testing.assert_allclose(pool.behaviour_log_probs[written], sampler[written], atol=1e-5)
        if it == 1:  # a completion from two policies, whose log-probs differ on its tokens
            assert np.any(carried.any(-1) & new.any(-1))
            assert np.abs(under[:, it] - pool.behaviour_log_probs)[carried].max() > 1e-3
        # A group enters the loss in the iteration its last member ends, and is then refilled.
        done = (pool.completions == EOS).any(-1) | (pool.position >= n)
        ready = np.repeat(done.reshape(2, -1, g).all(-1), g, axis=-1)
        is_eos = pool.completions == EOS
        up_to_eos = np.cumsum(is_eos, -1) - is_eos == 0
        np.testing.assert_array_equal(mask, ready[..., None] & up_to_eos)
        scored.append(ready.reshape(2, -1, g)[..., 0])
        np.testing.assert_allclose(stats["rollout/complete_groups"], ready.mean(-1))
        reward = (rewards * ready).sum(-1) / np.maximum(ready.sum(-1), 1)
        np.testing.assert_allclose(stats["rollout/reward"], reward, rtol=1e-6)
    assert 0 < np.mean(scored) < 1  # some groups waited, some were scored
