"""What the runner reports to, between chunks: progress bar, TensorBoard, Weights & Biases.

A callback sees host numpy arrays only. ``on_metrics`` gets one chunk of training metrics,
each ``[agents, iterations of the chunk]``; ``on_eval`` gets one evaluation, each
``[agents]``. Steps are in the agent's own unit (``RunInfo.step_unit``). Write your own by
subclassing :class:`Callback` and passing it to ``rlzoo.launch.runner.run``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class RunInfo:
    run_dir: Path
    agent: str
    env: str
    num_agents: int
    num_iterations: int
    steps_per_iteration: int
    step_unit: str
    score_key: str
    start_iteration: int
    resume: bool
    config: dict[str, Any]  # what config.json holds


class Callback:
    """Does nothing; override what you need."""

    def on_start(self, info: RunInfo) -> None:
        pass

    def on_metrics(self, iteration: int, metrics: dict[str, np.ndarray], seconds: float) -> None:
        """``iteration`` is the last of the chunk; ``seconds`` its wall time."""

    def on_eval(self, iteration: int, results: dict[str, np.ndarray]) -> None:
        pass

    def on_end(self, summary: dict[str, Any]) -> None:
        """The run finished; ``summary`` is what ``summary.json`` holds."""

    def close(self) -> None:
        """Always called last, also when the run stops with an error."""


class _Scalars(Callback):
    """Seed-mean scalars per iteration and per evaluation, stepped in the agent's unit."""

    def on_start(self, info: RunInfo) -> None:
        self.steps_per_iteration = info.steps_per_iteration

    def scalars(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def on_metrics(self, iteration, metrics, seconds):
        length = next(iter(metrics.values())).shape[1]
        means = {name: np.mean(v, axis=0) for name, v in metrics.items()}
        for k in range(length):
            step = (iteration - length + k + 1) * self.steps_per_iteration
            self.scalars({name: float(v[k]) for name, v in means.items()}, step)

    def on_eval(self, iteration, results):
        step = iteration * self.steps_per_iteration
        self.scalars({k: float(np.mean(v)) for k, v in results.items()}, step)


class TensorBoard(_Scalars):
    def on_start(self, info: RunInfo) -> None:
        from tensorboardX import SummaryWriter

        super().on_start(info)
        self.writer = SummaryWriter(str(info.run_dir / "tensorboard"))

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if hasattr(self, "writer"):
            self.writer.close()


class Wandb(_Scalars):
    """A Weights & Biases run named after the run directory (resumed under the same id)."""

    def __init__(self, project: str):
        try:
            import wandb
        except ImportError as error:
            raise ValueError(
                "--wandb_project needs the wandb package: pip install wandb (or leave "
                "--wandb_project empty to log to TensorBoard and metrics/ only)"
            ) from error
        self.wandb, self.project = wandb, project

    def on_start(self, info: RunInfo) -> None:
        super().on_start(info)
        self.run = self.wandb.init(
            project=self.project,
            name=info.run_dir.name,
            id=info.run_dir.name if info.resume else None,
            resume="allow" if info.resume else None,
            dir=str(info.run_dir),
            config=info.config,
        )

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        if hasattr(self, "run"):
            self.run.finish()


class ProgressBar(Callback):
    """tqdm over the run's steps: iteration, latest evaluation score, steps per second."""

    def on_start(self, info: RunInfo) -> None:
        from tqdm import tqdm

        self.info, self.score = info, float("nan")
        self.bar = tqdm(
            total=info.num_iterations * info.steps_per_iteration,
            initial=info.start_iteration * info.steps_per_iteration,
            unit=info.step_unit.rstrip("s").replace("_", " "),
            unit_scale=True,
            dynamic_ncols=True,
        )

    def on_metrics(self, iteration, metrics, seconds):
        length = next(iter(metrics.values())).shape[1]
        steps = length * self.info.steps_per_iteration
        self.bar.update(steps)
        self.bar.set_postfix(
            {
                "iter": f"{iteration}/{self.info.num_iterations}",
                self.info.score_key.rsplit("/", 1)[-1]: f"{self.score:.1f}",
                # steps per second summed over every agent in the program
                "sps": f"{steps * self.info.num_agents / seconds:.3g}",
            }
        )

    def on_eval(self, iteration, results):
        self.score = float(np.mean(results[self.info.score_key]))

    def close(self) -> None:
        if hasattr(self, "bar"):
            self.bar.close()


def default_callbacks(
    progress: bool = True, tensorboard: bool = True, wandb_project: str = ""
) -> list[Callback]:
    """The command line's reporters: progress bar, TensorBoard, W&B when a project is set."""
    callbacks: list[Callback] = []
    if progress:
        callbacks.append(ProgressBar())
    if tensorboard:
        callbacks.append(TensorBoard())
    if wandb_project:
        callbacks.append(Wandb(wandb_project))
    return callbacks
