"""Run-directory files written so that a crash never leaves a half-written file behind."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Inf; readers see null
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, data: Any) -> None:
    write_atomic(path, json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


class MetricsLog:
    """``metrics.jsonl``: one JSON object per logged iteration and seed, appended.

    Each batch of lines is appended with one write and fsynced. On resume,
    :meth:`truncate_after` drops lines past the checkpoint (atomically), so a resumed
    run's log equals an uninterrupted run's.
    """

    def __init__(self, path: str | Path, writable: bool = True):
        self.path = Path(path)
        self.writable = writable  # in a multi-process job only process 0 writes

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows or not self.writable:
            return
        text = "".join(json.dumps(_jsonable(r), sort_keys=True) + "\n" for r in rows)
        with open(self.path, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = []
        with open(self.path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut by a crash ends the usable log
        return rows

    def truncate_after(self, iteration: int) -> None:
        if not self.writable:
            return
        kept = [r for r in self.read() if r["iteration"] <= iteration]
        write_atomic(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
