"""Orbax checkpoints of the whole (batched) training state, plus a small JSON record.

Orbax writes each step into a temporary folder and renames it when complete, so a crash
during a save leaves the previous checkpoints intact and readable. Saves are asynchronous:
the state is copied off the device before ``save`` returns (so it may then be donated to
the next chunk) and written to disk while training goes on; the next save, a restore and
``close`` wait for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, directory: str | Path, max_to_keep: int = 3):
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def save(self, iteration: int, state: Any, record: dict[str, Any]) -> None:
        self.manager.wait_until_finished()  # one save in flight at a time
        self.manager.save(
            iteration,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)
            ),
        )

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def latest_iteration(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, iteration: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
        restored = self.manager.restore(
            iteration,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), record=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], restored["record"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
