"""Feature extractors shared by policies and critics."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlzoo.envs.core import ACTION_MASK, Dict

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "elu": nn.elu, "silu": nn.silu, "gelu": nn.gelu}


def layer_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """``sizes`` as a tuple, each checked to be at least 1 (a zero-width layer cannot be
    initialised, and a negative one is a typo)."""
    sizes = tuple(sizes)
    if any(size < 1 for size in sizes):
        raise ValueError(
            f"hidden layer sizes must be >= 1, got {sizes}; give the agent's hidden_sizes "
            "positive widths, for example --config.hidden_sizes=(64,64)"
        )
    return sizes


def activation_fn(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def orthogonal(scale: float = np.sqrt(2.0)):
    return nn.initializers.orthogonal(scale)


class MLP(nn.Module):
    """Dense layers with orthogonal initialisation (gain sqrt 2), as in PPO implementations.

    ``flatten`` trailing input dimensions are joined first (3 for ``H x W x C`` images).
    """

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    flatten: int = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        if self.flatten:
            x = x.reshape((*x.shape[: x.ndim - self.flatten], -1))
        for size in layer_sizes(self.hidden_sizes):
            x = act(nn.Dense(size, kernel_init=orthogonal(), bias_init=nn.initializers.zeros)(x))
        return x


class PatchConv(nn.Module):
    """A VALID 2-D convolution written as patches times a matrix (one ``einsum``).

    The same parameters (``kernel`` ``[kh, kw, C, F]``, ``bias``) and initialisation as
    ``nn.Conv``. Why: vmapped over seeds, ``nn.Conv`` becomes a grouped convolution, which
    XLA's CPU backend ran far slower than the batched matrix product this is (PPO on
    Breakout-MinAtar, 8 seeds; this version's speed: experiments/minatar_torso_speed.py).
    """

    features: int
    kernel_size: tuple[int, int] = (3, 3)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        kernel = self.param("kernel", orthogonal(), (kh, kw, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        h, w = x.shape[-3] - kh + 1, x.shape[-2] - kw + 1
        patches = jnp.stack(
            [
                jnp.stack([x[..., i : i + h, j : j + w, :] for j in range(kw)], axis=-2)
                for i in range(kh)
            ],
            axis=-3,
        )  # [..., h, w, kh, kw, C]
        return jnp.einsum("...hwijc,ijcf->...hwf", patches, kernel) + bias


class MinAtarCNN(nn.Module):
    """One 3x3 convolution and dense layers, the usual MinAtar torso (10x10xC images)."""

    hidden_sizes: Sequence[int] = (128,)
    activation: str = "relu"
    channels: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        # Named as nn.Conv would be, so parameters and their initial values are unchanged.
        x = act(PatchConv(self.channels, (3, 3), name="Conv_0")(x))
        x = x.reshape((*x.shape[:-3], -1))
        for size in layer_sizes(self.hidden_sizes):
            x = act(nn.Dense(size, kernel_init=orthogonal(), bias_init=nn.initializers.zeros)(x))
        return x


# One entry of a pytree observation: its path of keys and how many trailing axes one
# observation has (0 for a scalar, 3 for an H x W x C image).
ObsEntry = tuple[tuple[str, ...], int]


def observation_entries(space, skip: Sequence[str] = (ACTION_MASK,)) -> tuple[ObsEntry, ...]:
    """The entries of a ``Dict`` observation space a flat torso reads, in order: every
    array entry (nested ones too) except those named in ``skip`` (the action mask)."""
    entries: list[ObsEntry] = []

    def walk(sub, path):
        if isinstance(sub, Dict):
            for name, inner in sub.spaces:
                if name not in skip:
                    walk(inner, (*path, name))
        else:
            entries.append((path, len(sub.shape)))

    walk(space, ())
    return tuple(entries)


def flatten_entries(obs, entries: Sequence[ObsEntry]) -> jax.Array:
    """One float32 feature vector per observation: each entry's trailing axes flattened,
    the entries concatenated (leading batch axes kept)."""
    parts = []
    for path, event_ndim in entries:
        x = obs
        for name in path:
            x = x[name]
        x = jnp.asarray(x, jnp.float32)
        parts.append(x.reshape((*x.shape[: x.ndim - event_ndim], -1)))
    return jnp.concatenate(parts, axis=-1)


class TreeMLP(nn.Module):
    """An MLP on a pytree observation (``TreeObservation``): the ``entries`` (see
    :func:`observation_entries`) flattened and concatenated, then dense layers. Enough for
    the suites' symbolic observations (Jumanji's grids and scalars, Craftax's features);
    the action mask is not an input (the policy head applies it)."""

    entries: tuple[ObsEntry, ...]
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs) -> jax.Array:
        return MLP(tuple(self.hidden_sizes), self.activation)(flatten_entries(obs, self.entries))


def make_torso(
    kind: str,
    hidden_sizes: Sequence[int],
    activation: str,
    obs_entries: tuple[ObsEntry, ...] | None = None,
) -> nn.Module:
    """``obs_entries`` (pytree observations only): the entries an MLP torso reads."""
    if obs_entries is not None:
        if kind not in ("mlp", "flat_mlp"):
            raise ValueError(f"torso {kind!r} takes array observations; pytree ones: 'mlp'")
        return TreeMLP(obs_entries, tuple(hidden_sizes), activation)
    if kind == "mlp":
        return MLP(tuple(hidden_sizes), activation)
    if kind == "flat_mlp":  # an MLP on flattened images (MinAtar's 10 x 10 x C)
        return MLP(tuple(hidden_sizes), activation, flatten=3)
    if kind == "cnn":
        return MinAtarCNN(tuple(hidden_sizes), activation)
    raise ValueError(f"unknown torso {kind!r}; known: 'mlp', 'flat_mlp', 'cnn'")
