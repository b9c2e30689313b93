"""Group-relative advantage estimators (outcome rewards, no critic).

Every estimator takes ``rewards [num_groups, group_size]``, one scalar outcome per sampled
completion, the members of a group sharing one prompt (or one start state), and returns
advantages of the same shape. Groups whose rewards are all equal get zero advantage.

* ``grpo``: ``(r - mean_g) / (std_g + eps)``, ``std`` with Bessel's correction as in
  DeepSeekMath's GRPO (``torch.std``).
* ``dr_grpo``: ``r - mean_g`` (Dr. GRPO: no per-group std; the length normaliser is the
  ``sequence_sum`` aggregation).
* ``rloo``: ``r_i - mean_{j != i} r_j = G / (G - 1) (r_i - mean_g)`` (leave-one-out).
* ``bnpo``: ``(r - p_g) / f(p_g; alpha, beta)`` with ``p_g`` the group's mean reward, ``f``
  the Beta density and ``alpha = max(1 + a / 3, 1)``, ``beta = max(1 + b / 3, 1)`` where
  ``(a, b)`` are the method-of-moments Beta fit of the batch's ``p_g`` (Xiao et al. 2025 and
  their released code; rewards are first mapped to [0, 1] with ``reward_range``). The weight
  ``1 / f`` is capped at 1e6 as in their code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln

ADVANTAGES = ("grpo", "dr_grpo", "rloo", "bnpo")


def _check_groups(rewards: jax.Array, name: str) -> None:
    if rewards.ndim != 2:
        raise ValueError(f"{name}: rewards must be [num_groups, group_size], got {rewards.shape}")
    if rewards.shape[1] < 2:
        raise ValueError(
            f"{name} needs group_size >= 2 (a group-relative baseline of one sample is the "
            f"sample itself); got group_size = {rewards.shape[1]}."
        )


def grpo(rewards: jax.Array, eps: float = 1e-6) -> jax.Array:
    _check_groups(rewards, "grpo")
    mean = rewards.mean(axis=1, keepdims=True)
    std = rewards.std(axis=1, keepdims=True, ddof=1)
    return (rewards - mean) / (std + eps)


def dr_grpo(rewards: jax.Array) -> jax.Array:
    _check_groups(rewards, "dr_grpo")
    return rewards - rewards.mean(axis=1, keepdims=True)


def rloo(rewards: jax.Array) -> jax.Array:
    _check_groups(rewards, "rloo")
    g = rewards.shape[1]
    others = (rewards.sum(axis=1, keepdims=True) - rewards) / (g - 1)
    return rewards - others


def beta_log_density(x: jax.Array, alpha: jax.Array, beta: jax.Array) -> jax.Array:
    """``log f(x; alpha, beta)`` of the Beta distribution (``x`` in [0, 1])."""
    log_x = jnp.where(alpha == 1.0, 0.0, (alpha - 1.0) * jnp.log(jnp.maximum(x, 1e-30)))
    log_1mx = jnp.where(beta == 1.0, 0.0, (beta - 1.0) * jnp.log(jnp.maximum(1.0 - x, 1e-30)))
    return log_x + log_1mx - betaln(alpha, beta)


def bnpo(rewards: jax.Array, reward_range: tuple[float, float] = (0.0, 1.0)) -> jax.Array:
    _check_groups(rewards, "bnpo")
    low, high = reward_range
    scores = (rewards - low) / (high - low)
    p = scores.mean(axis=1)  # each group's success rate
    p_mean = p.mean()
    # Sample variance over groups (ddof=1), as torch.var; floored so a batch of identical
    # group means gives a flat (alpha = beta = 1) normaliser instead of a division by zero.
    p_var = p.var(ddof=1) if p.shape[0] > 1 else jnp.asarray(1.0)
    p_var = jnp.maximum(p_var, 1e-8)
    common = p_mean * (1.0 - p_mean) / p_var - 1.0
    alpha = jnp.maximum(1.0 + common * p_mean / 3.0, 1.0)
    beta = jnp.maximum(1.0 + common * (1.0 - p_mean) / 3.0, 1.0)
    weight = jnp.minimum(jnp.exp(-beta_log_density(p, alpha, beta)), 1e6)
    return weight[:, None] * (scores - p[:, None])


def group_advantages(rewards: jax.Array, estimator: str) -> jax.Array:
    """Dispatch by name (``grpo``, ``dr_grpo``, ``rloo``, ``bnpo``)."""
    table = {"grpo": grpo, "dr_grpo": dr_grpo, "rloo": rloo, "bnpo": bnpo}
    if estimator not in table:
        raise ValueError(f"unknown advantage {estimator!r}; one of {', '.join(ADVANTAGES)}")
    return table[estimator](rewards)


def informative_groups(rewards: jax.Array) -> jax.Array:
    """``[num_groups]`` bool: the group's rewards are not all equal (DAPO dynamic sampling)."""
    return jnp.any(rewards != rewards[:, :1], axis=1)
