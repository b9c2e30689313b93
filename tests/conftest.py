"""Test hygiene shared by every test file."""

import contextlib
import os
import signal
from pathlib import Path

import pytest


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux: read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(autouse=True)
def kill_leftover_children():
    """A subprocess a test started and left running (a timeout, a failed assert) is killed."""
    before = set(_children(os.getpid()))
    yield
    for pid in set(_children(os.getpid())) - before:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
