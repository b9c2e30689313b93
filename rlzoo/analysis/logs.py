"""The metrics a run logs, as arrays in its run directory (``metrics/``).

The runner writes them (``rlzoo.launch.runner``); the report and anyone else read them
here, as arrays (:meth:`MetricsLog.train`, :meth:`MetricsLog.evaluations`) or as rows
(:meth:`MetricsLog.rows`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


class MetricsLog:
    """``metrics/``: what a run logs, as arrays, one file per chunk and per evaluation.

    ``train-<first iteration>.npz`` holds ``iteration`` (``[T]``) and one ``[agents, T]``
    array per training metric, for the ``T`` iterations of one chunk; ``eval-<iteration>.npz``
    holds one ``[agents]`` array per evaluation metric. A chunk leaves the device as arrays
    and is written in one bulk write, so the host does not loop over iterations x seeds,
    even for thousands of seeds. Each file is written whole (temporary file, fsync,
    rename): a crash never leaves a cut file. On resume :meth:`truncate_after` drops the
    files past the checkpoint, so a resumed run's metrics equal an uninterrupted run's.
    """

    def __init__(self, directory: str | Path, writable: bool = True):
        self.directory = Path(directory)
        self.writable = writable  # in a multi-process job only process 0 writes

    def append_train(self, first_iteration: int, metrics: dict[str, np.ndarray]) -> None:
        """One chunk: ``metrics[name]`` is ``[agents, T]`` for iterations ``first, ...``."""
        if not metrics:
            return
        length = next(iter(metrics.values())).shape[1]
        iterations = np.arange(first_iteration, first_iteration + length)
        self._write(f"train-{first_iteration:09d}.npz", {"iteration": iterations, **metrics})

    def append_eval(self, iteration: int, results: dict[str, np.ndarray]) -> None:
        """One evaluation after ``iteration``: ``results[name]`` is ``[agents]``."""
        self._write(f"eval-{iteration:09d}.npz", results)

    def _write(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        if not self.writable:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _files(self, kind: str) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob(f"{kind}-*.npz"):
            with contextlib.suppress(ValueError):  # a foreign file is not ours
                found.append((int(path.stem.split("-", 1)[1]), path))
        return sorted(found)

    def _read(self, kind: str) -> list[tuple[int, dict[str, np.ndarray]]]:
        out = []
        for number, path in self._files(kind):
            with np.load(path, allow_pickle=False) as arrays:
                out.append((number, {k: arrays[k] for k in arrays.files}))
        return out

    def train(self) -> dict[str, np.ndarray]:
        """All training metrics: ``iteration`` ``[T]`` and ``[agents, T]`` per metric."""
        chunks = [arrays for _, arrays in self._read("train")]
        if not chunks:
            return {}
        names = sorted(set().union(*chunks))
        return {
            n: np.concatenate([c[n] for c in chunks], axis=0 if n == "iteration" else 1)
            for n in names
        }

    def evaluations(self) -> dict[str, np.ndarray]:
        """All evaluations: ``iteration`` ``[E]`` and ``[agents, E]`` per metric."""
        evals = self._read("eval")
        if not evals:
            return {}
        names = sorted(set().union(*(e for _, e in evals)))
        return {"iteration": np.array([i for i, _ in evals])} | {
            n: np.stack([e[n] for _, e in evals], axis=1) for n in names
        }

    def rows(self, num_seeds: int, steps_per_iteration: int) -> list[dict[str, Any]]:
        """Every logged value as one row per iteration (or evaluation) and agent.

        Agent ``a`` is seed ``a % num_seeds`` of sweep point ``a // num_seeds``. Training
        rows come first (iteration-major), then evaluation rows (``"eval": True``).
        """
        rows = []
        for table, extra in ((self.train(), {}), (self.evaluations(), {"eval": True})):
            if not table:
                continue
            iterations = table.pop("iteration").tolist()
            columns = {k: v.tolist() for k, v in table.items()}
            num_agents = len(next(iter(columns.values())))
            rows += [
                {"iteration": it, "seed": a % num_seeds, "config": a // num_seeds, **extra}
                | {"step": it * steps_per_iteration}
                | {k: column[a][t] for k, column in columns.items()}
                for t, it in enumerate(iterations)
                for a in range(num_agents)
            ]
        return rows

    def truncate_after(self, iteration: int) -> None:
        """Drop what was logged after ``iteration`` (chunks end on checkpoint iterations)."""
        if not self.writable:
            return
        for kind in ("train", "eval"):
            for number, path in self._files(kind):
                if number > iteration:
                    path.unlink()
        for _, path in self._files("train"):  # a chunk that runs past the checkpoint
            with np.load(path, allow_pickle=False) as arrays:
                table = {k: arrays[k] for k in arrays.files}
            keep = table["iteration"] <= iteration
            if not keep.all():
                table = {k: v[keep] if k == "iteration" else v[:, keep] for k, v in table.items()}
                self._write(path.name, table)


def read_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of :meth:`MetricsLog.rows` for the run directory ``run_dir``."""
    with open(Path(run_dir) / "config.json") as f:
        config = json.load(f)
    log = MetricsLog(Path(run_dir) / "metrics")
    return log.rows(config["run"]["num_seeds"], config["agent"]["steps_per_iteration"])
