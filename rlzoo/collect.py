"""Collect an offline dataset: roll a policy (random, or a trained run's) into a Minari dataset.

    python -m rlzoo.collect --env=gymnax/Pendulum-v1 --policy=random \\
        --num_envs=10 --num_steps=1000 --dataset_id=rlzoo/pendulum/random-v0
    python -m rlzoo.collect --policy=runs/sac-pendulum --action_noise=0.3 \\
        --dataset_id=rlzoo/pendulum/medium-v0 --expert_return=-150
    python -m rlzoo.collect --policy=runs/sac-pendulum --source=replay \\
        --dataset_id=rlzoo/pendulum/medium-replay-v0

``--policy`` is ``random`` or the run directory of an ``rlzoo.train`` run (its latest
checkpoint; ``--agent_index`` picks the seed). ``--source=replay`` writes the run's replay
buffer instead (SAC / TD3: the last ``buffer_size`` transitions the run trained on: rlzoo's
"medium-replay" when the run is the one that trained the medium policy). The dataset is a
Minari dataset under Minari's root (``MINARI_DATASETS_PATH``), with the random and expert
reference returns; ``--out=FILE.npz`` writes a plain ``.npz`` instead. Train on it with
``python -m rlzoo.train --agent=td3_bc --dataset=minari:<dataset id>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from rlzoo import agents, envs
from rlzoo.core import hparams
from rlzoo.core.evaluation import evaluate_policy
from rlzoo.data import collect_transitions, save_npz
from rlzoo.data.minari_store import write_minari
from rlzoo.envs import Box, Discrete
from rlzoo.launch.checkpoints import Checkpointer
from rlzoo.launch.files import read_json
from rlzoo.nets import ActionBounds

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line's flags; defined only when run as a program, so that importing this
    module (for ``load_run`` / ``replay_dataset``) leaves ``rlzoo.train``'s flags alone."""
    flags.DEFINE_string(
        "env", "", "Env id; default: the run's env (required with --policy=random)."
    )
    flags.DEFINE_string("policy", "random", "'random', or the run directory of a trained agent.")
    flags.DEFINE_integer("agent_index", 0, "Which agent (seed) of the run's batch acts.")
    flags.DEFINE_enum(
        "source", "rollout", ["rollout", "replay"],
        "Roll the policy, or export the run's replay buffer (off-policy agents).",
    )  # fmt: skip
    flags.DEFINE_float(
        "action_noise", 0.0, "Gaussian action noise, as a fraction of half the action range "
        "(continuous); probability of a random action (discrete).",
    )  # fmt: skip
    flags.DEFINE_bool("deterministic", True, "Act with the policy's mode (then add the noise).")
    flags.DEFINE_integer("num_envs", 10, "Parallel envs.")
    flags.DEFINE_integer("num_steps", 1000, "Steps per env.")
    flags.DEFINE_integer("seed", 0, "Seed of the rollout.")
    flags.DEFINE_string(
        "dataset_id", "", "Minari dataset id to write, e.g. rlzoo/pendulum/random-v0."
    )
    flags.DEFINE_string("out", "", "Write a .npz file here instead of a Minari dataset.")
    flags.DEFINE_float("random_return", None, "Random-policy reference return; default: measured.")
    flags.DEFINE_float(
        "expert_return", None, "Expert reference return (with the random one it defines the "
        "normalised score); default: --expert_run's, else none.",
    )  # fmt: skip
    flags.DEFINE_string("expert_run", "", "Run directory whose policy's return is the expert one.")
    flags.DEFINE_integer("reference_episodes", 32, "Episodes per measured reference return.")


def random_act(space: Any):
    def act(_, obs, key, deterministic):
        return jax.vmap(space.sample)(jax.random.split(key, obs.shape[0]))

    return act


def noisy(act: Any, space: Any, noise: float):
    """``act`` plus Gaussian noise (continuous, clipped) or epsilon-random actions (discrete)."""
    if noise <= 0:
        return act
    sample = random_act(space)

    def noisy_act(params, obs, key, deterministic):
        act_key, noise_key, pick_key = jax.random.split(key, 3)
        action = act(params, obs, act_key, deterministic)
        if isinstance(space, Discrete):
            explore = jax.random.uniform(pick_key, action.shape) < noise
            return jnp.where(explore, sample(None, obs, noise_key, False), action)
        half_range = (space.high - space.low) / 2.0
        action = action + noise * half_range * jax.random.normal(noise_key, action.shape)
        return jnp.clip(action, space.low, space.high)

    return noisy_act


def load_run(run_dir: str, agent_index: int) -> tuple[Any, Any, str, Any, Any]:
    """``(agent, state of one agent, env id, env, env params)`` from a run's latest checkpoint."""
    path = Path(run_dir)
    if not (path / "config.json").is_file():
        raise ValueError(f"--policy={run_dir}: not an rlzoo run directory (no config.json)")
    stored = read_json(path / "config.json")
    run = stored["run"]
    module = agents.get(run["agent"])
    config = hparams.from_dict(module.Config, stored["config"])
    env, env_params = envs.make(run["env"], **run.get("env_kwargs", {}))
    agent = module.make_agent(config, env, env_params)
    points = run.get("sweep") or [{}]
    num_agents = len(points) * run["num_seeds"]
    if not 0 <= agent_index < num_agents:
        raise ValueError(f"--agent_index={agent_index}: the run has {num_agents} agents")
    batched = hparams.stack_points(config, points, run["num_seeds"])
    keys = jax.random.split(jax.random.PRNGKey(0), num_agents)
    data = None  # an offline run's data enters only through its shapes
    if stored.get("data"):
        data = {
            name[2:-2]: jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype))
            for name, (shape, dtype) in stored["data"]["leaves"].items()
        }
    init = jax.vmap(agent.init, in_axes=(0, hparams.vmap_axes(batched), None))
    # Restore onto this process's first device, whatever mesh the run was trained on.
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        jax.eval_shape(init, keys, batched, data),
    )
    checkpointer = Checkpointer(path / "checkpoints")
    latest = checkpointer.latest_iteration()
    if latest is None:
        raise ValueError(f"--policy={run_dir}: the run has no checkpoint yet")
    state, _ = checkpointer.restore(latest, abstract)
    checkpointer.close()
    return agent, jax.tree.map(lambda x: x[agent_index], state), run["env"], env, env_params


def replay_dataset(state: Any, env: Any, env_params: Any) -> tuple[dict[str, np.ndarray], int]:
    """The stored rows of an off-policy agent's replay buffer, env-major, oldest first."""
    replay = getattr(state, "replay", None)
    if replay is None:
        raise ValueError("--source=replay: this agent keeps no replay buffer (SAC, TD3 do)")
    experience = jax.device_get(replay.experience)
    num_envs, rows = experience["rewards"].shape[:2]
    filled = rows if bool(replay.is_full) else int(replay.current_index)
    order = (np.arange(filled) + (int(replay.current_index) if bool(replay.is_full) else 0)) % rows
    data = {
        k: v[:, order].reshape((num_envs * filled, *v.shape[2:])) for k, v in experience.items()
    }
    space = env.action_space(env_params)
    if isinstance(space, Box):  # the buffer holds unit-box actions
        data["actions"] = np.asarray(ActionBounds(space.low, space.high).to_env(data["actions"]))
    return data, num_envs


def mean_return(act: Any, params: Any, env: Any, env_params: Any, seed: int) -> float:
    results = jax.jit(
        lambda key: evaluate_policy(act, params, key, env, env_params, FLAGS.reference_episodes)
    )(jax.random.PRNGKey(seed))
    return float(results["eval/deterministic_return"])


def main(argv: list[str]) -> None:
    del argv
    if not FLAGS.dataset_id and not FLAGS.out:
        raise app.UsageError("give --dataset_id (a Minari dataset) or --out (a .npz file)")
    if FLAGS.policy == "random":
        if not FLAGS.env:
            raise app.UsageError("--policy=random needs --env")
        if FLAGS.source == "replay":
            raise app.UsageError("--source=replay needs --policy=<run directory>")
        env_id = FLAGS.env
        env, env_params = envs.make(env_id)
        act, params, name = random_act(env.action_space(env_params)), None, "random"
    else:
        agent, state, env_id, env, env_params = load_run(FLAGS.policy, FLAGS.agent_index)
        if FLAGS.env and FLAGS.env != env_id:
            raise app.UsageError(f"--env={FLAGS.env} differs from the run's env {env_id}")
        act, params = agent.act, agent.policy_params(state)
        name = f"{FLAGS.policy} (agent {FLAGS.agent_index})"
    space = env.action_space(env_params)

    num_envs = FLAGS.num_envs
    if FLAGS.source == "replay":
        data, num_envs = replay_dataset(state, env, env_params)
        name = f"replay buffer of {name}"
    else:
        act = noisy(act, space, FLAGS.action_noise)
        if FLAGS.action_noise > 0:
            name += f" + action noise {FLAGS.action_noise}"
        collect = jax.jit(
            lambda key: collect_transitions(
                key, env, env_params, act, params, num_envs, FLAGS.num_steps, FLAGS.deterministic
            )[0]
        )
        data = jax.device_get(collect(jax.random.PRNGKey(FLAGS.seed)))

    random_return = FLAGS.random_return
    if random_return is None:
        random_return = mean_return(random_act(space), None, env, env_params, FLAGS.seed + 1)
    expert_return = FLAGS.expert_return
    if expert_return is None and FLAGS.expert_run:
        expert, expert_state, *_ = load_run(FLAGS.expert_run, 0)
        expert_params = expert.policy_params(expert_state)
        expert_return = mean_return(expert.act, expert_params, env, env_params, FLAGS.seed + 2)

    if FLAGS.out:
        save_npz(FLAGS.out, data)
        where = FLAGS.out
    else:
        kept = (random_return, expert_return) if expert_return is not None else (None, None)
        where = write_minari(
            FLAGS.dataset_id, data, env_id, policy=name, num_envs=num_envs,
            random_return=kept[0], expert_return=kept[1],
        )  # fmt: skip
    summary = {
        "written": str(where),
        "env": env_id,
        "policy": name,
        "transitions": len(data["rewards"]),
        "mean_reward": float(np.mean(data["rewards"])),
        "random_return": random_return,
        "expert_return": expert_return,
    }
    print(json.dumps(summary))


def entry() -> None:
    define_flags()
    try:
        app.run(main)
    except ValueError as error:  # bad input: one line, no traceback
        print(f"rlzoo.collect: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    entry()
