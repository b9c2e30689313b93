"""The agent contract, checked for every registered agent (a new agent joins by name).

Each agent in ``rlzoo.agents.AGENTS`` needs a tiny setup in ``TINY`` below; its
``init`` / ``update`` / ``evaluate`` must jit and vmap over seeds and over a traced config
axis, return finite declared metrics with the score key, and survive a checkpoint round
trip bit for bit, with its data kept out of the checkpoint.
"""

import dataclasses
import json

import jax
import numpy as np
import pytest

from rlzoo import agents, envs
from rlzoo.analysis.logs import read_rows
from rlzoo.core import hparams
from rlzoo.core.agent import STEP_UNITS, Agent, check_data
from rlzoo.data import collect_transitions
from rlzoo.launch.configs import describe_config, resolve_config
from rlzoo.launch.runner import RunError, RunSpec, run

pytestmark = pytest.mark.timeout(600)

# The token agents' (sft, grpo) smallest transformer.
TINY_TRANSFORMER = dict(d_model=16, num_layers=1, num_heads=2, eval_k=2)

# agent -> (env id, config overrides, a traced field to vmap over)
TINY = {
    "ppo": (
        "gymnax/CartPole-v1",
        dict(num_envs=4, num_steps=8, num_epochs=1, num_minibatches=2, total_steps=64),
        "learning_rate",
    ),
    "bc": (
        "gymnax/CartPole-v1",
        dict(total_steps=20, updates_per_iteration=10, batch_size=16, hidden_sizes=(16,)),
        "learning_rate",
    ),
    "sac": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=16,
            num_steps=8,
            learning_starts=4,
            batch_size=8,
            buffer_size=64,
            hidden_sizes=(8,),
        ),
        "learning_rate",
    ),
    "td3": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=16,
            num_steps=8,
            learning_starts=4,
            batch_size=8,
            buffer_size=64,
            hidden_sizes=(8,),
            policy_delay=1,
        ),
        "learning_rate",
    ),
    "td3_bc": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=4, updates_per_iteration=2, batch_size=8, hidden_sizes=(8,), policy_delay=1
        ),
        "learning_rate",
    ),
    "iql": (
        "gymnax/Pendulum-v1",
        dict(total_steps=4, updates_per_iteration=2, batch_size=8, hidden_sizes=(8,)),
        "learning_rate",
    ),
    "prdc": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=4,
            updates_per_iteration=2,
            batch_size=8,
            hidden_sizes=(8,),
            policy_delay=1,
            search_chunk=1000,
        ),
        "learning_rate",
    ),
    "a2pr": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=4,
            updates_per_iteration=2,
            batch_size=8,
            hidden_sizes=(8,),
            vae_hidden_sizes=(8,),
            policy_delay=1,
        ),
        "learning_rate",
    ),
    "diffusion_bc": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=4,
            updates_per_iteration=2,
            batch_size=8,
            hidden_size=8,
            num_blocks=1,
            num_denoising_steps=2,
        ),
        "learning_rate",
    ),
    "diffusion_ql": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=4,
            updates_per_iteration=2,
            batch_size=8,
            hidden_size=8,
            num_blocks=1,
            num_denoising_steps=2,
            time_dim=4,
            critic_hidden_sizes=(8,),
            num_candidates=3,
            ema_start=0,
        ),
        "learning_rate",
    ),
    "idql": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=4,
            updates_per_iteration=2,
            batch_size=8,
            hidden_size=8,
            num_blocks=1,
            num_denoising_steps=2,
            time_dim=4,
            critic_hidden_sizes=(8,),
            num_candidates=3,
        ),
        "learning_rate",
    ),
    "fql": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=4,
            updates_per_iteration=2,
            batch_size=8,
            hidden_size=8,
            num_blocks=1,
            num_denoising_steps=2,
            time_dim=4,
            critic_hidden_sizes=(8,),
        ),
        "learning_rate",
    ),
    "dsrl": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=16,
            num_envs=1,
            num_steps=8,
            learning_starts=4,
            batch_size=8,
            buffer_size=64,
            latent_hidden_sizes=(8,),
            hidden_size=8,
            num_blocks=1,
            num_denoising_steps=2,
        ),
        "learning_rate",
    ),
    "dppo": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=16,
            num_envs=2,
            num_steps=8,
            num_epochs=1,
            num_minibatches=2,
            ft_denoising_steps=2,
            num_denoising_steps=2,
            hidden_size=8,
            num_blocks=1,
            value_hidden_sizes=(8,),
        ),
        "actor_lr",
    ),
    "sft": (
        "tokens/copy-2",
        dict(total_steps=4, updates_per_iteration=2, batch_size=8, **TINY_TRANSFORMER),
        "learning_rate",
    ),
    "grpo": (
        "tokens/copy-2",
        dict(
            total_steps=16,
            num_prompts=2,
            group_size=4,
            num_minibatches=2,
            ent_coef=0.01,  # a gradient even when every reward of a group is equal
            policy_loss="bapo",
            **TINY_TRANSFORMER,
        ),
        "learning_rate",
    ),
    "grpo_control": (
        "gymnax/Pendulum-v1",
        dict(
            total_steps=64,
            num_groups=2,
            group_size=2,
            max_episode_steps=16,
            num_epochs=1,
            num_minibatches=2,
            hidden_sizes=(8,),
            policy_loss="bapo",
            advantage="dr_grpo",
            loss_aggregation="sequence_sum",
            staleness=1,
            dynamic_sampling=True,
            kl_coef=0.1,
        ),
        "learning_rate",
    ),
}


def random_dataset(env_id: str, num_transitions: int):
    """Transitions of a uniformly random policy (the data for agents that need some)."""
    env, params = envs.make(env_id)
    space = env.action_space(params)

    def act(_, obs, key, deterministic):
        return jax.vmap(space.sample)(jax.random.split(key, obs.shape[0]))

    num_envs = 16
    collect = jax.jit(
        lambda key: collect_transitions(
            key, env, params, act, None, num_envs, num_transitions // num_envs
        )[0]
    )
    return jax.device_get(collect(jax.random.PRNGKey(0)))


@pytest.fixture(scope="module", params=sorted(agents.AGENTS))
def built(request):
    name = request.param
    assert name in TINY, f"add a tiny setup for agent {name!r} to TINY in tests/test_contract.py"
    env_id, overrides, swept = TINY[name]
    module = agents.get(name)
    config = resolve_config(module, env_id, dict(overrides, num_eval_episodes=2))
    env, params = envs.make(env_id)
    agent = module.make_agent(config, env, params)
    data = random_dataset(env_id, 8192) if agent.data_kind == "dataset" else None
    # 2 values of a traced field x 2 seeds = 4 agents in one program.
    batched = hparams.stack_points(config, [{swept: 1e-3}, {swept: 3e-3}], 2)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    init = jax.jit(jax.vmap(agent.init, in_axes=(0, hparams.vmap_axes(batched), None)))
    state = init(keys, batched, data)
    return name, module, config, env, params, agent, data, state, keys


def test_agent_file_exports_the_contract(built):
    name, module, _config, *_ = built
    for export in ("Config", "default_config", "make_agent", "make_train", "METRICS"):
        assert hasattr(module, export), f"rlzoo.agents.{name} lacks {export}"
    for field in dataclasses.fields(module.Config):
        assert hparams.field_doc(field), f"{name}.Config.{field.name} has no doc"
    text = describe_config(module, TINY[name][0])
    assert all(f.name in text for f in dataclasses.fields(module.Config))


def test_declarations(built):
    *_, agent, _, _, _ = built
    assert agent.step_unit in STEP_UNITS
    assert agent.score_key.startswith("eval/") and agent.score_key in agent.metrics
    assert agent.num_iterations >= 1 and agent.steps_per_iteration >= 1


def test_update_and_evaluate_jit_and_vmap_over_seeds_and_config(built):
    _name, _, _, _, _, agent, data, state, keys = built
    update = jax.jit(jax.vmap(agent.update, in_axes=(0, None)))
    new_state, metrics = update(state, data)
    assert set(metrics) <= set(agent.metrics), set(metrics) - set(agent.metrics)
    for key, value in metrics.items():
        assert value.shape == (4,), (key, value.shape)
        assert np.all(np.isfinite(value)), key
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, 0, None)))
    results = evaluate(new_state, keys, data)
    assert agent.score_key in results and results[agent.score_key].shape == (4,)
    assert set(results) <= set(agent.metrics)
    # The two configs of the traced axis really differ after one update.
    leaves = jax.tree.leaves(new_state.params)
    assert not np.array_equal(leaves[0][0], leaves[0][2]), "config axis had no effect"


def test_make_train_is_pure_and_jittable(built):
    _name, module, config, env, params, agent, data, *_ = built
    train = jax.jit(module.make_train(config, env, params))
    (state_a, metrics_a), (state_b, _) = (train(jax.random.PRNGKey(3), config, data) for _ in "ab")
    assert jax.tree.leaves(metrics_a)[0].shape[0] == agent.num_iterations
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_round_trip_is_bit_identical_and_holds_no_data(
    built, tmp_path, checkpoint_round_trip
):
    *_, data, state, _ = built
    restored, record = checkpoint_round_trip(state)
    assert record == {"iteration": 1}
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if data is not None:
        size = sum(p.stat().st_size for p in (tmp_path / "checkpoints").rglob("*") if p.is_file())
        data_bytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(data))
        state_bytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(state))
        # A checkpoint that held the dataset would be at least state + data; the state alone
        # (FQL's: about half the test dataset) plus orbax's metadata varies run to run.
        assert size < state_bytes + data_bytes / 2, (size, state_bytes, data_bytes)
        lengths = {np.shape(x)[1] for x in jax.tree.leaves(state) if np.ndim(x) > 1}
        assert len(next(iter(data.values()))) not in lengths


# ------------------------------------------------------------------ bad input, one line


def test_dataset_leaves_must_share_the_leading_dimension():
    data = {"observations": np.zeros((10, 4)), "actions": np.zeros((9,), np.int32)}
    with pytest.raises(ValueError, match=r"disagree .*actions: 9, observations: 10"):
        check_data("bc", "dataset", data)


def test_data_given_to_an_agent_that_takes_none_and_the_reverse(tmp_path):
    with pytest.raises(ValueError, match=r"needs data .* --dataset"):
        run(RunSpec(agent="bc", run_dir=str(tmp_path / "a")), callbacks=[])
    with pytest.raises(ValueError, match="takes no data"):
        data = {"observations": np.zeros((4, 4)), "actions": np.zeros(4, np.int32)}
        run(RunSpec(agent="ppo", run_dir=str(tmp_path / "b")), data=data, callbacks=[])


def test_unknown_step_unit_is_refused():
    fields = dict(
        init=None, update=None, evaluate=None, act=None, policy_params=None,
        num_iterations=1, steps_per_iteration=1, score_key="eval/x", metrics={"eval/x": ""},
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown step unit .episodes.*env_steps"):
        Agent(step_unit="episodes", **fields)
    Agent(step_unit="gradient_steps", **fields)  # a known one is accepted


def test_resume_refuses_different_data(tmp_path):
    data = random_dataset("gymnax/CartPole-v1", 256)
    env_id, overrides, _ = TINY["bc"]
    spec = RunSpec(
        agent="bc", env=env_id, num_seeds=1, overrides=dict(overrides, num_eval_episodes=1),
        run_dir=str(tmp_path / "bc"),
    )  # fmt: skip
    run(spec, data=data, callbacks=[])
    changed = dict(data, rewards=data["rewards"] + 1.0)
    with pytest.raises(RunError, match="data differs"):
        run(spec, resume=True, data=changed, callbacks=[])
    rows = read_rows(tmp_path / "bc")
    summary = run(spec, resume=True, data=data, callbacks=[])  # the same data resumes
    assert summary["step_unit"] == "gradient_steps"
    assert read_rows(tmp_path / "bc") == rows  # finished: no new rows


def test_data_is_an_argument_not_a_compiled_constant():
    """A dataset baked into the program would make the compiled text grow with its size."""
    env_id, overrides, _ = TINY["bc"]
    module = agents.get("bc")
    config = resolve_config(module, env_id, overrides)
    env, params = envs.make(env_id)
    agent = module.make_agent(config, env, params)
    data = random_dataset(env_id, 8192)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), config, data)
    text = jax.jit(agent.update).lower(state, data).as_text()
    assert len(text) < 200_000 and "8192x4" in text  # shapes appear as arguments only


def test_grpo_starts_from_an_sft_run_given_as_base(tmp_path):
    sft_env, sft_overrides, _ = TINY["sft"]
    base = RunSpec(
        agent="sft", env=sft_env, num_seeds=2, run_dir=str(tmp_path / "base"),
        overrides=dict(sft_overrides, d_model=24, num_eval_episodes=2),
    )  # fmt: skip
    run(base, callbacks=[])
    grpo_env, grpo_overrides, _ = TINY["grpo"]
    overrides = {k: v for k, v in grpo_overrides.items() if k != "d_model"}  # from the base
    spec = RunSpec(
        agent="grpo", env=grpo_env, num_seeds=1, run_dir=str(tmp_path / "grpo"),
        base=str(tmp_path / "base"), base_seed=1, overrides=dict(overrides, num_eval_episodes=2),
    )  # fmt: skip
    run(spec, callbacks=[])
    stored = json.loads((tmp_path / "grpo" / "config.json").read_text())
    assert stored["config"]["d_model"] == 24 and "base run" in stored["data"]["source"]
    with pytest.raises(ValueError, match="trained on tokens/copy-2"):
        run(dataclasses.replace(spec, env="tokens/reverse-2", run_dir=str(tmp_path / "x")))
    with pytest.raises(ValueError, match="takes no --base"):
        run(RunSpec(agent="ppo", base=str(tmp_path / "base"), run_dir=str(tmp_path / "y")))
