"""Actor-critic network with a categorical or diagonal-Gaussian policy head."""

from __future__ import annotations

from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from rlzoo.nets.torsos import make_torso, orthogonal


class ActorCritic(nn.Module):
    """``obs -> (policy distribution, value)``.

    With an MLP the actor and critic have separate torsos (the usual choice for
    low-dimensional control); with the MinAtar CNN they share one, as for pixel inputs.
    Continuous policies are Gaussian with a state-independent log standard deviation.
    """

    action_dim: int
    discrete: bool
    torso: str = "mlp"
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[distrax.Distribution, jax.Array]:
        if self.torso == "mlp":
            actor_features = make_torso("mlp", self.hidden_sizes, self.activation)(obs)
            critic_features = make_torso("mlp", self.hidden_sizes, self.activation)(obs)
        else:
            actor_features = critic_features = make_torso(
                self.torso, self.hidden_sizes, self.activation
            )(obs)

        # Small final policy layer: near-uniform initial policy (Andrychowicz et al., 2021).
        logits_or_mean = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01))(actor_features)
        if self.discrete:
            policy = distrax.Categorical(logits=logits_or_mean)
        else:
            log_std = self.param(
                "log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,)
            )
            policy = distrax.MultivariateNormalDiag(logits_or_mean, jnp.exp(log_std))
        value = nn.Dense(1, kernel_init=orthogonal(1.0))(critic_features)
        return policy, jnp.squeeze(value, -1)
