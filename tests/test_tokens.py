"""Token tasks (shapes, verifiers, splits, errors) and group resets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo import envs
from rlzoo.envs import tokens as tk
from rlzoo.envs.tokens import ANS, BOS, EOS, PAD, PLUS, SEP, TokenTask, symbol


def seq(*symbols):
    return [symbol(s) for s in symbols]


def test_shapes_and_prompt_format():
    task = TokenTask("add", 3)
    prompts = jax.jit(task.prompts, static_argnums=(1, 2))(jax.random.PRNGKey(0), 5, "train")
    assert prompts.shape == (5, task.prompt_length) == (5, 9)
    assert np.all(prompts[:, 0] == BOS) and np.all(prompts[:, -1] == SEP)
    assert np.all(prompts[:, 4] == PLUS)
    assert task.targets(prompts).shape == (5, task.completion_length) == (5, 5)


def test_verifiers_on_hand_cases():
    def prompt(*body):
        return jnp.array([[BOS, *body, SEP]])

    cases = [
        (TokenTask("copy", 3), prompt(*seq(2, 0, 1)), seq(2, 0, 1)),
        (TokenTask("reverse", 3), prompt(*seq(2, 0, 1)), seq(1, 0, 2)),
        (TokenTask("sort", 4), prompt(*seq(3, 1, 2, 1)), seq(1, 1, 2, 3)),
        # 57 + 68 = 125 -> digits 1 2 5 (n + 1 = 3 digits)
        (TokenTask("add", 2), prompt(*seq(5, 7), PLUS, *seq(6, 8)), seq(1, 2, 5)),
        # running sums of 4 7 9: 4, 1, 0 -> ANS 0
        (TokenTask("sum", 3), prompt(*seq(4, 7, 9)), [*seq(4, 1, 0), ANS, symbol(0)]),
    ]
    for task, p, answer in cases:
        np.testing.assert_array_equal(task.answers(p)[0], answer, err_msg=task.task)
        right = jnp.array([[*answer, EOS]])
        assert float(task.score(p, right)[0]) == 1.0, task.task
        wrong = right.at[0, -2].set(symbol(9) if answer[-1] != symbol(9) else symbol(8))
        assert float(task.score(p, wrong)[0]) == 0.0, task.task
        no_eos = right.at[0, -1].set(PAD)
        assert float(task.score(p, no_eos)[0]) == 0.0, task.task


def test_sum_scratchpad_is_not_graded_but_its_answer_is():
    task = TokenTask("sum", 3)
    p = jnp.array([[BOS, *seq(4, 7, 9), SEP]])
    odd_scratch = jnp.array([[*seq(0, 0, 0), ANS, symbol(0), EOS]])
    assert float(task.score(p, odd_scratch)[0]) == 1.0


def test_partial_credit_and_format_penalty():
    task = TokenTask("reverse", 4, partial_credit=True, format_penalty=0.5)
    p = jnp.array([[BOS, *seq(1, 2, 3, 4), SEP]])
    half = jnp.array([[*seq(4, 3, 0, 0), EOS]])
    assert float(task.score(p, half)[0]) == pytest.approx(0.5)
    no_eos = jnp.array([[*seq(4, 3, 2, 1), PAD]])  # all right, but no EOS: half, minus 0.5
    assert float(task.score(p, no_eos)[0]) == pytest.approx(0.0)
    assert not bool(task.solved(p, no_eos)[0])


def test_seeded_prompts_and_disjoint_held_out_split():
    task = TokenTask("copy", 3, vocab=4)  # 64 distinct prompts in all
    key = jax.random.PRNGKey(1)
    train = np.asarray(task.prompts(key, 256, "train"))
    np.testing.assert_array_equal(train, task.prompts(key, 256, "train"))  # seeded
    held_out = np.asarray(task.prompts(key, 256, "eval"))
    assert not np.any(task.in_eval_split(jnp.asarray(train)))
    assert np.all(task.in_eval_split(jnp.asarray(held_out)))
    assert not {tuple(r) for r in train} & {tuple(r) for r in held_out}


def test_step_interface_writes_the_completion_and_rewards_at_the_end():
    env, params = envs.make("tokens/reverse-3")
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    assert env.observation_space(params).contains(obs)
    assert obs.shape == (5 + 4,) and env.action_space(params).n == env.task.vocab_size
    target = env.task.targets(state["prompt"][None])[0]
    step = jax.jit(env.step)
    for t in range(4):
        obs, new_state, reward, terminated, truncated, info = step(
            jax.random.PRNGKey(t), state, target[t], params
        )
        assert bool(terminated) == (t == 3) and not bool(truncated)
        if t < 3:
            assert float(reward) == 0.0 and info["final_observation"][5 + t] == target[t]
        state = new_state
    assert float(reward) == 1.0
    np.testing.assert_array_equal(info["final_observation"][5:], target)
    assert np.all(obs[5:] == PAD)  # auto-reset: a fresh prompt, empty completion


def test_unknown_and_malformed_ids_are_clear():
    with pytest.raises(ValueError, match=r"unknown env id 'tokens/rotate-3'.*tokens: copy-4"):
        envs.make("tokens/rotate-3")
    with pytest.raises(ValueError, match="malformed token task 'reverse'"):
        tk.make_token_env("reverse")
    with pytest.raises(ValueError, match="unknown token task parameter"):
        envs.make("tokens/reverse-3", vocabulary=5)
    with pytest.raises(ValueError, match="vocab must be >= 2"):
        envs.make("tokens/sort-3", vocab=1)
    env, _ = envs.make("tokens/sort-12", vocab=16)  # any size is accepted
    assert env.task.prompt_length == 14


def test_completion_mask_stops_after_eos():
    c = jnp.array([[7, 8, EOS, PAD], [7, 8, 9, 9]])
    np.testing.assert_array_equal(tk.completion_mask(c), [[1, 1, 1, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(tk.completion_lengths(c), [3, 4])


# ------------------------------------------------------------------ group resets


def test_group_resets_share_start_states_for_tokens_gymnax_and_brax():
    for env_id in ("tokens/sort-4", "gymnax/CartPole-v1", "brax/inverted_pendulum"):
        env, params = envs.make(env_id)
        obs, _ = envs.group_reset(env, jax.random.PRNGKey(2), params, 3, 4)
        obs = np.asarray(obs).reshape(3, 4, -1)
        assert np.all(obs == obs[:, :1]), env_id  # members of a group: identical
        assert not np.array_equal(obs[0, 0], obs[1, 0]), env_id  # groups differ


def test_group_reset_wrapper_steps_members_independently():
    env, params = envs.make("gymnax/CartPole-v1")
    grouped = envs.GroupReset(env, 4)
    obs, state = grouped.reset(jax.random.PRNGKey(0), params)
    assert obs.shape == (4, 4) and np.all(np.asarray(obs) == np.asarray(obs)[:1])
    obs, *_ = grouped.step(jax.random.PRNGKey(1), state, jnp.array([0, 1, 0, 1]), params)
    assert np.array_equal(obs[0], obs[2]) and not np.array_equal(obs[0], obs[1])
