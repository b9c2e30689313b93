"""Reading a finished (or checkpointed) run as the base of another: ``--base=RUN_DIR``.

A base run's agent ``index`` (seed ``index % num_seeds`` of sweep point
``index // num_seeds``) is restored from its latest checkpoint. The agent being launched
turns it into its ``data`` with its own ``from_base`` (for example GRPO: the SFT policy's
parameters become the starting point and the frozen KL reference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from rlzoo import agents, envs
from rlzoo.core import hparams
from rlzoo.data.store import placeholder_dataset
from rlzoo.launch.checkpoints import Checkpointer
from rlzoo.launch.files import read_json


def load_base(run_dir: str | Path, index: int = 0) -> tuple[dict[str, Any], Any, Any]:
    """``(its config.json, its resolved Config, the training state of agent index)``."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise ValueError(f"--base={run_dir}: no config.json there, so it is not an rlzoo run.")
    stored = read_json(run_dir / "config.json")
    if stored.get("format") not in (2, 3):  # checkpoints and config.json alike since 2
        raise ValueError(f"--base={run_dir} was written by an older rlzoo; train the base again.")
    run = stored["run"]
    module = agents.get(run["agent"])
    config = hparams.from_dict(module.Config, stored["config"])
    env, env_params = envs.make(run["env"], **run["env_kwargs"])
    agent = module.make_agent(config, env, env_params)
    points = run["sweep"] or [{}]
    num_agents = len(points) * run["num_seeds"]
    if not 0 <= index < num_agents:
        raise ValueError(f"--base_seed={index}, but {run_dir} holds agents 0..{num_agents - 1}.")
    batched = hparams.stack_points(config, points, run["num_seeds"])
    keys = np.tile(
        jax.random.split(jax.random.PRNGKey(run["seed"]), run["num_seeds"]), (len(points), 1)
    )
    init = jax.vmap(agent.init, in_axes=(0, hparams.vmap_axes(batched), None))
    # A dataset agent's init reads its data (state normalisation); shapes are all it needs here.
    data = placeholder_dataset(env, env_params) if agent.data_kind == "dataset" else None
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        jax.eval_shape(init, keys, batched, data),
    )
    checkpointer = Checkpointer(run_dir / "checkpoints")
    try:
        latest = checkpointer.latest_iteration()
        if latest is None:
            raise ValueError(f"--base={run_dir} has no checkpoint yet; let the base run train.")
        state, _ = checkpointer.restore(latest, abstract)
    finally:
        checkpointer.close()
    return stored, config, jax.tree.map(lambda x: x[index], state)
