"""The agent contract that every file in ``rlzoo/agents`` follows.

An agent is built from its ``Config`` and an environment into an :class:`Agent`:

* ``init(key, config) -> state``: the whole training state, hyperparameters included;
* ``update(state) -> (state, metrics)``: one training iteration, pure and jittable;
* ``evaluate(state, key) -> metrics``: evaluation episodes of the current policy.

``train(key) = init`` followed by a ``lax.scan`` of ``update``. The launcher instead runs
``update`` in jitted chunks so it can log, evaluate and checkpoint in between.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

PyTree = Any


class Agent(NamedTuple):
    init: Callable[[jax.Array, PyTree], PyTree]
    update: Callable[[PyTree], tuple[PyTree, PyTree]]
    evaluate: Callable[[PyTree, jax.Array], dict[str, jax.Array]]
    num_iterations: int
    steps_per_iteration: int


def scan_updates(agent: Agent, state: PyTree, num_iterations: int) -> tuple[PyTree, PyTree]:
    """Run ``num_iterations`` updates in one ``lax.scan``; metrics stacked per iteration."""
    return jax.lax.scan(lambda s, _: agent.update(s), state, None, num_iterations)


def make_train(agent: Agent, default_config: PyTree) -> Callable[..., tuple[PyTree, PyTree]]:
    """``train(key, config=default_config) -> (final_state, metrics)``, pure and vmappable.

    Vmap over keys for seeds; vmap over a config whose traced fields carry a batch axis
    for a hyperparameter sweep.
    """

    def train(key: jax.Array, config: PyTree = default_config) -> tuple[PyTree, PyTree]:
        return scan_updates(agent, agent.init(key, config), agent.num_iterations)

    return train
