"""Pieces shared by the actor-critic agents that learn off-policy (SAC, TD3 and the offline ones).

The TD3 family (``td3``, ``td3_bc``, ``prdc``, ``a2pr``) shares the target with clipped
policy noise (``td3_target``), the twin-critic loss and step (``twin_critic_loss``,
``critic_update``) and the delayed actor and target update (``delayed_update``). The
replay agents (``sac``, ``td3``) share their checks, the collect-then-learn iteration
(``collect_and_learn``) and the replay buffer's example transition (``replay_example``).
All six use ``box_action_space`` and ``build_agent``. Actions live in the unit box
(``rlzoo.nets.ActionBounds`` maps them to the env).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from rlzoo.core.agent import Agent
from rlzoo.core.evaluation import episode_evaluator
from rlzoo.core.reductions import polyak
from rlzoo.data.replay import ReplayBuffer, rollout_into_replay
from rlzoo.envs import Box, ClipAction, Environment
from rlzoo.nets import ActionBounds, sample_tanh_gaussian

Metrics = dict[str, jax.Array]

# ----------------------------------------------------------------------------- losses


def td3_target(
    next_q_fn: Callable[[jax.Array], jax.Array],
    next_action: jax.Array,
    rewards: jax.Array,
    discounts: jax.Array,
    noise: jax.Array,
    noise_clip: float | jax.Array,
) -> jax.Array:
    """``r + discount * min_i Q'_i(s', clip(pi'(s') + clip(noise, +-c), -1, 1))``.

    ``noise`` is already scaled by the policy noise; ``next_q_fn(a) -> [critics, B]``.
    """
    action = jnp.clip(next_action + jnp.clip(noise, -noise_clip, noise_clip), -1.0, 1.0)
    return rewards + discounts * next_q_fn(action).min(axis=0)


def smoothed_target(
    actor: Any,
    critic: Any,
    state: Any,
    next_obs: jax.Array,
    rewards: jax.Array,
    discounts: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """``td3_target`` from the state's target actor and critics, ``noise ~ policy_noise * N``.

    ``state`` has ``target_actor_params``, ``target_critic_params`` and a config with
    ``policy_noise`` and ``noise_clip``.
    """
    cfg = state.config
    next_action = actor.apply(state.target_actor_params, next_obs)
    return td3_target(
        lambda a: critic.apply(state.target_critic_params, next_obs, a),
        next_action,
        rewards,
        discounts,
        cfg.policy_noise * jax.random.normal(key, next_action.shape),
        cfg.noise_clip,
    )


def twin_critic_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """``sum_i mean_b (Q_i - target)^2``: the released TD3 code's ``mse(Q1) + mse(Q2)``."""
    return jnp.square(q - jax.lax.stop_gradient(target)).mean(axis=1).sum()


def noisy_action(action: jax.Array, key: jax.Array, noise_std: float | jax.Array) -> jax.Array:
    """``clip(action + noise_std * N(0, 1), -1, 1)``: Gaussian exploration in the unit box."""
    noise = noise_std * jax.random.normal(key, action.shape)
    return jnp.clip(action + noise, -1.0, 1.0)


# ----------------------------------------------------------------------------- steps


def apply_gradients(
    tx: optax.GradientTransformation, grads: Any, params: Any, opt_state: Any
) -> tuple[Any, Any]:
    """One optimiser step: ``(new params, new optimiser state)``."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def critic_update(
    critic: Any,
    tx: optax.GradientTransformation,
    critic_params: Any,
    critic_opt: Any,
    observations: jax.Array,
    actions: jax.Array,
    target: jax.Array,
) -> tuple[Any, Any, Metrics]:
    """A twin-critic step toward ``target``; metrics ``loss/critic`` and ``value/q``."""

    def objective(params):
        q = critic.apply(params, observations, actions)
        loss = twin_critic_loss(q, target)
        return loss, {"loss/critic": loss, "value/q": q[0].mean()}

    grads, metrics = jax.grad(objective, has_aux=True)(critic_params)
    critic_params, critic_opt = apply_gradients(tx, grads, critic_params, critic_opt)
    return critic_params, critic_opt, metrics


def critic_step_update(state: Any, critic_params: Any, critic_opt: Any) -> Any:
    """A gradient step that updates only the critics (the TD3 family between actor steps)."""
    return state.replace(
        critic_params=critic_params,
        critic_opt=critic_opt,
        gradient_step=state.gradient_step + 1,
    )


def actor_step_update(
    state: Any,
    critic_params: Any,
    critic_opt: Any,
    actor_params: Any,
    actor_opt: Any,
    tau: float | jax.Array,
) -> Any:
    """A gradient step that updates the critics and the actor and polyaks both targets.

    ``state`` has the TD3 family's fields (``actor_params``, ``target_actor_params``, ...).
    """
    return state.replace(
        critic_params=critic_params,
        critic_opt=critic_opt,
        actor_params=actor_params,
        actor_opt=actor_opt,
        target_actor_params=polyak(state.target_actor_params, actor_params, tau),
        target_critic_params=polyak(state.target_critic_params, critic_params, tau),
        gradient_step=state.gradient_step + 1,
    )


def delayed_update(
    state: Any,
    critic_params: Any,
    critic_opt: Any,
    actor_params: Any,
    actor_opt: Any,
    policy_delay: int,
    tau: float | jax.Array,
) -> Any:
    """Keep the new critics; keep the actor and polyak the targets every ``policy_delay``-th step.

    For a step that cannot know statically whether it is an actor step (online TD3, one env
    step per update): the actor step is computed every step and discarded in between. The
    offline agents know it statically and skip it (``core.offline.scan_delayed_learn_steps``).
    """
    delayed = (state.gradient_step + 1) % policy_delay == 0
    updated = actor_step_update(state, critic_params, critic_opt, actor_params, actor_opt, tau)

    def keep_if_delayed(field: str) -> Any:
        new, old = getattr(updated, field), getattr(state, field)
        return jax.tree.map(lambda n, o: jnp.where(delayed, n, o), new, old)

    delayed_fields = ("actor_params", "actor_opt", "target_actor_params", "target_critic_params")
    return updated.replace(**{field: keep_if_delayed(field) for field in delayed_fields})


def init_actor_critic(
    actor: Any,
    critic: Any,
    actor_key: jax.Array,
    critic_key: jax.Array,
    dummy_obs: jax.Array,
    dummy_action: jax.Array,
    tx: optax.GradientTransformation,
) -> dict[str, Any]:
    """A TD3-family state's actor, twin critics, their targets (copies) and optimiser states."""
    actor_params = actor.init(actor_key, dummy_obs)
    critic_params = critic.init(critic_key, dummy_obs, dummy_action)
    return dict(
        actor_params=actor_params,
        critic_params=critic_params,
        target_actor_params=actor_params,
        target_critic_params=critic_params,
        actor_opt=tx.init(actor_params),
        critic_opt=tx.init(critic_params),
    )


# ----------------------------------------------------------------------------- replay agents


def check_replay_config(config: Any, positive: tuple[str, ...]) -> None:
    """Checks of an agent that collects into a replay buffer; ``positive`` must be >= 1."""
    for name in positive:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.utd_ratio <= 0:
        raise ValueError(f"utd_ratio must be > 0, got {config.utd_ratio}")
    per_iteration = config.num_envs * config.num_steps
    if config.total_steps < per_iteration:
        raise ValueError(
            f"total_steps = {config.total_steps} is less than one iteration's "
            f"num_envs * num_steps = {per_iteration}."
        )
    if config.buffer_size // config.num_envs < config.n_step + 1:
        raise ValueError(
            f"buffer_size = {config.buffer_size} over {config.num_envs} envs cannot hold an "
            f"n_step = {config.n_step} window; raise buffer_size."
        )


def gradient_steps_per_iteration(config: Any) -> int:
    """``utd_ratio`` times the iteration's env steps, at least one."""
    return max(1, round(config.utd_ratio * config.num_envs * config.num_steps))


def replay_example(obs_shape: tuple[int, ...], action_dim: int) -> dict[str, jax.Array]:
    """One zero transition: the shapes and dtypes the replay buffer stores."""
    dummy_obs = jnp.zeros(obs_shape, jnp.float32)
    return {
        "observations": dummy_obs,
        "actions": jnp.zeros((action_dim,), jnp.float32),
        "rewards": jnp.zeros((), jnp.float32),
        "terminated": jnp.zeros((), bool),
        "truncated": jnp.zeros((), bool),
        "next_observations": dummy_obs,
    }


def collect_and_learn(
    env: Environment,
    env_params: Any,
    buffer: ReplayBuffer,
    bounds: ActionBounds,
    explore: Callable[[jax.Array, jax.Array], jax.Array],
    learn_step: Callable[[Any, jax.Array], tuple[Any, Metrics]],
    learned: tuple[str, ...],
    state: Any,
    warmup: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    to_env: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> tuple[Any, Metrics]:
    """One iteration: ``num_envs x num_steps`` env steps into the buffer, then learning.

    ``explore(obs, key)`` is the unit-box exploration policy; uniform actions replace it
    while fewer than ``learning_starts`` env steps are done (or ``warmup(obs, key)``'s
    unit-box actions when given). Then the state takes
    ``gradient_steps_per_iteration`` ``learn_step``s, whose changes to the ``learned``
    fields are kept only once the iteration reaches ``learning_starts``. The buffer stores
    the unit-box action; the env receives ``bounds.to_env`` of it, or ``to_env(obs,
    action)`` when given (DSRL: the action is a base policy's noise, denoised for the env).
    """
    cfg = state.config
    steps_done = state.iteration * cfg.num_envs * cfg.num_steps
    warming_up = steps_done < cfg.learning_starts

    # COLLECT: uniform actions while warming up, then the exploration policy.
    def policy(obs, key):
        random_key, explore_key = jax.random.split(key)
        action = explore(obs, explore_key)
        if warmup is None:
            first = jax.random.uniform(random_key, action.shape, minval=-1.0, maxval=1.0)
        else:
            first = warmup(obs, random_key)
        action = jnp.where(warming_up, first, action)
        return (bounds.to_env(action) if to_env is None else to_env(obs, action)), action

    key, rollout_key, learn_key = jax.random.split(state.key, 3)
    (env_state, obs, replay), rollout_stats = rollout_into_replay(
        env,
        env_params,
        buffer,
        policy,
        (state.env_state, state.obs, state.replay),
        rollout_key,
        cfg.num_steps,
    )
    state = state.replace(env_state=env_state, obs=obs, replay=replay, key=key)

    # LEARN: gradient steps on replayed minibatches; no parameter moves while warming up.
    learning_now = steps_done + cfg.num_envs * cfg.num_steps > cfg.learning_starts
    new, metrics = jax.lax.scan(
        learn_step, state, jax.random.split(learn_key, gradient_steps_per_iteration(cfg))
    )
    state = state.replace(
        **{
            name: jax.tree.map(
                lambda n, o: jnp.where(learning_now, n, o), getattr(new, name), getattr(state, name)
            )
            for name in learned
        }
    )
    metrics = jax.tree.map(jnp.mean, metrics)
    metrics.update(rollout_stats)
    return state.replace(iteration=state.iteration + 1), metrics


# ----------------------------------------------------------------------------- binding


def box_action_space(
    env: Environment, env_params: Any, agent_name: str
) -> tuple[int, ActionBounds]:
    """``(action_dim, bounds)`` of a vector ``Box`` action space; a ``ValueError`` otherwise."""
    action_space = env.action_space(env_params)
    if not isinstance(action_space, Box) or len(action_space.shape) != 1:
        raise ValueError(f"{agent_name} needs a vector Box action space, got {action_space!r}")
    return action_space.shape[0], ActionBounds(action_space.low, action_space.high)


def build_agent(
    config: Any,
    env: Environment,
    env_params: Any,
    *,
    init: Callable[..., Any],
    update: Callable[..., tuple[Any, Metrics]],
    act: Callable[..., jax.Array],
    policy_params: Callable[[Any], Any],
    steps_per_iteration: int,
    step_unit: str,
    score_key: str,
    metrics: dict[str, str],
    data_kind: str | None,
) -> Agent:
    """The ``Agent`` record, evaluated by ``act`` on ``ClipAction(env)``."""
    return Agent(
        init=init,
        update=update,
        evaluate=episode_evaluator(
            act, policy_params, ClipAction(env), env_params, config.num_eval_episodes
        ),
        act=act,
        policy_params=policy_params,
        num_iterations=config.total_steps // steps_per_iteration,
        steps_per_iteration=steps_per_iteration,
        step_unit=step_unit,
        score_key=score_key,
        metrics=metrics,
        data_kind=data_kind,
    )


# ----------------------------------------------------------------------------- soft actor-critic
# SAC's losses and gradient step over any tanh-Gaussian actor (``nets.actor``) and twin
# critics (``nets.critic``), for agents whose action is SAC's (DSRL: a diffusion policy's
# initial noise). ``state`` has SAC's fields: ``actor_params``, ``critic_params``,
# ``target_critic_params``, ``log_alpha``, their optimiser states, ``replay`` and a config
# with ``learning_rate``, ``gamma``, ``tau``, ``reward_scale``, ``target_entropy_scale``,
# ``batch_size`` and ``n_step``.


def soft_critic_loss(
    critic_params: Any, nets: Any, state: Any, batch: dict[str, jax.Array], key: jax.Array
) -> tuple[jax.Array, Metrics]:
    """Soft Bellman error: ``Q(s, a) -> r + discount * (min Q'(s', a') - alpha log pi(a'|s'))``."""
    mean, log_std = nets.actor.apply(state.actor_params, batch["next_observations"])
    next_action, next_log_prob = sample_tanh_gaussian(key, mean, log_std)
    next_q = nets.critic.apply(
        state.target_critic_params, batch["next_observations"], next_action
    ).min(axis=0)
    alpha = jnp.exp(state.log_alpha)
    target = batch["rewards"] * state.config.reward_scale + batch["discounts"] * (
        next_q - alpha * next_log_prob
    )
    q = nets.critic.apply(critic_params, batch["observations"], batch["actions"])
    loss = twin_critic_loss(q, target)
    return loss, {"loss/critic": loss, "value/q": q[0].mean()}


def soft_actor_loss(
    actor_params: Any, nets: Any, state: Any, observations: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``alpha * log pi(a|s) - min Q(s, a)`` with ``a`` reparameterised; aux: log pi."""
    mean, log_std = nets.actor.apply(actor_params, observations)
    action, log_prob = sample_tanh_gaussian(key, mean, log_std)
    q = nets.critic.apply(state.critic_params, observations, action).min(axis=0)
    return jnp.mean(jnp.exp(state.log_alpha) * log_prob - q), log_prob


def soft_temperature_loss(
    log_alpha: jax.Array, log_prob: jax.Array, target_entropy: jax.Array
) -> jax.Array:
    """``-log alpha * (log pi + target entropy)``: alpha grows while entropy is below target."""
    return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target_entropy))


def soft_learn_step(
    nets: Any,
    buffer: ReplayBuffer,
    action_dim: int,
    state: Any,
    key: jax.Array,
    transform: Callable[[dict[str, jax.Array]], dict[str, jax.Array]] | None = None,
) -> tuple[Any, Metrics]:
    """One SAC gradient step (critics, then actor and temperature) on a replayed batch,
    passed through ``transform`` first when given (e.g. state normalisation)."""
    cfg = state.config
    tx = optax.adam(cfg.learning_rate)
    sample_key, critic_key, actor_key = jax.random.split(key, 3)
    batch = buffer.sample(state.replay, sample_key, cfg.batch_size, cfg.n_step, cfg.gamma)
    batch = batch if transform is None else transform(batch)

    grads, metrics = jax.grad(soft_critic_loss, has_aux=True)(
        state.critic_params, nets, state, batch, critic_key
    )
    critic_params, critic_opt = apply_gradients(tx, grads, state.critic_params, state.critic_opt)
    state = state.replace(critic_params=critic_params, critic_opt=critic_opt)

    (loss, log_prob), grads = jax.value_and_grad(soft_actor_loss, has_aux=True)(
        state.actor_params, nets, state, batch["observations"], actor_key
    )
    actor_params, actor_opt = apply_gradients(tx, grads, state.actor_params, state.actor_opt)
    alpha_loss, alpha_grad = jax.value_and_grad(soft_temperature_loss)(
        state.log_alpha, log_prob, cfg.target_entropy_scale * action_dim
    )
    log_alpha, alpha_opt = apply_gradients(tx, alpha_grad, state.log_alpha, state.alpha_opt)
    state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        log_alpha=log_alpha,
        alpha_opt=alpha_opt,
        target_critic_params=polyak(state.target_critic_params, critic_params, cfg.tau),
    )
    metrics.update(
        {
            "loss/actor": loss,
            "loss/temperature": alpha_loss,
            "policy/entropy": -log_prob.mean(),
            "policy/alpha": jnp.exp(log_alpha),
        }
    )
    return state, metrics
