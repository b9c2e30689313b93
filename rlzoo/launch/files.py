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


class RunDirInUse(RuntimeError):
    """Another live process holds the run directory's lock."""


class RunLock:
    """``<run_dir>/.lock``: one writer per run directory.

    The file holds the owner's host and pid. A lock whose process is gone (same host, pid
    not running) or that names no owner is stale and taken over; a live one is refused
    with its owner named.
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / ".lock"
        self.held = False

    def acquire(self) -> None:
        import socket

        host, pid = socket.gethostname(), os.getpid()
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._owner()
                # Stale: its process is gone, or it died before writing its name.
                if owner is None or (owner[0] == host and not _alive(owner[1])):
                    self.path.unlink(missing_ok=True)
                    continue
                who = f"process {owner[1]} on {owner[0]}" if owner else "another process"
                raise RunDirInUse(
                    f"{self.path.parent} is in use by {who}; wait for it to finish, stop it, "
                    f"or delete {self.path} if that process is gone."
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps({"host": host, "pid": pid}))
            self.held = True
            return

    def _owner(self) -> tuple[str, int] | None:
        try:
            data = json.loads(self.path.read_text())
            return str(data["host"]), int(data["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
