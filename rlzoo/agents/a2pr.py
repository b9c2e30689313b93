"""A2PR (Liu et al., 2024): Adaptive Advantage-guided Policy Regularization, on TD3.

    train = jax.jit(jax.vmap(a2pr.make_train(cfg, env, env_params), in_axes=(0, None, None)))
    state, metrics = train(keys, cfg, dataset)   # dataset: dict of arrays

TD3+BC's critic, schedule and state normalisation (``rlzoo.agents.td3_bc``), plus, per
gradient step in the order of the released code:
* a value ``V(s)`` regressed on ``min(r + g Q'(s', a'), r + g Q(s', a'))`` (target and
  updated critics at the same smoothed next action);
* a state-conditioned action VAE (``rlzoo.nets.ActionVAE``, 750-unit layers, latent
  2 x action_dim) whose reconstruction error counts only where ``Q_1(s, a) > V(s)``
  (weight ``vae_weight``), plus half the KL to N(0, 1): a model of the *good* actions;
* an actor (every ``policy_delay`` steps) minimising ``-lambda Q_1(s, pi) + mean
  m * (pi - target)^2``: the target is the VAE's reconstruction of ``pi`` when its
  advantage ``Q_1 - V`` is at least the dataset action's, else the dataset action; the
  mask ``m = mask * (1[Q_1(s, vae(pi)) >= V] + 1[Q_1(s, a) > V])`` drops the term where
  neither is better than V. As in the released code, the reconstruction target is not
  detached (the gradient also flows through the VAE into pi) and ``V`` is the value before
  this step's value update. Defaults are the released code's (alpha 2.5, mask 1, VAE
  weight 1; hopper used mask 0.4 and discount 0.995, halfcheetah alpha 40).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlzoo.core.agent import Agent
from rlzoo.core.agent import make_train as make_train_from_agent
from rlzoo.core.evaluation import EVAL_METRICS, episode_evaluator
from rlzoo.core.hparams import static, traced
from rlzoo.core.reductions import polyak
from rlzoo.data.sampling import SAMPLERS, ObsScale, dataset_scale, sample_batch, sampling_cdf
from rlzoo.data.store import check_dataset
from rlzoo.envs import Box, ClipAction, Environment
from rlzoo.nets import ActionBounds, ActionVAE, DeterministicActor, QNetwork, ValueNetwork


@struct.dataclass
class Config:
    """A2PR hyperparameters. Defaults are the released code's."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size of actor and critics.")
    alpha: float = traced(2.5, "Weight of Q against the guide: lambda = alpha / mean |Q|.")
    mask: float = traced(1.0, "Weight of the advantage-guided regulariser.")
    vae_weight: float = traced(1.0, "Weight of the VAE's reconstruction of good actions.")
    vae_learning_rate: float = traced(1e-3, "Adam step size of the VAE (PyTorch's default).")
    gamma: float = traced(0.99, "Discount factor.")
    tau: float = traced(0.005, "Polyak rate of the target networks per actor update.")
    policy_noise: float = traced(0.2, "Std of the target-policy smoothing noise (unit box).")
    noise_clip: float = traced(0.5, "Clip of the target-policy smoothing noise.")
    exploration_noise: float = traced(0.1, "Std of action noise in stochastic evaluation.")
    weighting_temperature: float = traced(0.1, "Softmax temperature of trajectory weighting.")
    # Static: compiled into the program.
    total_steps: int = static(1_000_000, "Budget per seed, in gradient steps.")
    updates_per_iteration: int = static(1_000, "Gradient steps per logged iteration.")
    batch_size: int = static(256, "Transitions per gradient step, sampled with replacement.")
    policy_delay: int = static(2, "Critic steps per actor and target update.")
    sampler: str = static("uniform", "'uniform', or trajectory weighting 'return' / 'advantage'.")
    normalize_observations: bool = static(True, "Standardise states by dataset mean, std+1e-3.")
    hidden_sizes: tuple[int, ...] = static((256, 256), "Actor, critic and value layer sizes.")
    vae_hidden_sizes: tuple[int, ...] = static((750, 750), "VAE encoder and decoder sizes.")
    activation: str = static("relu", "tanh, relu, elu, silu or gelu.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {}  # the paper's settings serve every task

STEP_UNIT = "gradient_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = "dataset"
METRICS = {
    "loss/critic": "mean squared Bellman error, summed over the two critics",
    "loss/actor": "-lambda * Q + guide, mean over the iteration's gradient steps",
    "loss/guide": "masked squared error of pi(s) to the advantage-chosen target",
    "loss/value": "squared error of V(s) to the smaller of the two one-step targets",
    "loss/vae": "VAE reconstruction of good actions + 0.5 KL",
    "policy/vae_target_share": "share of targets taken from the VAE rather than the dataset",
    "policy/guide_mask": "mean of the guide's mask",
    "policy/lambda": "alpha / mean |Q(s, pi(s))|",
    "value/q": "mean Q of the dataset actions (first critic)",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


@struct.dataclass
class TrainState:
    actor_params: Any
    critic_params: Any
    target_actor_params: Any
    target_critic_params: Any
    value_params: Any
    vae_params: Any
    actor_opt: Any
    critic_opt: Any
    value_opt: Any
    vae_opt: Any
    obs_scale: ObsScale
    key: jax.Array
    gradient_step: jax.Array
    iteration: jax.Array
    config: Config

    @property
    def params(self) -> Any:
        """The actor's weights (what ``state.params`` means for every agent)."""
        return self.actor_params


@struct.dataclass
class Networks:
    actor: DeterministicActor
    critic: QNetwork
    value: ValueNetwork
    vae: ActionVAE


def check_config(config: Config) -> None:
    for name in ("updates_per_iteration", "batch_size", "policy_delay", "num_eval_episodes"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {config.sampler!r}")
    if config.total_steps < config.updates_per_iteration:
        raise ValueError(
            f"total_steps = {config.total_steps} is less than one iteration's "
            f"updates_per_iteration = {config.updates_per_iteration}."
        )


# ----------------------------------------------------------------------------- losses


def td3_target(
    next_q_fn: Any,
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


def critic_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """``sum_i mean_b (Q_i - target)^2``: the released code's ``mse(Q1) + mse(Q2)``."""
    return jnp.square(q - jax.lax.stop_gradient(target)).mean(axis=1).sum()


def vae_loss(
    recon: jax.Array,
    mean: jax.Array,
    std: jax.Array,
    action: jax.Array,
    good: jax.Array,
    vae_weight: float | jax.Array,
) -> jax.Array:
    """``mean(w * 1[good] * (recon - a)^2) + 0.5 * KL(N(mean, std) || N(0, 1))`` (per dim)."""
    recon_loss = jnp.mean(vae_weight * good[:, None] * jnp.square(recon - action))
    kl = -0.5 * jnp.mean(1.0 + 2.0 * jnp.log(std) - jnp.square(mean) - jnp.square(std))
    return recon_loss + 0.5 * kl


def guide_target(
    vae_action: jax.Array,
    data_action: jax.Array,
    q_vae: jax.Array,
    q_data: jax.Array,
    value: jax.Array,
    mask: float | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The action the actor is pulled to, and the per-sample weight of that pull."""
    use_vae = (q_vae - value) >= (q_data - value)
    target = jnp.where(use_vae[:, None], vae_action, data_action)
    weight = mask * ((q_vae >= value).astype(jnp.float32) + (q_data > value).astype(jnp.float32))
    return target, jax.lax.stop_gradient(weight)


# ----------------------------------------------------------------------------- algorithm


def learn_step(
    nets: Networks,
    bounds: ActionBounds,
    data: dict[str, jax.Array],
    cdf: jax.Array | None,
    state: TrainState,
    key: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """A critic step; every ``policy_delay``-th step also an actor step and target updates."""
    cfg = state.config
    tx = optax.adam(cfg.learning_rate)
    sample_key, noise_key, vae_key, guide_key = jax.random.split(key, 4)
    batch = sample_batch(sample_key, data, cfg.batch_size, cdf)
    obs = state.obs_scale(batch["observations"].astype(jnp.float32))
    next_obs = state.obs_scale(batch["next_observations"].astype(jnp.float32))
    actions = bounds.to_unit(batch["actions"].astype(jnp.float32))
    discounts = cfg.gamma * (1.0 - batch["terminated"].astype(jnp.float32))

    # CRITICS
    next_action = nets.actor.apply(state.target_actor_params, next_obs)
    noise = jnp.clip(
        cfg.policy_noise * jax.random.normal(noise_key, next_action.shape),
        -cfg.noise_clip,
        cfg.noise_clip,
    )
    smoothed_next_action = jnp.clip(next_action + noise, -1.0, 1.0)
    batch_rewards = batch["rewards"].astype(jnp.float32)
    target = td3_target(
        lambda a: nets.critic.apply(state.target_critic_params, next_obs, a),
        next_action,
        batch_rewards,
        discounts,
        noise,
        cfg.noise_clip,
    )

    def critic_objective(params):
        q = nets.critic.apply(params, obs, actions)
        loss = critic_loss(q, target)
        return loss, {"loss/critic": loss, "value/q": q[0].mean()}

    grads, metrics = jax.grad(critic_objective, has_aux=True)(state.critic_params)
    updates, critic_opt = tx.update(grads, state.critic_opt, state.critic_params)
    critic_params = optax.apply_updates(state.critic_params, updates)

    # VALUE: V(s) toward the smaller of the target-critic and updated-critic backups.
    updated_next_q = nets.critic.apply(critic_params, next_obs, smoothed_next_action).min(axis=0)
    value_target = jnp.minimum(target, batch_rewards + discounts * updated_next_q)
    old_value = nets.value.apply(state.value_params, obs)

    def value_objective(params):
        return jnp.square(nets.value.apply(params, obs) - value_target).mean()

    value_loss, grads = jax.value_and_grad(value_objective)(state.value_params)
    updates, value_opt = tx.update(grads, state.value_opt, state.value_params)
    value_params = optax.apply_updates(state.value_params, updates)

    # VAE of the actions whose Q beats V.
    vae_tx = optax.adam(cfg.vae_learning_rate)
    q_data = nets.critic.apply(critic_params, obs, actions)[0]
    good = (q_data > old_value).astype(jnp.float32)

    def vae_objective(params):
        recon, mean, std = nets.vae.apply(params, obs, actions, vae_key)
        return vae_loss(recon, mean, std, actions, good, cfg.vae_weight)

    vae_value, grads = jax.value_and_grad(vae_objective)(state.vae_params)
    updates, vae_opt = vae_tx.update(grads, state.vae_opt, state.vae_params)
    vae_params = optax.apply_updates(state.vae_params, updates)

    # DELAYED ACTOR AND TARGETS (computed every step, kept on every policy_delay-th)
    def actor_objective(params):
        pi_action = nets.actor.apply(params, obs)
        q_pi = nets.critic.apply(critic_params, obs, pi_action)[0]
        lam = jax.lax.stop_gradient(cfg.alpha / jnp.abs(q_pi).mean())
        vae_action, _, _ = nets.vae.apply(vae_params, obs, pi_action, guide_key)
        q_vae = jax.lax.stop_gradient(nets.critic.apply(critic_params, obs, vae_action)[0])
        target, weight = guide_target(vae_action, actions, q_vae, q_data, old_value, cfg.mask)
        guide = jnp.mean(jnp.square(pi_action - target) * weight[:, None])
        loss = -lam * q_pi.mean() + guide
        use_vae = (q_vae >= q_data).astype(jnp.float32).mean()
        return loss, {
            "loss/actor": loss,
            "loss/guide": guide,
            "policy/lambda": lam,
            "policy/vae_target_share": use_vae,
            "policy/guide_mask": weight.mean(),
        }

    grads, actor_metrics = jax.grad(actor_objective, has_aux=True)(state.actor_params)
    updates, actor_opt = tx.update(grads, state.actor_opt, state.actor_params)
    actor_params = optax.apply_updates(state.actor_params, updates)
    delayed = (state.gradient_step + 1) % cfg.policy_delay == 0
    actor_metrics.update({"loss/value": value_loss, "loss/vae": vae_value})

    def keep_if_delayed(new, old):
        return jax.tree.map(lambda n, o: jnp.where(delayed, n, o), new, old)

    state = state.replace(
        critic_params=critic_params,
        critic_opt=critic_opt,
        value_params=value_params,
        value_opt=value_opt,
        vae_params=vae_params,
        vae_opt=vae_opt,
        actor_params=keep_if_delayed(actor_params, state.actor_params),
        actor_opt=keep_if_delayed(actor_opt, state.actor_opt),
        target_actor_params=keep_if_delayed(
            polyak(state.target_actor_params, actor_params, cfg.tau), state.target_actor_params
        ),
        target_critic_params=keep_if_delayed(
            polyak(state.target_critic_params, critic_params, cfg.tau),
            state.target_critic_params,
        ),
        gradient_step=state.gradient_step + 1,
    )
    return state, {**metrics, **actor_metrics}


def update(
    nets: Networks, bounds: ActionBounds, state: TrainState, data: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """``updates_per_iteration`` gradient steps on minibatches drawn from ``data``."""
    cfg = state.config
    cdf = sampling_cdf(data, cfg.sampler, cfg.weighting_temperature)
    key, scan_key = jax.random.split(state.key)
    state, metrics = jax.lax.scan(
        lambda s, k: learn_step(nets, bounds, data, cdf, s, k),
        state.replace(key=key),
        jax.random.split(scan_key, cfg.updates_per_iteration),
    )
    return state.replace(iteration=state.iteration + 1), jax.tree.map(jnp.mean, metrics)


def act(
    nets: Networks,
    bounds: ActionBounds,
    exploration_noise: float,
    params: tuple[ObsScale, Any],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """``params = (state normalisation, actor params)``; env-unit actions."""
    obs_scale, actor_params = params
    action = nets.actor.apply(actor_params, obs_scale(obs))
    if not deterministic:
        noise = exploration_noise * jax.random.normal(key, action.shape)
        action = jnp.clip(action + noise, -1.0, 1.0)
    return bounds.to_env(action)


def policy_params(state: TrainState) -> tuple[ObsScale, Any]:
    return state.obs_scale, state.actor_params


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """A2PR's ``init``, ``update``, ``evaluate`` and ``act`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_space = env.action_space(env_params)
    if not isinstance(action_space, Box) or len(action_space.shape) != 1:
        raise ValueError(f"A2PR needs a vector Box action space, got {action_space!r}")
    action_dim = action_space.shape[0]
    bounds = ActionBounds(action_space.low, action_space.high)
    nets = Networks(
        actor=DeterministicActor(action_dim, config.hidden_sizes, config.activation),
        critic=QNetwork(config.hidden_sizes, config.activation),
        value=ValueNetwork(config.hidden_sizes, config.activation),
        vae=ActionVAE(action_dim, 2 * action_dim, config.vae_hidden_sizes),
    )
    obs_shape = tuple(env.observation_space(env_params).shape)
    bound_act = functools.partial(act, nets, bounds, float(config.exploration_noise))

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        check_dataset(data, env, env_params)
        key, actor_key, critic_key, value_key, vae_key = jax.random.split(key, 5)
        if cfg.normalize_observations:
            obs_scale = dataset_scale(data["observations"])
        else:
            obs_scale = ObsScale(jnp.zeros(obs_shape), jnp.ones(obs_shape))
        dummy_obs = jnp.zeros(obs_shape, jnp.float32)
        actor_params = nets.actor.init(actor_key, dummy_obs)
        dummy_action = jnp.zeros((action_dim,))
        critic_params = nets.critic.init(critic_key, dummy_obs, dummy_action)
        value_params = nets.value.init(value_key, dummy_obs)
        vae_params = nets.vae.init(vae_key, dummy_obs, dummy_action, vae_key)
        tx = optax.adam(cfg.learning_rate)
        return TrainState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_actor_params=actor_params,
            target_critic_params=critic_params,
            value_params=value_params,
            vae_params=vae_params,
            actor_opt=tx.init(actor_params),
            critic_opt=tx.init(critic_params),
            value_opt=tx.init(value_params),
            vae_opt=optax.adam(cfg.vae_learning_rate).init(vae_params),
            obs_scale=obs_scale,
            key=key,
            gradient_step=jnp.zeros((), jnp.int32),
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    return Agent(
        init=init,
        update=functools.partial(update, nets, bounds),
        evaluate=episode_evaluator(
            bound_act, policy_params, ClipAction(env), env_params, config.num_eval_episodes
        ),
        act=bound_act,
        policy_params=policy_params,
        num_iterations=config.total_steps // config.updates_per_iteration,
        steps_per_iteration=config.updates_per_iteration,
        step_unit=STEP_UNIT,
        score_key=SCORE_KEY,
        metrics=METRICS,
        data_kind=DATA_KIND,
    )


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config, data=dataset) -> (final_state, per-iteration metrics)``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
