"""Flax networks: torsos, policy heads and critics."""

from rlzoo.nets.actor_critic import ActorCritic
from rlzoo.nets.torsos import MLP, MinAtarCNN, make_torso

__all__ = ["MLP", "ActorCritic", "MinAtarCNN", "make_torso"]
