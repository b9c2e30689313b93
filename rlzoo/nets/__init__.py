"""Flax networks: torsos, policy heads and critics."""

from rlzoo.nets.actor_critic import ActorCritic, Policy, action_distribution
from rlzoo.nets.torsos import MLP, MinAtarCNN, make_torso

__all__ = ["MLP", "ActorCritic", "MinAtarCNN", "Policy", "action_distribution", "make_torso"]
