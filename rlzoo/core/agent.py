"""The agent contract that every file in ``rlzoo/agents`` follows.

An agent file builds, from its ``Config`` and an environment, an :class:`Agent`:

* ``init(key, config, data) -> state``: the whole training state, traced hyperparameters
  included (so a batch of configs can be vmapped);
* ``update(state, data) -> (state, metrics)``: one training iteration, pure and jittable;
* ``evaluate(state, key, data) -> metrics``: evaluation of the current policy;
* ``act(params, obs, key, deterministic) -> action`` with ``policy_params(state)``: the
  policy alone, for the shared evaluator (:mod:`rlzoo.core.evaluation`), videos and export.

``data`` is an optional pytree that is not training state: a dataset's arrays, a prompt
bank, a frozen base policy. The launcher places it on the devices once, replicated, shares
it across every seed and config of a batch, passes it as an argument to every jitted call
(never a closed-over constant, which would be baked into the compiled program) and never
writes it into a checkpoint. Agents that take no data receive ``None``.

The agent also declares what the launcher reads: ``score_key`` (the evaluation metric that
final tables and progress report), ``step_unit`` (what ``total_steps`` and the launcher's
step counts count) with ``steps_per_iteration`` in that unit, and ``metrics``, the
documented names of everything ``update`` and ``evaluate`` return. Metric names carry a
namespace where they are made (``loss/``, ``policy/``, ``rollout/``, ``eval/``).

``train(key, config, data) = init`` followed by a ``lax.scan`` of ``update``
(:func:`make_train`). The launcher instead runs ``update`` in jitted chunks so it can log,
evaluate and checkpoint in between.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

PyTree = Any

# What an agent's steps count. ``total_steps``, ``--eval_every`` and ``--checkpoint_every``
# are all in the agent's unit.
STEP_UNITS = {
    "env_steps": "environment steps, summed over the agent's parallel envs",
    "gradient_steps": "optimizer updates",
    "samples": "sampled completions (one per prompt and group member)",
}

# What ``data`` an agent takes: none, a dataset (required: a pytree of arrays indexed by
# sample along the leading axis, every leaf the same length) or any pytree (optional, e.g.
# frozen base parameters; the agent then also runs with ``data=None``).
DATA_KINDS = (None, "dataset", "pytree")


@dataclasses.dataclass(frozen=True)
class Agent:
    init: Callable[[jax.Array, PyTree, PyTree], PyTree]
    update: Callable[[PyTree, PyTree], tuple[PyTree, dict[str, jax.Array]]]
    evaluate: Callable[[PyTree, jax.Array, PyTree], dict[str, jax.Array]]
    act: Callable[[PyTree, PyTree, jax.Array, bool], jax.Array]
    policy_params: Callable[[PyTree], PyTree]  # state -> what ``act`` takes as params
    num_iterations: int
    steps_per_iteration: int  # in ``step_unit``
    step_unit: str
    score_key: str  # an ``evaluate`` metric, higher is better
    metrics: Mapping[str, str]  # every metric name ``update`` / ``evaluate`` return -> doc
    data_kind: str | None = None
    # True when ``update`` depends on the whole budget (a learning-rate schedule over the
    # run): then ``total_steps`` cannot be extended when the run is resumed.
    schedule_spans_budget: bool = False

    def __post_init__(self) -> None:
        if self.step_unit not in STEP_UNITS:
            raise ValueError(
                f"unknown step unit {self.step_unit!r}; an agent declares one of "
                f"{', '.join(STEP_UNITS)} (add a new unit to rlzoo.core.agent.STEP_UNITS)."
            )
        if self.data_kind not in DATA_KINDS:
            raise ValueError(f"unknown data kind {self.data_kind!r}; one of {DATA_KINDS}")
        if self.score_key not in self.metrics:
            raise ValueError(f"score key {self.score_key!r} is not among the declared metrics")
        if self.num_iterations < 1:
            raise ValueError(
                f"the budget gives {self.num_iterations} iterations of "
                f"{self.steps_per_iteration} {self.step_unit}; raise total_steps to at least "
                f"{self.steps_per_iteration}."
            )


def check_data(agent_name: str, data_kind: str | None, data: PyTree) -> None:
    """Refuse data that the agent cannot take, in one line that names the fix.

    ``data`` may also be the source path of data not yet read (only its presence is checked).
    """
    if data_kind is None and data is not None:
        raise ValueError(
            f"agent {agent_name!r} takes no data, but data was given; drop --dataset "
            "(or choose an agent that learns from a dataset, such as bc)."
        )
    if data_kind == "dataset" and data is None:
        raise ValueError(
            f"agent {agent_name!r} needs data ({data_kind}); pass --dataset=PATH "
            "(or data=... to rlzoo.launch.runner.run)."
        )
    if data_kind == "dataset" and not isinstance(data, str):
        lengths = {
            "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): (
                np.shape(leaf)[0] if np.ndim(leaf) else None
            )
            for path, leaf in jax.tree_util.tree_leaves_with_path(data)
        }
        if not lengths:
            raise ValueError(f"agent {agent_name!r} got an empty dataset (no arrays).")
        if len(set(lengths.values())) > 1 or None in lengths.values():
            raise ValueError(
                "dataset arrays disagree on the leading (sample) dimension: "
                + ", ".join(f"{k or 'data'}: {v}" for k, v in lengths.items())
                + "; every array must hold one entry per sample."
            )


def scan_updates(
    agent: Agent, state: PyTree, data: PyTree, num_iterations: int
) -> tuple[PyTree, PyTree]:
    """Run ``num_iterations`` updates in one ``lax.scan``; metrics stacked per iteration."""
    return jax.lax.scan(lambda s, _: agent.update(s, data), state, None, num_iterations)


def make_train(agent: Agent, default_config: PyTree) -> Callable[..., tuple[PyTree, PyTree]]:
    """``train(key, config=default_config, data=None) -> (final_state, metrics)``.

    Pure and vmappable: vmap over keys for seeds; vmap over a config whose traced fields
    carry a batch axis for a hyperparameter sweep (``in_axes=None`` for ``data``).
    """

    def train(
        key: jax.Array, config: PyTree = default_config, data: PyTree = None
    ) -> tuple[PyTree, PyTree]:
        state = agent.init(key, config, data)
        return scan_updates(agent, state, data, agent.num_iterations)

    return train
