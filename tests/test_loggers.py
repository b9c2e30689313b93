"""Scalar loggers: TensorBoard files, Weights & Biases calls (a stand-in module), errors."""

import sys
import types

import pytest

from rlzoo.launch.loggers import make_loggers


class FakeRun:
    def __init__(self, **kwargs):
        self.init_kwargs, self.logged, self.finished = kwargs, [], False

    def log(self, values, step):
        self.logged.append((step, dict(values)))

    def finish(self):
        self.finished = True


def test_wandb_receives_every_scalar_with_its_step(tmp_path, monkeypatch):
    runs = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: runs.append(FakeRun(**kwargs)) or runs[-1]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    loggers = make_loggers(
        tmp_path, tensorboard=True, wandb_project="proj", config={"lr": 1e-3}, resume=False
    )
    loggers.scalars({"train/loss": 0.5, "train/entropy": 0.7}, step=512)
    loggers.scalars({"eval/deterministic_return": 200.0}, step=1024)
    loggers.close()
    (run,) = runs
    assert run.init_kwargs["project"] == "proj" and run.init_kwargs["config"] == {"lr": 1e-3}
    assert run.logged == [
        (512, {"train/loss": 0.5, "train/entropy": 0.7}),
        (1024, {"eval/deterministic_return": 200.0}),
    ]
    assert run.finished
    assert any((tmp_path / "tensorboard").iterdir())


def test_wandb_off_by_default_and_missing_package_is_a_clear_error(tmp_path, monkeypatch):
    assert make_loggers(tmp_path, False, "", {}, False).loggers == []
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(ValueError, match="pip install wandb"):
        make_loggers(tmp_path, False, "proj", {}, False)
