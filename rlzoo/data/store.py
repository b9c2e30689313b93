"""Datasets on disk (``.npz``, read without unpickling) and their fingerprints."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rlzoo.data import minari_store  # imports the minari package only when one is read


def save_npz(path: str | Path, dataset: dict[str, Any]) -> None:
    """Write ``dataset`` (a flat dict of arrays) to ``path`` atomically."""
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in dataset.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_dataset(source: str) -> dict[str, np.ndarray]:
    """The dataset at ``source``: ``minari:<id>`` (a local Minari dataset, by name), the
    directory of a Minari dataset, or a ``.npz`` file of arrays. Nothing is unpickled;
    every field is checked for one length and for NaN / inf.
    """
    if minari_store.is_minari_source(source):
        return validate_arrays(minari_store.load_minari(source), source)
    path = Path(source)
    if not path.is_file():
        raise ValueError(
            f"--dataset={source}: no such file; give the path of a .npz dataset, a Minari "
            "dataset directory, or minari:<dataset id>."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            dataset = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(
            f"--dataset={source}: cannot read it as a .npz dataset ({error}); datasets are "
            "written by rlzoo.data.save_npz (numpy arrays, no pickled objects)."
        ) from error
    return validate_arrays(dataset, source)


def data_fingerprint(data: Any) -> dict[str, Any]:
    """A SHA-256 over every leaf's path, dtype, shape and bytes, and the leaves' shapes.

    Recorded in a run's ``config.json`` so that a resumed run can refuse different data.
    """
    digest = hashlib.sha256()
    leaves = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(data):
        name = jax.tree_util.keystr(path)
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
        leaves[name] = [list(array.shape), str(array.dtype)]
    return {"sha256": digest.hexdigest(), "leaves": leaves}


# Fields an offline RL dataset holds, and what each one is per transition.
OFFLINE_FIELDS = {
    "observations": "the state the action was taken in",
    "actions": "the action taken",
    "rewards": "the reward received",
    "terminated": "the episode really ended here (no bootstrap)",
    "truncated": "the episode was cut here by a time limit or the end of the data",
    "next_observations": "where the action led (the final observation on an episode end)",
}


def placeholder_dataset(env: Any, env_params: Any) -> dict[str, np.ndarray]:
    """One zero transition per field, shaped for ``env``: what an agent's ``init`` needs to
    trace its state's shapes when the real dataset is not at hand (restoring a ``--base``
    run). Values are meaningless; every array is replaced by the checkpoint's."""
    obs_space, action_space = env.observation_space(env_params), env.action_space(env_params)
    observations = np.zeros((1, *obs_space.shape), np.float32)
    return {
        "observations": observations,
        "actions": np.zeros((1, *action_space.shape), np.dtype(action_space.dtype)),
        "rewards": np.zeros((1,), np.float32),
        "terminated": np.zeros((1,), bool),
        "truncated": np.zeros((1,), bool),
        "next_observations": observations,
    }


def check_dataset(
    data: dict[str, Any],
    env: Any,
    env_params: Any,
    required: tuple[str, ...] = tuple(OFFLINE_FIELDS),
) -> None:
    """Refuse a dataset that lacks a field or whose shapes do not fit the env.

    Shapes are known at trace time, so agents call this in ``init``; the message names the
    field and both shapes.
    """
    if not isinstance(data, dict):
        raise ValueError(f"the dataset must be a dict of arrays, got {type(data).__name__}")
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(
            f"the dataset has no {', '.join(repr(m) for m in missing)} array(s); it has "
            f"{sorted(data)}. Offline datasets hold {', '.join(OFFLINE_FIELDS)}."
        )
    obs_shape = tuple(env.observation_space(env_params).shape)
    action_shape = tuple(env.action_space(env_params).shape)
    expected = {"observations": obs_shape, "next_observations": obs_shape, "actions": action_shape}
    for name in ("rewards", "terminated", "truncated"):
        expected[name] = ()
    for name, shape in expected.items():
        if name in data and tuple(np.shape(data[name])[1:]) != shape:
            raise ValueError(
                f"dataset field {name!r} has shape {tuple(np.shape(data[name])[1:])} per "
                f"transition but {getattr(env, 'id', 'the env')} needs {shape}."
            )


def validate_arrays(dataset: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Host-side checks after loading: numeric arrays, one length, no NaN or inf."""
    lengths = {}
    for name, array in dataset.items():
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"--dataset={source}: field {name!r} has dtype {array.dtype}; datasets hold "
                "numeric arrays only."
            )
        if array.ndim == 0:
            raise ValueError(f"--dataset={source}: field {name!r} is a scalar, not per sample.")
        lengths[name] = array.shape[0]
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            bad = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(
                f"--dataset={source}: field {name!r} holds NaN or inf (first at index "
                f"{tuple(int(i) for i in bad)}); clean the dataset before training."
            )
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"--dataset={source}: fields disagree on the number of samples: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(lengths.items()))
        )
    return dataset
