"""Actor-critic network with a categorical or diagonal-Gaussian policy head."""

from __future__ import annotations

from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from rlzoo.nets.torsos import make_torso, orthogonal


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
    they share one, as for pixel inputs.
    Continuous policies are Gaussian with a state-independent log standard deviation.
    """

    action_dim: int
    discrete: bool
    torso: str = "mlp"
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    value_hidden_sizes: Sequence[int] | None = None  # critic MLP sizes; None: hidden_sizes
    log_std_init: float = 0.0

    def setup(self) -> None:
        self.actor_torso = make_torso(self.torso, self.hidden_sizes, self.activation)
        # Pixel inputs: the critic reads the actor's features (one shared torso).
        if self.torso in SEPARATE_TORSOS:
            sizes = self.value_hidden_sizes or self.hidden_sizes
            self.critic_torso = make_torso(self.torso, sizes, self.activation)
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
        policy = action_distribution(self.policy_head(actor_features), log_std)
        return policy, self.value(obs, actor_features)

    def value(self, obs: jax.Array, actor_features: jax.Array | None = None) -> jax.Array:
        """The critic alone (no policy head): for bootstrapping from final observations."""
        features = self._critic_features(obs, actor_features)
        return jnp.squeeze(self.value_head(features), -1)
