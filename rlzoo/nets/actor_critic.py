"""Actor-critic network with a categorical, factorised-categorical or diagonal-Gaussian head.

Observations are arrays or, for suites with structured observations, a
``TreeObservation``; an ``"action_mask"`` entry in it (``True`` = allowed) masks the
categorical policy (``masked_logits``): invalid actions get probability exactly zero.

``MultiDiscrete(nvec)`` actions (Jumanji's MultiDiscreteArray) get one independent
categorical per entry (:func:`multi_categorical`): the head has ``sum(nvec)`` logits, and
log-probabilities and entropies are sums over the entries. A mask for them is per entry,
shape ``(len(nvec), max(nvec))`` (Jumanji's JobShop and MMST give these); a joint mask
over whole action vectors (shape ``nvec``: Tetris, Minesweeper, Sudoku, FlatPack) does
not factorise over the entries and is refused (:func:`check_entry_mask`);
``rlzoo.envs.FlattenActions`` turns such an env into a ``Discrete`` one, and
``rlzoo.envs.make`` applies it to them by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlzoo.envs.core import ACTION_MASK, Box, Dict, Discrete, MultiDiscrete
from rlzoo.nets.torsos import ObsEntry, make_torso, observation_entries, orthogonal

MASK_KEY = ACTION_MASK


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


def check_entry_mask(nvec: Sequence[int], mask_shape: Sequence[int]) -> None:
    """Refuse an action mask that is not per entry of a ``MultiDiscrete(nvec)`` action.

    A per-entry mask has shape ``(len(nvec), max(nvec))`` (row ``i``: the allowed values of
    entry ``i``). A joint mask (shape ``nvec``, one flag per whole action vector) is
    checked first: where both shapes agree (``nvec = (2, n)``) it is read as joint.
    """
    nvec, mask_shape = tuple(int(n) for n in nvec), tuple(int(d) for d in mask_shape)
    per_entry = (len(nvec), max(nvec))
    if len(nvec) > 1 and mask_shape == nvec:
        raise ValueError(
            f"the action mask {mask_shape} flags whole MultiDiscrete{nvec} action vectors; "
            "independent per-entry categoricals cannot respect a joint mask (it needs a "
            f"per-entry mask of shape {per_entry}, or a Discrete({int(np.prod(nvec))}) "
            "action space over the flattened vectors: wrap the env in "
            "rlzoo.envs.FlattenActions, as rlzoo.envs.make does unless flatten_actions=False)"
        )
    if mask_shape != per_entry:
        raise ValueError(
            f"the action mask {mask_shape} does not fit MultiDiscrete{nvec}: a per-entry "
            f"mask has shape {per_entry}"
        )


def policy_spaces(action_space, obs_space, agent: str) -> dict:
    """The keyword arguments that fit a policy network (``ActorCritic``, ``Policy``) to
    these spaces: ``action_dim`` (categories, ``sum(nvec)`` logits or Gaussian dims),
    ``discrete``, ``action_nvec`` and ``obs_entries`` (for ``Dict`` observations).

    Refuses other action spaces, and a ``MultiDiscrete`` mask that is not per entry, in
    one line naming ``agent``.
    """
    nvec = None
    if isinstance(action_space, Discrete):
        action_dim = action_space.n
    elif isinstance(action_space, MultiDiscrete):
        nvec, action_dim = tuple(action_space.nvec), sum(action_space.nvec)
        if isinstance(obs_space, Dict) and ACTION_MASK in dict(obs_space.spaces):
            check_entry_mask(nvec, obs_space[ACTION_MASK].shape)
    elif isinstance(action_space, Box):
        action_dim = action_space.shape[0]
    else:
        raise ValueError(
            f"{agent} needs a Discrete, MultiDiscrete or Box action space, got {action_space!r}"
        )
    return dict(
        action_dim=action_dim,
        discrete=not isinstance(action_space, Box),
        action_nvec=nvec,
        obs_entries=observation_entries(obs_space) if isinstance(obs_space, Dict) else None,
    )


def multi_categorical(
    logits: jax.Array, nvec: Sequence[int], mask: jax.Array | None = None
) -> distrax.Distribution:
    """One independent categorical per entry of a ``MultiDiscrete(nvec)`` action.

    ``logits`` ``(..., sum(nvec))`` hold entry ``i``'s ``nvec[i]`` logits one after the
    other; ``mask`` (optional, ``True`` = allowed) is per entry, ``(..., len(nvec),
    max(nvec))``. Samples and modes are ``(..., len(nvec))`` integer vectors; log-prob and
    entropy sum over the entries.
    """
    nvec = tuple(int(n) for n in nvec)
    # Pad every entry to max(nvec) categories so that one batched Categorical holds them
    # all; padded slots repeat a valid logit (any in-range index) and are masked out.
    offsets = np.cumsum((0, *nvec[:-1]))
    slots = np.arange(max(nvec))
    in_range = slots[None, :] < np.asarray(nvec)[:, None]
    index = offsets[:, None] + np.minimum(slots[None, :], np.asarray(nvec)[:, None] - 1)
    allowed = jnp.asarray(in_range)
    if mask is not None:
        check_entry_mask(nvec, mask.shape[-2:])
        allowed = allowed & mask
        # An entry with no allowed value would sample uniformly among all slots, padded
        # (out-of-range) ones included; fall back to its in-range values instead.
        allowed = jnp.where(allowed.any(-1, keepdims=True), allowed, in_range)
    per_entry = distrax.Categorical(logits=masked_logits(logits[..., index], allowed))
    return distrax.Independent(per_entry, reinterpreted_batch_ndims=1)


def action_distribution(
    logits_or_mean: jax.Array,
    log_std: jax.Array | None,
    mask: jax.Array | None = None,
    nvec: Sequence[int] | None = None,
) -> distrax.Distribution:
    """The policy over the head's outputs: a diagonal Gaussian when a log standard deviation
    is given, else a categorical over the logits (per entry of a ``MultiDiscrete(nvec)``
    action when ``nvec`` is given), masked where ``mask`` is False."""
    if log_std is not None:
        return distrax.MultivariateNormalDiag(logits_or_mean, jnp.exp(log_std))
    if nvec is not None:
        return multi_categorical(logits_or_mean, nvec, mask)
    if mask is not None:
        logits_or_mean = masked_logits(logits_or_mean, mask)
    return distrax.Categorical(logits=logits_or_mean)


class Policy(nn.Module):
    """``obs -> action distribution``: an MLP and a categorical (masked, per entry for
    ``MultiDiscrete``) or diagonal-Gaussian head; the fields as in ``ActorCritic``.

    The Gaussian's log standard deviation is state-independent, as in ``ActorCritic``.
    """

    action_dim: int
    discrete: bool
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    log_std_init: float = 0.0
    obs_entries: tuple[ObsEntry, ...] | None = None
    action_nvec: tuple[int, ...] | None = None

    @nn.compact
    def __call__(self, obs: jax.Array) -> distrax.Distribution:
        torso = make_torso("mlp", self.hidden_sizes, self.activation, self.obs_entries)
        out = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01))(torso(obs))
        log_std = None
        if not self.discrete:
            log_std = self.param(
                "log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,)
            )
        mask = action_mask(obs) if self.discrete else None
        return action_distribution(out, log_std, mask, self.action_nvec)


SEPARATE_TORSOS = ("mlp", "flat_mlp")  # the critic has its own; a CNN is shared


class ActorCritic(nn.Module):
    """``obs -> (policy distribution, value)``.

    With an MLP (``mlp``, or ``flat_mlp`` on flattened images) the actor and critic have
    separate torsos (the usual choice for low-dimensional control); with the MinAtar CNN
    they share one, as for pixel inputs. Pytree observations (``obs_entries`` set) go
    through ``TreeMLP`` torsos, and an ``"action_mask"`` entry masks a categorical policy.
    Continuous policies are Gaussian with a state-independent log standard deviation;
    ``MultiDiscrete`` ones (``action_nvec`` set) one categorical per entry.
    """

    action_dim: int  # the head's outputs: categories, sum(action_nvec) logits, or Gaussian dims
    discrete: bool
    torso: str = "mlp"
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    value_hidden_sizes: Sequence[int] | None = None  # critic MLP sizes; None: hidden_sizes
    log_std_init: float = 0.0
    # Pytree observations: the entries the torsos read (``torsos.observation_entries`` of
    # the observation space); None for array observations.
    obs_entries: tuple[ObsEntry, ...] | None = None
    # MultiDiscrete actions: the number of values of each entry (None otherwise).
    action_nvec: tuple[int, ...] | None = None

    def setup(self) -> None:
        if self.action_nvec is not None and (
            not self.discrete or sum(self.action_nvec) != self.action_dim
        ):
            raise ValueError(
                f"a MultiDiscrete{tuple(self.action_nvec)} head is discrete with action_dim "
                f"= sum(nvec) = {sum(self.action_nvec)}; got discrete={self.discrete}, "
                f"action_dim={self.action_dim}"
            )
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
        mask = action_mask(obs) if self.discrete else None
        policy = action_distribution(logits_or_mean, log_std, mask, self.action_nvec)
        return policy, self.value(obs, actor_features)

    def value(self, obs: jax.Array, actor_features: jax.Array | None = None) -> jax.Array:
        """The critic alone (no policy head): for bootstrapping from final observations."""
        features = self._critic_features(obs, actor_features)
        return jnp.squeeze(self.value_head(features), -1)
