"""Train an agent from the shell: many seeds in one compiled program, sharded over devices.

    python -m rlzoo.train --agent=ppo --env=gymnax/CartPole-v1 --num_seeds=8 \\
        --config.learning_rate=3e-4 --run_dir=runs/cartpole
    python -m rlzoo.train --agent=ppo --env=gymnax/CartPole-v1 --describe   # every field

The run directory holds ``config.json``, ``metrics/`` (arrays per chunk of iterations and
per evaluation), TensorBoard events, orbax ``checkpoints/`` and ``summary.json``. A run that was
killed continues with ``--resume --run_dir=DIR`` and ends with the same numbers as an
uninterrupted one. The library behind it is ``rlzoo.launch.runner``.
"""

from __future__ import annotations

from rlzoo import cli
from rlzoo.launch.callbacks import default_callbacks
from rlzoo.launch.runner import RunSpec, run


def main(spec: RunSpec) -> None:
    flags = cli.FLAGS
    callbacks = default_callbacks(flags.progress, flags.tensorboard, flags.wandb_project)
    changes = cli.resume_changes(spec) if flags.resume else None
    run(spec, resume=flags.resume, callbacks=callbacks, changes=changes)


def entry() -> None:
    cli.entry("rlzoo.train", main)


if __name__ == "__main__":
    entry()
