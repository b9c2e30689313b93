"""Minari datasets: write rlzoo transitions as a real Minari dataset, read any local one.

    write_minari("rlzoo/pendulum/random-v0", data, "gymnax/Pendulum-v1", policy="random",
                 random_return=-1200.0, expert_return=-150.0)
    data = load_minari("minari:rlzoo/pendulum/random-v0")     # flat dict of arrays
    info = minari_info("rlzoo/pendulum/random-v0")            # metadata, reference returns

Datasets are written with the ``minari`` package (0.5.4, HDF5 storage through h5py), so
Minari's own tools (``minari show``, ``minari.load_dataset``) open them. Reading never
downloads and never unpickles: Minari keeps spaces and metadata as JSON and the arrays in
HDF5. The root is Minari's (``MINARI_DATASETS_PATH``, else ``~/.minari/datasets``).

Besides Minari's own metadata (``algorithm_name`` = the collecting policy,
``ref_min_score`` / ``ref_max_score`` = the random and expert reference returns that define
the normalised score ``100 * (R - R_random) / (R_expert - R_random)``), rlzoo adds
``rlzoo_env_id`` and ``rlzoo_episode_returns``. For Minari's public D4RL-derived ids
without reference scores in their metadata, :data:`D4RL_REFERENCE_RETURNS` supplies them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

PREFIX = "minari:"

# D4RL's REF_MIN_SCORE / REF_MAX_SCORE (d4rl/infos.py): random and expert returns per task.
D4RL_REFERENCE_RETURNS = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}


def normalized_score(returns: Any, random_return: float, expert_return: float) -> np.ndarray:
    """``100 * (R - R_random) / (R_expert - R_random)``: 0 is random, 100 is expert."""
    return 100.0 * (np.asarray(returns) - random_return) / (expert_return - random_return)


# ----------------------------------------------------------------------------- writing


def split_episodes(data: dict[str, Any], num_envs: int = 1) -> list[dict[str, np.ndarray]]:
    """Cut flat transitions into episodes at every ``terminated | truncated``.

    The arrays hold ``num_envs`` equal env-major blocks (``collect_transitions``'s layout);
    a block's last, unfinished episode ends there and is marked truncated (the data stops,
    ``next_observations`` still holds where the step led).
    """
    data = {k: np.asarray(v) for k, v in data.items()}
    n = len(data["rewards"])
    if n % num_envs:
        raise ValueError(f"{n} transitions do not split into {num_envs} env blocks")
    truncated = data["truncated"].astype(bool).copy()
    truncated[n // num_envs - 1 :: n // num_envs] |= ~data["terminated"].astype(bool)[
        n // num_envs - 1 :: n // num_envs
    ]
    ends = np.flatnonzero(data["terminated"].astype(bool) | truncated) + 1
    episodes = []
    for start, stop in zip(np.concatenate([[0], ends[:-1]]), ends, strict=True):
        episodes.append(
            {
                "observations": np.concatenate(
                    [data["observations"][start:stop], data["next_observations"][stop - 1 : stop]]
                ),
                "actions": data["actions"][start:stop],
                "rewards": data["rewards"][start:stop].astype(np.float64),
                "terminations": data["terminated"][start:stop].astype(bool),
                "truncations": truncated[start:stop],
            }
        )
    return episodes


def _gym_space(space: Any) -> Any:
    import gymnasium

    from rlzoo.envs import Box, Discrete

    if isinstance(space, Discrete):
        return gymnasium.spaces.Discrete(space.n)
    if isinstance(space, Box):
        return gymnasium.spaces.Box(space.low, space.high, space.shape, np.float32)
    raise ValueError(f"cannot store a {type(space).__name__} space in a Minari dataset")


def write_minari(
    dataset_id: str,
    data: dict[str, Any],
    env_id: str,
    *,
    policy: str,
    num_envs: int = 1,
    random_return: float | None = None,
    expert_return: float | None = None,
    description: str = "",
    env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Write flat transitions as the Minari dataset ``dataset_id``; returns its directory.

    ``random_return`` and ``expert_return`` are stored together (Minari's ``ref_min_score``
    / ``ref_max_score``) or not at all.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    from rlzoo import envs

    if (random_return is None) != (expert_return is None):
        raise ValueError("give both random_return and expert_return, or neither")
    env, params = envs.make(env_id, **(env_kwargs or {}))
    episodes = split_episodes(data, num_envs)
    buffers = [EpisodeBuffer(id=i, **episode) for i, episode in enumerate(episodes)]
    returns = [float(np.sum(e["rewards"])) for e in episodes]
    with warnings.catch_warnings():
        # rlzoo envs are not Gymnasium envs: there is no env spec to record, by design.
        warnings.filterwarnings("ignore", message=r".*(env_spec is None|`eval_env` is set)")
        dataset = minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=_gym_space(env.observation_space(params)),
            action_space=_gym_space(env.action_space(params)),
            algorithm_name=policy,
            author="rlzoo",
            description=description or f"{policy} policy on {env_id}, collected by rlzoo",
        )
    metadata: dict[str, Any] = {"rlzoo_env_id": env_id, "rlzoo_episode_returns": returns}
    if random_return is not None:
        # Minari records reference scores only when it can make a Gymnasium env itself.
        metadata.update(ref_min_score=float(random_return), ref_max_score=float(expert_return))
    dataset.storage.update_metadata(metadata)
    return Path(dataset.storage.data_path).parent


# ----------------------------------------------------------------------------- reading


def _local_ids() -> list[str]:
    import minari

    return sorted(minari.list_local_datasets())


def _open(source: str) -> Any:
    """A ``MinariDataset`` from ``minari:<id>`` or from the path of a dataset directory."""
    from minari import MinariDataset

    if source.startswith(PREFIX):
        from minari.storage import get_dataset_path

        dataset_id = source[len(PREFIX) :]
        data_path = Path(get_dataset_path(dataset_id)) / "data"
        if not (data_path / "metadata.json").is_file():
            root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
            local = ", ".join(_local_ids()) or "none"
            raise ValueError(
                f"--dataset={source}: no Minari dataset {dataset_id!r} under the Minari root "
                f"{root} (rlzoo never downloads; local datasets: {local}). Make one with "
                "python -m rlzoo.collect, or `minari download` it first."
            )
    else:
        path = Path(source)
        data_path = path / "data" if (path / "data" / "metadata.json").is_file() else path
        if not (data_path / "metadata.json").is_file():
            raise ValueError(f"--dataset={source}: not a Minari dataset (no metadata.json)")
    try:
        return MinariDataset(data_path)
    except Exception as error:  # minari raises assorted types for damaged files
        raise ValueError(f"--dataset={source}: cannot open the Minari dataset ({error})") from error


def is_minari_source(source: str) -> bool:
    path = Path(source)
    return source.startswith(PREFIX) or (
        path.is_dir()
        and ((path / "metadata.json").is_file() or (path / "data" / "metadata.json").is_file())
    )


def load_minari(source: str) -> dict[str, np.ndarray]:
    """Every episode of a Minari dataset as flat transitions (rlzoo's dataset layout)."""
    dataset = _open(source)
    parts: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "observations",
            "actions",
            "rewards",
            "terminated",
            "truncated",
            "next_observations",
        )
    }
    try:
        for episode in dataset.iterate_episodes():
            obs = episode.observations
            if not isinstance(obs, np.ndarray):
                raise ValueError(
                    f"--dataset={source}: episode {episode.id} has structured observations "
                    f"({type(obs).__name__}); rlzoo reads array observations only."
                )
            length = len(episode.rewards)
            if len(obs) != length + 1 or len(episode.actions) != length:
                raise ValueError(
                    f"--dataset={source}: episode {episode.id} has {len(obs)} observations "
                    f"and {len(episode.actions)} actions for {length} rewards (Minari stores "
                    "one more observation than steps)."
                )
            parts["observations"].append(obs[:-1])
            parts["next_observations"].append(obs[1:])
            parts["actions"].append(np.asarray(episode.actions))
            parts["rewards"].append(np.asarray(episode.rewards, np.float32))
            parts["terminated"].append(np.asarray(episode.terminations, bool))
            parts["truncated"].append(np.asarray(episode.truncations, bool))
    except (OSError, KeyError) as error:
        raise ValueError(f"--dataset={source}: cannot read its episodes ({error})") from error
    if not parts["rewards"]:
        raise ValueError(f"--dataset={source}: the Minari dataset holds no episodes")
    data = {k: np.concatenate(v) for k, v in parts.items()}
    for name in ("observations", "next_observations"):
        if data[name].dtype == np.float64:
            data[name] = data[name].astype(np.float32)
    if data["actions"].dtype == np.float64:
        data["actions"] = data["actions"].astype(np.float32)
    return data


def minari_info(source: str) -> dict[str, Any]:
    """Metadata: env id, collecting policy, episode returns, reference returns (or None)."""
    dataset = _open(
        source if source.startswith(PREFIX) or Path(source).exists() else PREFIX + source
    )
    metadata = dataset.storage.metadata
    dataset_id = metadata.get("dataset_id", "")
    low, high = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if low is None or high is None:
        task = next((t for t in D4RL_REFERENCE_RETURNS if f"/{t}/" in f"/{dataset_id}/"), None)
        if task is not None:
            low, high = D4RL_REFERENCE_RETURNS[task]
    returns = metadata.get("rlzoo_episode_returns")
    if returns is None:
        returns = [float(np.sum(e.rewards)) for e in dataset.iterate_episodes()]
    return {
        "dataset_id": dataset_id,
        "env_id": metadata.get("rlzoo_env_id") or (metadata.get("env_spec") or None),
        "policy": metadata.get("algorithm_name"),
        "episode_returns": returns,
        "random_return": low,
        "expert_return": high,
        "total_steps": metadata.get("total_steps"),
    }
