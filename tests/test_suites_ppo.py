"""A short PPO run improves its return on an easy env of each installed suite.

Each suite's shipped preset (``ppo.default_config``), 2 seeds in one program, a budget
that fits CI, evaluated (sampling policy) before and after training with the same keys.
Craftax and MuJoCo Playground are left to ``experiments/ppo_suites.py``: their PPO
programs compile for 1-4 minutes here (an env step per suite is still tested in
``tests/test_suites.py``).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from rlzoo import envs
from rlzoo.agents import ppo

pytestmark = pytest.mark.timeout(600)

# env id, env steps per seed, the least gain of the mean stochastic evaluation return.
CASES = {
    # Reward 1 - 0.9 t / T on reaching the goal, 0 otherwise; random play rarely gets there.
    "navix": ("navix/Navix-Empty-5x5-v0", 65_536, 0.3),
    "xminigrid": ("xminigrid/MiniGrid-Empty-5x5", 65_536, 0.3),
    # Reward 1 on reaching the target of a 10x10 maze (a new maze per episode), 0 otherwise.
    "jumanji": ("jumanji/Maze-v0", 65_536, 0.1),
}
INSTALLED = [s for s in CASES if envs.SUITES[s].installed()]


@pytest.mark.parametrize("suite", INSTALLED)
def test_a_short_ppo_run_improves_an_easy_env(suite):
    env_id, total_steps, gain = CASES[suite]
    env, params = envs.make(env_id)
    config = dataclasses.replace(ppo.default_config(env_id), total_steps=total_steps)
    agent = ppo.make_agent(config, env, params)
    keys = jax.random.split(jax.random.key(0), 2)
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, None)))
    before = evaluate(jax.jit(jax.vmap(agent.init))(keys), jax.random.key(7))
    state, _ = jax.jit(jax.vmap(ppo.make_train(config, env, params)))(keys)
    after = evaluate(state, jax.random.key(7))
    before = np.asarray(before["eval/stochastic_return"])
    after = np.asarray(after["eval/stochastic_return"])
    print(f"{env_id}: stochastic return {before} -> {after}")
    assert np.all(np.isfinite(after))
    assert after.mean() >= before.mean() + gain, (before, after)
