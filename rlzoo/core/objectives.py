"""Policy-gradient objectives for sequences: clipping rules, loss aggregation, KL, BAPO.

Every function works on per-token arrays ``[num_sequences, num_tokens]`` with a boolean
``mask`` (true on the completion tokens that count). Per-token losses are to be *minimised*
and are zero where ``mask`` is false; :func:`aggregate` turns them into one scalar.

Clipping rules (``log_ratio = log pi_theta - log pi_behaviour`` per token, ``r = exp``):

* ``ppo_clip``: ``-min(r A, clip(r, 1 - eps, 1 + eps) A)`` (PPO, symmetric).
* ``clip_higher``: the same with ``eps_low = 0.2``, ``eps_high = 0.28`` (DAPO).
* ``dual_clip``: PPO, and for ``A < 0`` the loss is capped at ``-c A`` (Ye et al. 2020, c = 3).
* ``bapo``: PPO with *ratio* bounds ``[c_low, c_high]`` chosen per minibatch by
  :func:`bapo_clip_bounds` (Xi et al. 2025, "BAPO: Stabilizing off-policy RL for LLMs via
  balanced policy optimization with adaptive clipping").
* ``topr``: tapered off-policy REINFORCE (Le Roux et al. 2025): ``-w A log pi`` with the
  weight ``w = 1`` for ``A >= 0`` and ``w = clip(pi(y) / mu(y), 0, 1)`` (the *sequence*
  ratio, not the token's) for ``A < 0``; ``w`` carries no gradient.
* ``apa``: advantage-induced policy alignment (Zhu et al. 2023), a squared error
  ``(log pi - log pi_anchor - A / lambda)^2`` towards a fixed anchor policy.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlzoo.core.reductions import masked_mean, masked_sum

POLICY_LOSSES = ("ppo_clip", "clip_higher", "dual_clip", "bapo", "topr", "apa")
LOSS_AGGREGATIONS = ("token_mean", "sequence_mean", "sequence_sum")
KL_ESTIMATORS = ("k1", "k3")
BAPO_ORDERINGS = ("paper", "authors")
BAPO_SHARES = ("signed", "absolute")


def _clip_info(ratio, advantages, mask, low, high):
    """Tokens the clip takes the gradient from: A > 0 above ``high``, A < 0 below ``low``."""
    above = mask & (advantages > 0) & (ratio > high)
    below = mask & (advantages < 0) & (ratio < low)
    return {"clipped_low": below, "clipped_high": above}


def ratio_clip(
    log_ratio: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    low: float | jax.Array,
    high: float | jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``-min(r A, clip(r, low, high) A)`` per token, with *ratio* bounds ``low < 1 < high``."""
    ratio = jnp.exp(log_ratio)
    loss = -jnp.minimum(ratio * advantages, jnp.clip(ratio, low, high) * advantages)
    return jnp.where(mask, loss, 0.0), _clip_info(ratio, advantages, mask, low, high)


def ppo_clip(log_ratio, advantages, mask, eps: float | jax.Array = 0.2):
    """PPO's symmetric clip, ``r`` in ``[1 - eps, 1 + eps]``. Returns ``(loss, info)``."""
    return ratio_clip(log_ratio, advantages, mask, 1.0 - eps, 1.0 + eps)


def clip_higher(log_ratio, advantages, mask, eps_low=0.2, eps_high=0.28):
    """DAPO's decoupled clip, ``r`` in ``[1 - eps_low, 1 + eps_high]``."""
    return ratio_clip(log_ratio, advantages, mask, 1.0 - eps_low, 1.0 + eps_high)


def dual_clip(log_ratio, advantages, mask, eps=0.2, c=3.0):
    """PPO clip; for ``A < 0`` the loss is at most ``-c A`` (no gradient once ``r > c``)."""
    loss, info = ratio_clip(log_ratio, advantages, mask, 1.0 - eps, 1.0 + eps)
    ratio = jnp.exp(log_ratio)
    capped = jnp.where(advantages < 0, jnp.minimum(loss, -c * advantages), loss)
    info["clipped_dual"] = mask & (advantages < 0) & (ratio > c)
    return jnp.where(mask, capped, 0.0), info


def topr(log_ratio, advantages, mask, log_probs):
    """Tapered off-policy REINFORCE; ``log_probs`` are the current policy's (with gradient).

    The truncated weight of a negative sequence is ``clip(prod_t r_t, 0, 1)``, the ratio of
    the whole completion's probabilities, as in the paper's trajectory-level rule.
    """
    seq_log_ratio = masked_sum(log_ratio, mask, axis=-1)[..., None]
    weight = jnp.where(advantages >= 0, 1.0, jnp.minimum(jnp.exp(seq_log_ratio), 1.0))
    weight = jax.lax.stop_gradient(jnp.broadcast_to(weight, log_probs.shape))
    loss = -weight * advantages * log_probs
    info = {"clipped_low": mask & (advantages < 0) & (seq_log_ratio > 0.0)}  # weight capped
    return jnp.where(mask, loss, 0.0), info


def apa(log_probs, anchor_log_probs, advantages, mask, lam=1.0):
    """APA's squared error ``(log pi - log pi_anchor - A / lam)^2`` per token."""
    loss = jnp.square(log_probs - jax.lax.stop_gradient(anchor_log_probs) - advantages / lam)
    return jnp.where(mask, loss, 0.0), {}


# ------------------------------------------------------------------ aggregation, KL


def aggregate(per_token: jax.Array, mask: jax.Array, how: str) -> jax.Array:
    """One scalar from per-token values ``[B, T]``.

    * ``token_mean``: mean over every masked-in token of the batch (DAPO);
    * ``sequence_mean``: mean over sequences of each sequence's token mean (GRPO);
    * ``sequence_sum``: each sequence's token sum divided by the constant ``T`` (the
      completion budget), averaged over sequences (Dr. GRPO).
    Sequences with no masked-in token (e.g. a group dropped by dynamic sampling) count in
    neither numerator nor denominator.
    """
    mask = jnp.broadcast_to(mask, per_token.shape)
    if how == "token_mean":
        return masked_mean(per_token, mask)
    alive = jnp.any(mask, axis=-1)
    if how == "sequence_mean":
        return masked_mean(masked_mean(per_token, mask, axis=-1), alive)
    if how == "sequence_sum":
        return masked_mean(masked_sum(per_token, mask, axis=-1) / per_token.shape[-1], alive)
    raise ValueError(f"unknown loss_aggregation {how!r}; one of {', '.join(LOSS_AGGREGATIONS)}")


def kl_estimate(log_probs: jax.Array, ref_log_probs: jax.Array, estimator: str) -> jax.Array:
    """Per-token estimate of KL(pi || pi_ref) from tokens sampled by pi (Schulman 2020).

    ``k1 = log pi - log pi_ref`` (unbiased, can be negative);
    ``k3 = exp(log pi_ref - log pi) - (log pi_ref - log pi) - 1`` (unbiased, >= 0).
    """
    if estimator == "k1":
        return log_probs - ref_log_probs
    if estimator == "k3":
        d = ref_log_probs - log_probs
        return jnp.expm1(d) - d
    raise ValueError(f"unknown kl_estimator {estimator!r}; one of {', '.join(KL_ESTIMATORS)}")


def overlong_penalty(lengths: jax.Array, max_length: int, cache_length: int) -> jax.Array:
    """DAPO's soft overlong punishment: 0 up to ``max_length - cache_length``, then a linear
    ramp to -1 at ``max_length``, and -1 beyond."""
    start = max_length - cache_length
    ramp = (start - lengths) / max(cache_length, 1)
    return jnp.where(lengths <= start, 0.0, jnp.where(lengths <= max_length, ramp, -1.0))


# ------------------------------------------------------------------ BAPO


def bapo_positive_share(
    ratios, advantages, behaviour_probs, mask, c_low, c_high, share: str = "signed"
):
    """The paper's rho: positive-advantage contribution over the whole contribution.

    ``share="signed"`` (the formula as written)::

        |sum_{A>0} p min(r A, clip(r, 0, c_high) A)| / |sum_t p min(r A, clip(r, c_low, c_high) A)|

    The denominator is the magnitude of a *signed* sum, so positive and negative terms
    cancel in it: with positive mass P and negative mass N, rho = P / |P - N|, which passes 1
    once P > N / 2. ``share="absolute"`` sums the terms' magnitudes instead, rho = P / (P + N),
    a share in [0, 1]. At rho0 = 0.4 the search stops once P / N >= 0.29 (signed) or
    P / N >= 0.67 (absolute).
    """
    if share not in BAPO_SHARES:
        raise ValueError(f"bapo share {share!r}; one of {', '.join(BAPO_SHARES)}")
    weight = jnp.where(mask, behaviour_probs, 0.0)
    positive = jnp.minimum(ratios * advantages, jnp.clip(ratios, 0.0, c_high) * advantages)
    numerator = jnp.abs(jnp.sum(jnp.where(advantages > 0, weight * positive, 0.0)))
    whole = weight * jnp.minimum(ratios * advantages, jnp.clip(ratios, c_low, c_high) * advantages)
    denominator = jnp.abs(jnp.sum(whole)) if share == "signed" else jnp.sum(jnp.abs(whole))
    return numerator / jnp.maximum(denominator, 1e-12)


def bapo_positive_negative_ratio(ratios, advantages, mask, c_low, c_high):
    """The authors' released statistic: positive over negative effective advantage mass.

    ``A >= 0`` tokens use ``min(r, c_high) A``, ``A < 0`` tokens ``max(r, c_low) A``; no
    weighting by the behaviour probability; ``inf`` when there is no negative mass.
    """
    effective = jnp.where(advantages >= 0, jnp.minimum(ratios, c_high), jnp.maximum(ratios, c_low))
    effective = jnp.where(mask, effective * advantages, 0.0)
    positive = jnp.sum(jnp.maximum(effective, 0.0))
    negative = jnp.sum(-jnp.minimum(effective, 0.0))
    return jnp.where(negative > 0, positive / jnp.maximum(negative, 1e-12), jnp.inf)


# Comparisons of bounds against their maxima allow this much float rounding (0.6 + 15 x 0.02
# is 0.9000001 in float32 and must still count as reaching 0.9).
_BOUND_TOLERANCE = 1e-5

BAPO_DEFAULTS = dict(
    c_low_start=0.6,
    c_high_start=1.2,
    c_low_max=0.9,
    c_high_max=3.0,
    d_low=0.02,
    d_high=0.05,
    rho0=0.4,
    ordering="paper",
    share="signed",
)


def check_bapo_settings(settings: dict[str, Any]) -> None:
    """Refuse impossible search ranges when the settings are concrete numbers."""
    unknown = set(settings) - set(BAPO_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown BAPO setting(s) {sorted(unknown)}; known: {', '.join(BAPO_DEFAULTS)}"
        )
    s = {**BAPO_DEFAULTS, **settings}
    if s["ordering"] not in BAPO_ORDERINGS:
        raise ValueError(f"bapo ordering {s['ordering']!r}; one of {', '.join(BAPO_ORDERINGS)}")
    if s["share"] not in BAPO_SHARES:
        raise ValueError(f"bapo share {s['share']!r}; one of {', '.join(BAPO_SHARES)}")
    try:
        values = {k: float(v) for k, v in s.items() if k not in ("ordering", "share")}
    except (TypeError, jax.errors.ConcretizationTypeError):
        return  # traced values: checked where the config was made
    if values["c_low_start"] > values["c_low_max"]:
        raise ValueError(
            f"BAPO: c_low starts at {values['c_low_start']} above its maximum "
            f"{values['c_low_max']}; the search range is empty."
        )
    if values["c_high_start"] > values["c_high_max"]:
        raise ValueError(
            f"BAPO: c_high starts at {values['c_high_start']} above its maximum "
            f"{values['c_high_max']}; the search range is empty."
        )
    if not values["c_low_start"] < 1.0 < values["c_high_start"]:
        raise ValueError(
            f"BAPO bounds must bracket 1: c_low_start={values['c_low_start']}, "
            f"c_high_start={values['c_high_start']}."
        )
    if values["d_low"] <= 0 or values["d_high"] <= 0:
        raise ValueError(f"BAPO steps must be positive: d_low={s['d_low']}, d_high={s['d_high']}")


def bapo_clip_bounds(
    ratios: jax.Array,
    advantages: jax.Array,
    behaviour_probs: jax.Array,
    mask: jax.Array,
    **bapo_settings: Any,
) -> tuple[jax.Array, jax.Array]:
    """BAPO's adaptive ratio bounds ``(c_low, c_high)`` for one minibatch.

    ``ordering="paper"`` (default, the paper's Algorithm 1): start at ``[c_low_start,
    c_high_start]``; while ``rho < rho0`` and ``c_low + d_low <= c_low_max``: raise
    ``c_high`` by ``d_high`` if that stays ``<= c_high_max``, else raise ``c_low`` by
    ``d_low``. ``rho`` is :func:`bapo_positive_share` with its ``share`` reading
    (``"signed"``, the formula as written, by default; ``"absolute"`` for a share in [0, 1]).

    ``ordering="authors"`` (the released verl recipe): the statistic is
    :func:`bapo_positive_negative_ratio` compared with ``rho0`` as a ratio target; ``c_low``
    is raised first (clamped at ``c_low_max``), then ``c_high`` (clamped at ``c_high_max``).

    A ``lax.while_loop`` over two scalars; settings may be traced. ``ratios``,
    ``advantages``, ``behaviour_probs`` and ``mask`` broadcast against each other.
    """
    check_bapo_settings(bapo_settings)
    s = {**BAPO_DEFAULTS, **bapo_settings}
    ratios, advantages, behaviour_probs, mask = jnp.broadcast_arrays(
        ratios, advantages, behaviour_probs, mask
    )
    ratios = jax.lax.stop_gradient(ratios)
    dtype = ratios.dtype
    start = (jnp.asarray(s["c_low_start"], dtype), jnp.asarray(s["c_high_start"], dtype))
    low_max, high_max = s["c_low_max"], s["c_high_max"]
    d_low, d_high, rho0 = s["d_low"], s["d_high"], s["rho0"]

    if s["ordering"] == "paper":

        def unmet(bounds):
            c_low, c_high = bounds
            rho = bapo_positive_share(
                ratios, advantages, behaviour_probs, mask, c_low, c_high, s["share"]
            )
            return (rho < rho0) & (c_low + d_low <= low_max + _BOUND_TOLERANCE)

        def step(bounds):
            c_low, c_high = bounds
            raise_high = c_high + d_high <= high_max + _BOUND_TOLERANCE
            return (
                jnp.where(raise_high, c_low, c_low + d_low),
                jnp.where(raise_high, c_high + d_high, c_high),
            )

    else:

        def unmet(bounds):
            c_low, c_high = bounds
            stat = bapo_positive_negative_ratio(ratios, advantages, mask, c_low, c_high)
            room = (c_low < low_max - _BOUND_TOLERANCE) | (c_high < high_max - _BOUND_TOLERANCE)
            return (stat < rho0) & room

        def step(bounds):
            c_low, c_high = bounds
            raise_low = c_low < low_max - _BOUND_TOLERANCE
            return (
                jnp.where(raise_low, jnp.minimum(c_low + d_low, low_max), c_low),
                jnp.where(raise_low, c_high, jnp.minimum(c_high + d_high, high_max)),
            )

    return jax.lax.while_loop(unmet, step, start)


def bapo(log_ratio, advantages, mask, c_low, c_high):
    """PPO's surrogate with BAPO's ratio bounds (from :func:`bapo_clip_bounds`)."""
    return ratio_clip(log_ratio, advantages, mask, c_low, c_high)
