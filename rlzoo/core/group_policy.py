"""Pieces of group-relative policy optimisation shared beyond the objectives themselves.

* :func:`select_policy_loss`: the per-step loss of a config's ``policy_loss`` (one of
  :data:`rlzoo.core.objectives.POLICY_LOSSES`) and the ratio bounds it used, read from the
  config's shared field names (``clip_eps``, ``clip_eps_low``, ``clip_eps_high``,
  ``dual_clip_c``, ``apa_lambda``, ``bapo_*``), so that every GRPO-family agent (tokens,
  control) dispatches the same way;
* :func:`objective_diagnostics`: the ``policy/`` metrics of such a loss (clip fractions,
  BAPO's rho, ratios);
* :func:`group_policy_loss`: the whole scalar loss from the current policy's log-probs and
  entropy (the chosen objective, aggregated by ``loss_aggregation``, plus ``kl_coef`` x
  KL to the reference minus ``ent_coef`` x entropy) with its metrics;
* :func:`minibatch_epochs`: ``num_epochs`` passes of shuffled minibatch SGD over one batch
  (later minibatches are off-policy);
* :func:`init_history`, :func:`behaviour_params`, :func:`push_history`: the queue of
  earlier parameters for rollouts sampled by the policy from ``staleness`` updates ago;
* :func:`first_episode_mask` and :func:`episode_outcomes`: the outcome of each member's
  *first* episode from a fixed-length rollout, for outcome-based methods on control tasks.

Arrays are ``[num_sequences, num_steps]`` (a completion's tokens, or an episode's steps) with
a boolean ``mask`` of the steps that count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from rlzoo.core import objectives as obj
from rlzoo.core.batching import shuffled_minibatches
from rlzoo.core.reductions import masked_mean


def check_choices(config: Any, choices: dict[str, tuple[str, ...]]) -> None:
    """Refuse a config whose named string fields hold values outside their choices."""
    for name, allowed in choices.items():
        value = getattr(config, name)
        if value not in allowed:
            raise ValueError(f"{name}={value!r}; one of {', '.join(allowed)}")


def bapo_settings(config: Any) -> dict[str, Any]:
    """The keyword arguments of ``objectives.bapo_clip_bounds`` from a config's ``bapo_*``."""
    names = ("c_low_start", "c_high_start", "c_low_max", "c_high_max", "d_low", "d_high", "rho0")
    settings = {name: getattr(config, f"bapo_{name}") for name in names}
    settings["ordering"] = config.bapo_ordering
    settings["share"] = config.bapo_share
    return settings


def select_policy_loss(
    config: Any,
    log_ratio: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    log_probs: jax.Array,
    behaviour_log_probs: jax.Array,
    anchor_log_probs: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array], jax.Array, jax.Array]:
    """``(per-step loss, clip info, low bound, high bound)`` of ``config.policy_loss``.

    ``log_ratio = log_probs - behaviour_log_probs``; ``anchor_log_probs`` is APA's fixed
    anchor (the reference policy). The bounds are ratio bounds as reported in the
    ``policy/clip_low`` / ``policy/clip_high`` metrics: BAPO's chosen ones, ``(0, 1)`` for
    ``topr`` (the negatives' weight cap) and ``(0, 0)`` for ``apa``, which does not clip.
    """
    name = config.policy_loss
    if name in ("ppo_clip", "dual_clip"):
        low, high = 1.0 - config.clip_eps, 1.0 + config.clip_eps
    elif name == "clip_higher":
        low, high = 1.0 - config.clip_eps_low, 1.0 + config.clip_eps_high
    elif name == "bapo":
        ratios = jax.lax.stop_gradient(jnp.exp(log_ratio))
        low, high = obj.bapo_clip_bounds(
            ratios, advantages, jnp.exp(behaviour_log_probs), mask, **bapo_settings(config)
        )
    elif name == "topr":
        low, high = 0.0, 1.0
    elif name == "apa":
        low, high = 0.0, 0.0
    else:
        raise ValueError(f"unknown policy_loss {name!r}; one of {', '.join(obj.POLICY_LOSSES)}")

    if name == "dual_clip":
        loss, info = obj.dual_clip(log_ratio, advantages, mask, config.clip_eps, config.dual_clip_c)
    elif name == "topr":
        loss, info = obj.topr(log_ratio, advantages, mask, log_probs)
    elif name == "apa":
        loss, info = obj.apa(log_probs, anchor_log_probs, advantages, mask, config.apa_lambda)
    else:  # ppo_clip, clip_higher and bapo differ only in their ratio bounds
        loss, info = obj.ratio_clip(log_ratio, advantages, mask, low, high)
    return loss, info, jnp.asarray(low, log_ratio.dtype), jnp.asarray(high, log_ratio.dtype)


def objective_diagnostics(
    log_ratio: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    behaviour_log_probs: jax.Array,
    info: dict[str, jax.Array],
    low: jax.Array,
    high: jax.Array,
    share: str = "signed",
) -> dict[str, jax.Array]:
    """The ``policy/`` metrics of a clipped objective, averaged over the masked-in steps.

    ``clip_frac_low`` / ``clip_frac_high`` are shares of *all* masked-in steps (not of the
    negative / positive ones); ``rho`` is BAPO's positive share (``share`` reading) at the
    bounds used (clamped to bracket 1, so that it is defined for ``topr`` and ``apa`` too).
    """
    ratio = jax.lax.stop_gradient(jnp.exp(log_ratio))
    none = jnp.zeros_like(mask)
    return {
        "policy/approx_kl": masked_mean(jnp.expm1(log_ratio) - log_ratio, mask),
        "policy/clip_low": low,
        "policy/clip_high": high,
        "policy/clip_frac_low": masked_mean(info.get("clipped_low", none), mask),
        "policy/clip_frac_high": masked_mean(info.get("clipped_high", none), mask),
        "policy/rho": obj.bapo_positive_share(
            ratio,
            advantages,
            jnp.exp(behaviour_log_probs),
            mask,
            jnp.clip(low, 0.0, 1.0),
            jnp.clip(high, 1.0, 1e6),
            share,
        ),
        "policy/ratio": masked_mean(ratio, mask),
    }


def group_policy_loss(
    config: Any,
    log_probs: jax.Array,
    entropy: jax.Array,
    behaviour_log_probs: jax.Array,
    reference_log_probs: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``(loss, metrics)``: ``policy_loss`` aggregated by ``loss_aggregation``, plus
    ``kl_coef`` x KL(pi || reference) (``kl_estimator``) minus ``ent_coef`` x entropy.

    ``advantages`` is one value per sequence ``[N]`` (the same for each of its steps) or
    per step ``[N, T]``; ``log_probs`` and ``entropy`` carry the gradient.
    """
    log_ratio = log_probs - behaviour_log_probs
    advantages = jnp.broadcast_to(
        advantages[:, None] if advantages.ndim == 1 else advantages, log_ratio.shape
    )
    loss, info, low, high = select_policy_loss(
        config, log_ratio, advantages, mask, log_probs, behaviour_log_probs, reference_log_probs
    )
    how = config.loss_aggregation
    policy = obj.aggregate(loss, mask, how)
    kl = obj.kl_estimate(log_probs, reference_log_probs, config.kl_estimator)
    total = (
        policy
        + config.kl_coef * obj.aggregate(kl, mask, how)
        - config.ent_coef * obj.aggregate(entropy, mask, how)
    )
    metrics = {
        "loss/total": total,
        "loss/policy": policy,
        "policy/entropy": masked_mean(entropy, mask),
        "policy/kl_ref": masked_mean(kl, mask),
        **objective_diagnostics(
            log_ratio, advantages, mask, behaviour_log_probs, info, low, high, config.bapo_share
        ),
    }
    return total, metrics


def minibatch_epochs(
    loss_fn: Callable[[Any, Any], tuple[jax.Array, dict[str, jax.Array]]],
    tx: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    key: jax.Array,
    batch: Any,
    num_epochs: int,
    num_minibatches: int,
) -> tuple[Any, Any, jax.Array, dict[str, jax.Array]]:
    """``num_epochs`` x ``num_minibatches`` SGD steps of ``loss_fn(params, minibatch)``.

    Each epoch shuffles the batch's leading axis into minibatches; metrics (with
    ``policy/grad_norm``, the global norm before any clipping in ``tx``) are averaged over
    every step. Returns ``(params, opt_state, key, metrics)``.
    """

    def sgd_step(carry, minibatch):
        params, opt_state = carry
        grads, metrics = jax.grad(loss_fn, has_aux=True)(params, minibatch)
        metrics["policy/grad_norm"] = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), metrics

    def epoch(carry, _):
        params, opt_state, key = carry
        key, perm_key = jax.random.split(key)
        minibatches = shuffled_minibatches(perm_key, batch, num_minibatches)
        (params, opt_state), metrics = jax.lax.scan(sgd_step, (params, opt_state), minibatches)
        return (params, opt_state, key), metrics

    (params, opt_state, key), metrics = jax.lax.scan(
        epoch, (params, opt_state, key), None, num_epochs
    )
    return params, opt_state, key, jax.tree.map(jnp.mean, metrics)


# ------------------------------------------------------------------ stale rollouts


def init_history(params: Any, staleness: int) -> Any:
    """``staleness`` copies of ``params`` stacked, oldest first (``None`` when 0)."""
    if staleness == 0:
        return None
    return jax.tree.map(lambda p: jnp.stack([p] * staleness), params)


def behaviour_params(params: Any, history: Any) -> Any:
    """The policy that samples: the oldest kept parameters, or ``params`` with no history."""
    return params if history is None else jax.tree.map(lambda h: h[0], history)


def push_history(history: Any, params: Any) -> Any:
    """Drop the oldest parameters and append ``params`` (the ones just updated from)."""
    if history is None:
        return None
    return jax.tree.map(lambda h, p: jnp.concatenate([h[1:], p[None]]), history, params)


# ------------------------------------------------------------------ episode outcomes


def first_episode_mask(done: jax.Array) -> jax.Array:
    """``[N, T]`` bool: step ``t`` belongs to the first episode (no ``done`` before ``t``).

    ``done[:, t]`` is ``terminated | truncated`` returned by step ``t``; the step that ends
    the episode is itself part of it. Steps after it (an auto-reset's next episode) are not.
    """
    done = done.astype(jnp.int32)
    ended_before = jnp.cumsum(done, axis=-1) - done
    return ended_before == 0


def episode_outcomes(
    rewards: jax.Array, mask: jax.Array, gamma: float | jax.Array = 1.0
) -> jax.Array:
    """``[N]`` return of each first episode, ``sum_t gamma^t r_t`` over its masked-in steps.

    ``gamma = 1`` is the undiscounted return. An episode still running at the last step
    (cut by the rollout's length) scores its return so far: with no critic there is nothing
    to bootstrap from.
    """
    discounts = jnp.asarray(gamma, rewards.dtype) ** jnp.arange(rewards.shape[-1])
    return jnp.sum(jnp.where(mask, rewards * discounts, 0.0), axis=-1)
