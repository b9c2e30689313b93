"""Scalar loggers besides ``metrics.jsonl``: TensorBoard events and Weights & Biases."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TensorBoardLogger:
    def __init__(self, run_dir: Path):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """Weights & Biases run named after the run directory; off unless a project is given."""

    def __init__(self, run_dir: Path, project: str, config: dict[str, Any], resume: bool):
        try:
            import wandb
        except ImportError as error:
            raise ValueError(
                "--wandb_project needs the wandb package: pip install wandb (or leave "
                "--wandb_project empty to log to TensorBoard and metrics.jsonl only)"
            ) from error
        self.run = wandb.init(
            project=project,
            name=run_dir.name,
            id=run_dir.name if resume else None,
            resume="allow" if resume else None,
            dir=str(run_dir),
            config=config,
        )

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class Loggers:
    """Fan scalars out to every enabled logger (none is also fine)."""

    def __init__(self, loggers: list[Any]):
        self.loggers = loggers

    def scalars(self, values: dict[str, float], step: int) -> None:
        for logger in self.loggers:
            logger.scalars(values, step)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def make_loggers(
    run_dir: Path, tensorboard: bool, wandb_project: str, config: dict[str, Any], resume: bool
) -> Loggers:
    loggers: list[Any] = []
    if tensorboard:
        loggers.append(TensorBoardLogger(run_dir))
    if wandb_project:
        loggers.append(WandbLogger(run_dir, wandb_project, config, resume))
    return Loggers(loggers)
