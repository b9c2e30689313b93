"""SAC and TD3: they learn Pendulum; update-to-data ratio and n-step settings; the collect
command rolls a trained run's policy, or exports its replay buffer, into a dataset."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from rlzoo import collect, envs
from rlzoo.agents import sac, td3
from rlzoo.analysis.logs import read_rows
from rlzoo.data import load_dataset
from rlzoo.launch.runner import RunSpec, run

pytestmark = pytest.mark.timeout(600)

# One seed, small networks: random play scores about -1200 on Pendulum, a swing-up about
# -150; both agents reached -100 to -200 from 10k steps here (/tmp runs, 2 seeds each).
PENDULUM = dict(
    total_steps=10_000, num_steps=200, learning_starts=1_000, buffer_size=10_000,
    hidden_sizes=(64, 64), batch_size=128, num_eval_episodes=16,
)  # fmt: skip


def test_sac_learns_pendulum():
    module = sac  # TD3 learns the same in experiments/offline_online_pendulum.py
    env, params = envs.make("gymnax/Pendulum-v1")
    config = module.Config(**PENDULUM)
    agent = module.make_agent(config, env, params)
    state, metrics = jax.jit(module.make_train(config, env, params))(jax.random.PRNGKey(0))
    score = float(jax.jit(agent.evaluate)(state, jax.random.PRNGKey(1))[agent.score_key])
    assert agent.step_unit == "env_steps" and agent.steps_per_iteration == 200
    assert score > -600, score  # random: about -1200
    assert np.all(np.isfinite(metrics["loss/critic"]))


def test_update_to_data_ratio_and_bad_settings():
    env, params = envs.make("gymnax/Pendulum-v1")
    config = sac.Config(num_envs=2, num_steps=8, utd_ratio=0.25)
    assert sac.gradient_steps_per_iteration(config) == 4  # 0.25 x 2 envs x 8 steps
    with pytest.raises(ValueError, match="utd_ratio"):
        td3.make_agent(td3.Config(utd_ratio=0.0), env, params)
    with pytest.raises(ValueError, match="vector Box action space"):
        td3.make_agent(td3.Config(), *envs.make("gymnax/CartPole-v1"))
    with pytest.raises(ValueError, match="cannot hold an n_step = 5 window"):
        sac.make_agent(sac.Config(buffer_size=8, num_envs=2, n_step=5), env, params)
    # A zero-width layer fails at init with the field named, not inside the initialiser.
    config = sac.Config(hidden_sizes=(0, 0))
    agent = sac.make_agent(config, env, params)
    with pytest.raises(ValueError, match=r"hidden layer sizes must be >= 1, got \(0, 0\)"):
        agent.init(jax.random.PRNGKey(0), config, None)


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    """Two seeds of a tiny SAC run through the launcher, with n-step returns and UTD 0.5."""
    run_dir = tmp_path_factory.mktemp("runs") / "sac"
    spec = RunSpec(
        agent="sac", env="gymnax/Pendulum-v1", num_seeds=2, run_dir=str(run_dir),
        overrides=dict(total_steps=400, num_steps=100, learning_starts=100, buffer_size=300,
                       batch_size=16, hidden_sizes=(8,), num_eval_episodes=1, n_step=3,
                       utd_ratio=0.5),
    )  # fmt: skip
    summary = run(spec, callbacks=[])
    assert summary["step_unit"] == "env_steps" and summary["steps_per_seed"] == 400
    rows = read_rows(run_dir)
    losses = [row["loss/critic"] for row in rows if "loss/critic" in row]
    assert losses and np.all(np.isfinite(losses))
    return run_dir


def test_collect_exports_a_runs_replay_buffer_and_rolls_its_policy(sac_run):
    agent, state, env_id, env, params = collect.load_run(str(sac_run), agent_index=1)
    assert env_id == "gymnax/Pendulum-v1"
    data, num_envs = collect.replay_dataset(state, env, params)
    # 400 steps went through a 300-transition ring: the newest 300, oldest first.
    assert num_envs == 1 and data["rewards"].shape == (300,)
    ended = data["terminated"][:-1] | data["truncated"][:-1]
    np.testing.assert_allclose(  # the env computes the two in float32 slightly differently
        data["next_observations"][:-1][~ended], data["observations"][1:][~ended], atol=1e-5
    )
    assert np.abs(data["actions"]).max() <= 2.0 and np.abs(data["actions"]).max() > 1.0  # env units
    # The restored policy acts in the env.
    action = agent.act(
        agent.policy_params(state), data["observations"][:4], jax.random.PRNGKey(0), True
    )
    assert action.shape == (4, 1)


def test_collect_command_writes_a_minari_dataset_that_trains_load(tmp_path, sac_run):
    environ = dict(os.environ, MINARI_DATASETS_PATH=str(tmp_path / "minari"), JAX_PLATFORMS="cpu")
    command = [
        sys.executable, "-m", "rlzoo.collect", f"--policy={sac_run}", "--action_noise=0.5",
        "--num_envs=2", "--num_steps=50", "--dataset_id=rlzoo/pendulum/noisy-v0",
        "--random_return=-1200", "--expert_return=-150", "--reference_episodes=2",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["transitions"] == 100 and "action noise 0.5" in summary["policy"]
    os.environ["MINARI_DATASETS_PATH"] = environ["MINARI_DATASETS_PATH"]
    try:
        data = load_dataset("minari:rlzoo/pendulum/noisy-v0")
    finally:
        del os.environ["MINARI_DATASETS_PATH"]
    assert data["observations"].shape == (100, 3) and data["actions"].shape == (100, 1)
    # A bad source fails in one line naming it.
    command = [sys.executable, "-m", "rlzoo.collect", f"--policy={tmp_path}", "--out=x.npz"]
    result = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=300)
    assert result.returncode == 2 and "not an rlzoo run directory" in result.stderr
