"""Datasets for agents that learn from data: collect transitions, store them, load them.

A dataset is a dict of arrays that share the leading (transition) axis:
``observations``, ``actions``, ``rewards``, ``terminated``, ``truncated``,
``next_observations``. It reaches an agent through the ``data`` argument of the agent
contract (``rlzoo.core.agent``), never as a constant baked into a compiled program.

``load_dataset`` reads ``.npz`` files, Minari datasets by path and ``minari:<id>`` (local,
never downloaded; ``rlzoo.data.minari_store``). The replay buffer of off-policy agents is
``rlzoo.data.replay``; minibatches, trajectory weighting and the neighbour search of
offline agents are ``rlzoo.data.sampling``; TQ and SACo are ``rlzoo.data.metrics``.
"""

from rlzoo.data.minari_store import minari_info, normalized_score, write_minari
from rlzoo.data.rollout import collect_transitions
from rlzoo.data.store import check_dataset, data_fingerprint, load_dataset, save_npz

__all__ = [
    "check_dataset",
    "collect_transitions",
    "data_fingerprint",
    "load_dataset",
    "minari_info",
    "normalized_score",
    "save_npz",
    "write_minari",
]
