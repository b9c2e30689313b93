"""Feature extractors shared by policies and critics."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import numpy as np

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "elu": nn.elu, "silu": nn.silu, "gelu": nn.gelu}


def activation_fn(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def orthogonal(scale: float = np.sqrt(2.0)):
    return nn.initializers.orthogonal(scale)


class MLP(nn.Module):
    """Dense layers with orthogonal initialisation (gain sqrt 2), as in PPO implementations."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        for size in self.hidden_sizes:
            x = act(nn.Dense(size, kernel_init=orthogonal(), bias_init=nn.initializers.zeros)(x))
        return x


class MinAtarCNN(nn.Module):
    """One 3x3 convolution and dense layers, the usual MinAtar torso (10x10xC images)."""

    hidden_sizes: Sequence[int] = (128,)
    activation: str = "relu"
    channels: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        x = act(nn.Conv(self.channels, (3, 3), padding="VALID", kernel_init=orthogonal())(x))
        x = x.reshape((*x.shape[:-3], -1))
        for size in self.hidden_sizes:
            x = act(nn.Dense(size, kernel_init=orthogonal(), bias_init=nn.initializers.zeros)(x))
        return x


def make_torso(kind: str, hidden_sizes: Sequence[int], activation: str) -> nn.Module:
    if kind == "mlp":
        return MLP(tuple(hidden_sizes), activation)
    if kind == "cnn":
        return MinAtarCNN(tuple(hidden_sizes), activation)
    raise ValueError(f"unknown torso {kind!r}; known: 'mlp', 'cnn'")
