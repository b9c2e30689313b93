"""Q networks and bounded actors for off-policy and offline agents (SAC, TD3, TD3+BC, IQL).

Actors act in the unit box ``[-1, 1]^d``; :class:`ActionBounds` maps those actions to the
env's own bounds and back, so critics, replay buffers and losses all see unit actions and
noise scales (TD3's 0.2 / 0.5) mean the same on every env.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlzoo.nets.torsos import activation_fn, layer_sizes

# SAC's usual clamp of the Gaussian's log standard deviation (Haarnoja et al.; CleanRL).
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class DenseStack(nn.Module):
    """Dense layers with the default (LeCun-normal) initialisation and a linear output."""

    hidden_sizes: Sequence[int]
    out_size: int
    activation: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        for size in layer_sizes(self.hidden_sizes):
            x = nn.Dense(size)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = act(x)
        return nn.Dense(self.out_size)(x)


class QNetwork(nn.Module):
    """``(obs, action) -> Q`` for ``num_critics`` independent critics, stacked on axis 0."""

    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    num_critics: int = 2
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            DenseStack,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        x = jnp.concatenate([obs, action], axis=-1)
        q = ensemble(tuple(self.hidden_sizes), 1, self.activation, self.layer_norm)(x)
        return jnp.squeeze(q, -1)


class ValueNetwork(nn.Module):
    """``obs -> V`` (IQL's expectile value)."""

    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        v = DenseStack(tuple(self.hidden_sizes), 1, self.activation, self.layer_norm)(obs)
        return jnp.squeeze(v, -1)


class DeterministicActor(nn.Module):
    """``obs -> tanh(...)``: one action in the unit box (TD3, TD3+BC)."""

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.tanh(DenseStack(tuple(self.hidden_sizes), self.action_dim, self.activation)(obs))


class TanhGaussianActor(nn.Module):
    """``obs -> (mean, log_std)`` of a Gaussian that :func:`sample_tanh_gaussian` squashes."""

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = DenseStack(tuple(self.hidden_sizes), 2 * self.action_dim, self.activation)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class GaussianActor(nn.Module):
    """``obs -> (tanh(mean), log_std)``: a Gaussian around a unit-box mean with a
    state-independent log std (IQL's policy; actions are clipped to the box when sampled)."""

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = DenseStack(tuple(self.hidden_sizes), self.action_dim, self.activation)(obs)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        log_std = jnp.broadcast_to(jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX), mean.shape)
        return jnp.tanh(mean), log_std


class ActionVAE(nn.Module):
    """A state-conditioned VAE of actions (BCQ's; A2PR's behaviour model), unit-box outputs.

    ``(obs, action, key) -> (reconstruction, latent mean, latent std)``; ``decode(obs, z)``.
    """

    action_dim: int
    latent_dim: int
    hidden_sizes: Sequence[int] = (750, 750)

    def setup(self) -> None:
        self.encoder = DenseStack(tuple(self.hidden_sizes), 2 * self.latent_dim, "relu")
        self.decoder = DenseStack(tuple(self.hidden_sizes), self.action_dim, "relu")

    def __call__(
        self, obs: jax.Array, action: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        mean, log_std = jnp.split(self.encoder(jnp.concatenate([obs, action], -1)), 2, -1)
        std = jnp.exp(jnp.clip(log_std, -4.0, 15.0))  # BCQ's clamp, for stability
        z = mean + std * jax.random.normal(key, mean.shape)
        return self.decode(obs, z), mean, std

    def decode(self, obs: jax.Array, z: jax.Array) -> jax.Array:
        return jnp.tanh(self.decoder(jnp.concatenate([obs, z], -1)))


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """Log-density of a diagonal Gaussian, summed over the action dimensions."""
    z = (action - mean) / jnp.exp(log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def sample_tanh_gaussian(
    key: jax.Array, mean: jax.Array, log_std: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """A reparameterised ``tanh(N(mean, std))`` sample and its log-density (change of variables).

    ``log pi(a) = log N(u) - sum log(1 - tanh(u)^2)``, the last term written as
    ``2 (log 2 - u - softplus(-2u))`` for numerical stability.
    """
    std = jnp.exp(log_std)
    u = mean + std * jax.random.normal(key, mean.shape)
    log_normal = -0.5 * jnp.square((u - mean) / std) - log_std - 0.5 * jnp.log(2 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.tanh(u), jnp.sum(log_normal - log_det, axis=-1)


def tanh_gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """Log-density of a unit-box ``action`` under ``tanh(N(mean, std))`` (clipped off +-1)."""
    action = jnp.clip(action, -1.0 + 1e-6, 1.0 - 1e-6)
    u = jnp.arctanh(action)
    std = jnp.exp(log_std)
    log_normal = -0.5 * jnp.square((u - mean) / std) - log_std - 0.5 * jnp.log(2 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.sum(log_normal - log_det, axis=-1)


class ActionBounds:
    """Affine maps between the unit box ``[-1, 1]^d`` and an env's ``[low, high]`` box."""

    def __init__(self, low: np.ndarray, high: np.ndarray):
        low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"bounded actors need finite action bounds, got {low}..{high}")
        self.low, self.high = low, high

    def to_env(self, unit_action: jax.Array) -> jax.Array:
        return self.low + (unit_action + 1.0) * 0.5 * (self.high - self.low)

    def to_unit(self, env_action: jax.Array) -> jax.Array:
        unit = 2.0 * (env_action - self.low) / (self.high - self.low) - 1.0
        return jnp.clip(unit, -1.0, 1.0)
