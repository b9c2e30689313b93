"""Plumbing shared by the agents that learn from a fixed dataset (``td3_bc``, ``iql``,
``prdc``, ``a2pr``, ``diffusion_ql``, ``idql``, ``fql``): checks, state and reward
normalisation, minibatch preparation, the iteration's scan of gradient steps and the
deterministic actor's ``act``.

Every one counts progress in gradient steps and takes its dataset through ``data``
(``rlzoo.core.agent``); observations are normalised by ``ObsScale`` and actions handled in
the unit box (``rlzoo.nets.ActionBounds``). Truncated transitions bootstrap, terminated
ones do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rlzoo.core.off_policy import Metrics, noisy_action
from rlzoo.data.sampling import SAMPLERS, ObsScale, dataset_scale, episode_returns, sampling_cdf
from rlzoo.nets import ActionBounds


def check_offline_config(config: Any, positive: tuple[str, ...]) -> None:
    """Checks of a dataset agent; the fields in ``positive`` must be >= 1."""
    for name in positive:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {config.sampler!r}")
    policy_delay = getattr(config, "policy_delay", 1)
    if config.updates_per_iteration % policy_delay:
        raise ValueError(
            f"updates_per_iteration = {config.updates_per_iteration} is not a multiple of "
            f"policy_delay = {policy_delay}: every iteration must end on an actor step; "
            "change one of them."
        )
    if config.total_steps < config.updates_per_iteration:
        raise ValueError(
            f"total_steps = {config.total_steps} is less than one iteration's "
            f"updates_per_iteration = {config.updates_per_iteration}."
        )


def init_obs_scale(
    normalize: bool, observations: jax.Array, obs_shape: tuple[int, ...]
) -> ObsScale:
    """The dataset's mean and ``std + 1e-3`` if ``normalize``, else the identity."""
    if normalize:
        return dataset_scale(observations)
    return ObsScale(jnp.zeros(obs_shape), jnp.ones(obs_shape))


def prepare_batch(
    batch: dict[str, jax.Array], obs_scale: ObsScale, bounds: ActionBounds, gamma: float | jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(obs, next_obs, unit-box actions, rewards, discounts)`` in float32, normalised states.

    ``discounts = gamma * (1 - terminated)``: truncations bootstrap.
    """
    obs = obs_scale(batch["observations"].astype(jnp.float32))
    next_obs = obs_scale(batch["next_observations"].astype(jnp.float32))
    actions = bounds.to_unit(batch["actions"].astype(jnp.float32))
    rewards = batch["rewards"].astype(jnp.float32)
    discounts = gamma * (1.0 - batch["terminated"].astype(jnp.float32))
    return obs, next_obs, actions, rewards, discounts


def scan_learn_steps(
    learn_step: Callable[[Any, jax.Array], tuple[Any, Metrics]], state: Any, num_steps: int
) -> tuple[Any, Metrics]:
    """``num_steps`` ``learn_step``s in a scan, one key each; metrics are their means."""
    key, scan_key = jax.random.split(state.key)
    state, metrics = jax.lax.scan(
        learn_step, state.replace(key=key), jax.random.split(scan_key, num_steps)
    )
    return state.replace(iteration=state.iteration + 1), jax.tree.map(jnp.mean, metrics)


def scan_delayed_learn_steps(
    learn_step: Callable[[Any, jax.Array, bool], tuple[Any, Metrics]],
    state: Any,
    num_steps: int,
    policy_delay: int,
) -> tuple[Any, Metrics]:
    """``num_steps`` steps of the TD3 family: ``policy_delay - 1`` critic steps, then one step
    that also updates the actor and the targets, and so on.

    ``learn_step(state, key, actor_step)`` takes ``actor_step`` as a Python bool, so the
    critic-only steps never compute the actor's loss (nor what it needs, such as PRDC's
    neighbour search). Keys are those ``scan_learn_steps`` would give, step for step, and the
    actor steps fall where ``gradient_step + 1`` is a multiple of ``policy_delay`` (the
    iteration starts at such a multiple: ``num_steps % policy_delay == 0``, checked by
    ``check_offline_config``). Metrics of the critic side are means over all steps, those
    only the actor step has are means over the actor steps.
    """
    key, scan_key = jax.random.split(state.key)
    keys = jax.random.split(scan_key, num_steps)
    groups = keys.reshape((num_steps // policy_delay, policy_delay, *keys.shape[1:]))

    def group(state, group_keys):
        critic_metrics = {}
        if policy_delay > 1:
            state, critic_metrics = jax.lax.scan(
                lambda s, k: learn_step(s, k, False), state, group_keys[:-1]
            )
        state, metrics = learn_step(state, group_keys[-1], True)
        for name, values in critic_metrics.items():
            metrics[name] = (values.sum(axis=0) + metrics[name]) / policy_delay
        return state, metrics

    state, metrics = jax.lax.scan(group, state.replace(key=key), groups)
    return state.replace(iteration=state.iteration + 1), jax.tree.map(jnp.mean, metrics)


def deterministic_act(
    actor: Any,
    bounds: ActionBounds,
    exploration_noise: float,
    params: tuple[ObsScale, Any],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """``params = (state normalisation, actor params)``; env-unit ``pi(s)``, plus noise unless
    ``deterministic``."""
    obs_scale, actor_params = params
    action = actor.apply(actor_params, obs_scale(obs))
    if not deterministic:
        action = noisy_action(action, key, exploration_noise)
    return bounds.to_env(action)


def scaled_policy_params(state: Any) -> tuple[ObsScale, Any]:
    """What ``act`` needs: the state normalisation and the actor's weights."""
    return state.obs_scale, state.actor_params


def return_range_reward_scale(normalize: bool, data: dict[str, jax.Array]) -> jax.Array:
    """``1000 / (max - min episode return)`` of the dataset if ``normalize``, else 1.

    IQL's locomotion reward scaling (also IDQL's ``normalize_returns``); 1 when every
    episode has the same return.
    """
    if not normalize:
        return jnp.ones((), jnp.float32)
    _, returns, valid = episode_returns(data)
    spread = jnp.max(jnp.where(valid, returns, -jnp.inf)) - jnp.min(
        jnp.where(valid, returns, jnp.inf)
    )
    return jnp.where(spread > 0, 1000.0 / spread, 1.0)


def sampled_update(
    learn_step: Callable[[dict[str, jax.Array], jax.Array | None, Any, jax.Array], Any],
    state: Any,
    data: dict[str, jax.Array],
) -> tuple[Any, Metrics]:
    """One iteration: ``updates_per_iteration`` ``learn_step(data, cdf, state, key)``s on
    minibatches drawn by the config's ``sampler`` (``rlzoo.data.sampling``)."""
    cfg = state.config
    cdf = sampling_cdf(data, cfg.sampler, cfg.weighting_temperature)
    return scan_learn_steps(
        lambda s, k: learn_step(data, cdf, s, k), state, cfg.updates_per_iteration
    )
