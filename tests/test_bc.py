"""Behaviour cloning through the data channel: imitate a trained PPO policy and a known one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo import envs
from rlzoo.agents import bc, ppo
from rlzoo.core.evaluation import evaluate_policy
from rlzoo.data import collect_transitions
from rlzoo.launch.runner import RunSpec, run

pytestmark = pytest.mark.timeout(900)


def test_bc_recovers_a_trained_ppo_policy_on_cartpole(tmp_path):
    # The expert: PPO trained in memory (a few seconds), then rolled out into a dataset.
    env, params = envs.make("gymnax/CartPole-v1")
    config = ppo.Config(learning_rate=1e-3, total_steps=100_352, num_eval_episodes=16)
    expert = ppo.make_agent(config, env, params)
    state, _ = jax.jit(ppo.make_train(config, env, params))(jax.random.PRNGKey(0))
    expert_params = expert.policy_params(state)
    expert_return = float(
        jax.jit(expert.evaluate)(state, jax.random.PRNGKey(1))["eval/deterministic_return"]
    )
    assert expert_return > 150, "the PPO expert did not learn; the test needs a competent one"

    def collect(key, policy):
        return collect_transitions(key, env, params, expert.act, policy, 8, 500)

    data, _ = jax.device_get(jax.jit(collect)(jax.random.PRNGKey(2), expert_params))

    # BC through the launcher: 4 seeds in one program, counted in gradient steps.
    spec = RunSpec(
        agent="bc",
        num_seeds=4,
        overrides=dict(total_steps=2000, updates_per_iteration=250, num_eval_episodes=16),
        run_dir=str(tmp_path / "bc"),
    )
    summary = run(spec, data=data, callbacks=[])
    returns = np.asarray(summary["final_eval_per_seed"]["eval/deterministic_return"])
    assert summary["step_unit"] == "gradient_steps" and summary["steps_per_seed"] == 2000
    assert returns.mean() >= 0.8 * expert_return, (returns, expert_return)
    assert returns.min() >= 0.5 * expert_return, (returns, expert_return)


def test_bc_imitates_a_known_continuous_policy():
    """On Pendulum, a fixed linear controller is the behaviour; BC must reproduce it."""
    env, params = envs.make("gymnax/Pendulum-v1")

    def controller(_, obs, key, deterministic):
        cos, sin, velocity = obs[..., 0], obs[..., 1], obs[..., 2]
        return jnp.clip(-(1.5 * sin + 0.4 * velocity) * cos, -2.0, 2.0)[..., None]

    data, _ = jax.jit(lambda k: collect_transitions(k, env, params, controller, None, 16, 400))(
        jax.random.PRNGKey(0)
    )
    config = bc.Config(total_steps=3000, updates_per_iteration=500, num_eval_episodes=16)
    agent = bc.make_agent(config, env, params)
    state, metrics = jax.jit(bc.make_train(config, env, params))(
        jax.random.PRNGKey(1), config, data
    )
    assert metrics["policy/action_mse"][-1] < 0.05 * float(np.var(data["actions"]))
    assert metrics["loss/nll"][-1] < metrics["loss/nll"][0]

    key = jax.random.PRNGKey(2)
    behaviour = evaluate_policy(controller, None, key, env, params, 16)
    cloned = jax.jit(agent.evaluate)(state, key)
    gap = abs(cloned["eval/deterministic_return"] - behaviour["eval/deterministic_return"])
    assert gap < 0.15 * abs(behaviour["eval/deterministic_return"]), (cloned, behaviour)
