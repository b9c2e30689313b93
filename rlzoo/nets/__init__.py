"""Flax networks: torsos, policy heads and critics."""

from rlzoo.nets.actor_critic import ActorCritic, Policy, action_distribution, multi_categorical
from rlzoo.nets.critics import (
    ActionBounds,
    ActionVAE,
    DeterministicActor,
    GaussianActor,
    QNetwork,
    TanhGaussianActor,
    ValueNetwork,
    gaussian_log_prob,
    sample_tanh_gaussian,
    tanh_gaussian_log_prob,
)
from rlzoo.nets.torsos import MLP, MinAtarCNN, make_torso
from rlzoo.nets.transformer import Transformer, completion_log_probs, sample

__all__ = [
    "MLP",
    "ActionBounds",
    "ActionVAE",
    "ActorCritic",
    "DeterministicActor",
    "GaussianActor",
    "MinAtarCNN",
    "Policy",
    "QNetwork",
    "TanhGaussianActor",
    "Transformer",
    "ValueNetwork",
    "action_distribution",
    "completion_log_probs",
    "gaussian_log_prob",
    "make_torso",
    "multi_categorical",
    "sample",
    "sample_tanh_gaussian",
    "tanh_gaussian_log_prob",
]
