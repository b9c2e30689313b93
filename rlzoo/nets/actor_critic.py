"""Actor-critic network with a categorical or diagonal-Gaussian policy head.

Observations are arrays or, for suites with structured observations, a
``TreeObservation``; an ``"action_mask"`` entry in it (``True`` = allowed) masks the
categorical policy (``masked_logits``): invalid actions get probability exactly zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from rlzoo.nets.torsos import ObsEntry, make_torso, orthogonal

MASK_KEY = "action_mask"


def masked_logits(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """``logits`` where ``mask`` is True, else the most negative finite float.

    Finite rather than ``-inf``: softmax gives those actions probability exactly 0 (``exp``
    underflows), so they are never sampled, and the entropy stays finite (``0 * log p``
    with a finite ``log p`` is 0, where ``-inf`` would give NaN).
    """
    return jnp.where(mask, logits, jnp.finfo(logits.dtype).min)


def action_mask(obs) -> jax.Array | None:
    """The observation's action mask, or ``None`` (array observations have none)."""
    return obs.get(MASK_KEY) if isinstance(obs, Mapping) else None


def action_distribution(
    logits_or_mean: jax.Array, log_std: jax.Array | None
) -> distrax.Distribution:
    """Categorical over logits, or a diagonal Gaussian when a log standard deviation is given."""
    if log_std is None:
        return distrax.Categorical(logits=logits_or_mean)
    return distrax.MultivariateNormalDiag(logits_or_mean, jnp.exp(log_std))


class Policy(nn.Module):
    """``obs -> action distribution``: an MLP and a categorical or diagonal-Gaussian head.

    The Gaussian's log standard deviation is state-independent, as in ``ActorCritic``.
    """

    action_dim: int
    discrete: bool
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    log_std_init: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> distrax.Distribution:
        features = make_torso("mlp", self.hidden_sizes, self.activation)(obs)
        out = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01))(features)
        log_std = None
        if not self.discrete:
            log_std = self.param(
                "log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,)
            )
        return action_distribution(out, log_std)


SEPARATE_TORSOS = ("mlp", "flat_mlp")  # the critic has its own; a CNN is shared


class ActorCritic(nn.Module):
    """``obs -> (policy distribution, value)``.

    With an MLP (``mlp``, or ``flat_mlp`` on flattened images) the actor and critic have
    separate torsos (the usual choice for low-dimensional control); with the MinAtar CNN
    they share one, as for pixel inputs. Pytree observations (``obs_entries`` set) go
    through ``TreeMLP`` torsos, and an ``"action_mask"`` entry masks a categorical policy.
    Continuous policies are Gaussian with a state-independent log standard deviation.
    """

    action_dim: int
    discrete: bool
    torso: str = "mlp"
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    value_hidden_sizes: Sequence[int] | None = None  # critic MLP sizes; None: hidden_sizes
    log_std_init: float = 0.0
    # Pytree observations: the entries the torsos read (``torsos.observation_entries`` of
    # the observation space); None for array observations.
    obs_entries: tuple[ObsEntry, ...] | None = None

    def setup(self) -> None:
        entries = self.obs_entries
        self.actor_torso = make_torso(self.torso, self.hidden_sizes, self.activation, entries)
        # Pixel inputs: the critic reads the actor's features (one shared torso).
        if self.torso in SEPARATE_TORSOS:
            sizes = self.value_hidden_sizes or self.hidden_sizes
            self.critic_torso = make_torso(self.torso, sizes, self.activation, entries)
        # Small final policy layer: near-uniform initial policy (Andrychowicz et al., 2021).
        self.policy_head = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01))
        self.value_head = nn.Dense(1, kernel_init=orthogonal(1.0))
        if not self.discrete:
            self.log_std = self.param(
                "log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,)
            )

    def _critic_features(self, obs: jax.Array, actor_features: jax.Array | None) -> jax.Array:
        if self.torso in SEPARATE_TORSOS:
            return self.critic_torso(obs)
        return self.actor_torso(obs) if actor_features is None else actor_features

    def __call__(self, obs: jax.Array) -> tuple[distrax.Distribution, jax.Array]:
        actor_features = self.actor_torso(obs)
        log_std = None if self.discrete else self.log_std
        logits_or_mean = self.policy_head(actor_features)
        mask = action_mask(obs)
        if mask is not None and self.discrete:
            logits_or_mean = masked_logits(logits_or_mean, mask)
        policy = action_distribution(logits_or_mean, log_std)
        return policy, self.value(obs, actor_features)

    def value(self, obs: jax.Array, actor_features: jax.Array | None = None) -> jax.Array:
        """The critic alone (no policy head): for bootstrapping from final observations."""
        features = self._critic_features(obs, actor_features)
        return jnp.squeeze(self.value_head(features), -1)
