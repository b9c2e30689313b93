"""Datasets for agents that learn from data: collect transitions, store them, load them.

A dataset is a dict of arrays that share the leading (transition) axis:
``observations``, ``actions``, ``rewards``, ``terminated``, ``truncated``,
``next_observations``. It reaches an agent through the ``data`` argument of the agent
contract (``rlzoo.core.agent``), never as a constant baked into a compiled program.
"""

from rlzoo.data.rollout import collect_transitions
from rlzoo.data.store import data_fingerprint, load_dataset, save_npz

__all__ = ["collect_transitions", "data_fingerprint", "load_dataset", "save_npz"]
