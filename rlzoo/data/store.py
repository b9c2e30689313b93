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
    """The dataset at ``source``: a ``.npz`` file of arrays (object arrays are refused)."""
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"--dataset={source}: no such file; give the path of a .npz dataset.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(
            f"--dataset={source}: cannot read it as a .npz dataset ({error}); datasets are "
            "written by rlzoo.data.save_npz (numpy arrays, no pickled objects)."
        ) from error


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
