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
from rlzoo.core.evaluation import EVAL_METRICS
from rlzoo.core.hparams import static, traced
from rlzoo.core.off_policy import (
    actor_step_update,
    apply_gradients,
    box_action_space,
    build_agent,
    critic_step_update,
    critic_update,
    init_actor_critic,
    td3_target,
)
from rlzoo.core.offline import (
    check_offline_config,
    deterministic_act,
    init_obs_scale,
    prepare_batch,
    scaled_policy_params,
    scan_delayed_learn_steps,
)
from rlzoo.data.sampling import ObsScale, sample_batch, sampling_cdf
from rlzoo.data.store import check_dataset
from rlzoo.envs import Environment
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
    check_offline_config(
        config, ("updates_per_iteration", "batch_size", "policy_delay", "num_eval_episodes")
    )


# ----------------------------------------------------------------------------- losses
# TD3's target and twin-critic step: ``rlzoo.core.off_policy`` (``td3_target``,
# ``critic_update``).


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
    actor_step: bool,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """A critic step; with ``actor_step`` (static) also an actor step and target updates."""
    cfg = state.config
    tx = optax.adam(cfg.learning_rate)
    sample_key, noise_key, vae_key, guide_key = jax.random.split(key, 4)
    batch = sample_batch(sample_key, data, cfg.batch_size, cdf)
    obs, next_obs, actions, rewards, discounts = prepare_batch(
        batch, state.obs_scale, bounds, cfg.gamma
    )

    # CRITICS
    next_action = nets.actor.apply(state.target_actor_params, next_obs)
    noise = jnp.clip(
        cfg.policy_noise * jax.random.normal(noise_key, next_action.shape),
        -cfg.noise_clip,
        cfg.noise_clip,
    )
    smoothed_next_action = jnp.clip(next_action + noise, -1.0, 1.0)
    target = td3_target(
        lambda a: nets.critic.apply(state.target_critic_params, next_obs, a),
        next_action,
        rewards,
        discounts,
        noise,
        cfg.noise_clip,
    )
    critic_params, critic_opt, metrics = critic_update(
        nets.critic, tx, state.critic_params, state.critic_opt, obs, actions, target
    )

    # VALUE: V(s) toward the smaller of the target-critic and updated-critic backups.
    updated_next_q = nets.critic.apply(critic_params, next_obs, smoothed_next_action).min(axis=0)
    value_target = jnp.minimum(target, rewards + discounts * updated_next_q)
    old_value = nets.value.apply(state.value_params, obs)

    def value_objective(params):
        return jnp.square(nets.value.apply(params, obs) - value_target).mean()

    value_loss, grads = jax.value_and_grad(value_objective)(state.value_params)
    value_params, value_opt = apply_gradients(tx, grads, state.value_params, state.value_opt)

    # VAE of the actions whose Q beats V.
    vae_tx = optax.adam(cfg.vae_learning_rate)
    q_data = nets.critic.apply(critic_params, obs, actions)[0]
    good = (q_data > old_value).astype(jnp.float32)

    def vae_objective(params):
        recon, mean, std = nets.vae.apply(params, obs, actions, vae_key)
        return vae_loss(recon, mean, std, actions, good, cfg.vae_weight)

    vae_value, grads = jax.value_and_grad(vae_objective)(state.vae_params)
    vae_params, vae_opt = apply_gradients(vae_tx, grads, state.vae_params, state.vae_opt)

    # Value and VAE learn every step; the actor and the targets every policy_delay-th.
    state = state.replace(
        value_params=value_params, value_opt=value_opt, vae_params=vae_params, vae_opt=vae_opt
    )
    metrics.update({"loss/value": value_loss, "loss/vae": vae_value})

    # DELAYED ACTOR AND TARGETS (every policy_delay-th step)
    if not actor_step:
        return critic_step_update(state, critic_params, critic_opt), metrics

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
    actor_params, actor_opt = apply_gradients(tx, grads, state.actor_params, state.actor_opt)
    state = actor_step_update(state, critic_params, critic_opt, actor_params, actor_opt, cfg.tau)
    return state, {**metrics, **actor_metrics}


def update(
    nets: Networks, bounds: ActionBounds, state: TrainState, data: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """``updates_per_iteration`` gradient steps on minibatches drawn from ``data``."""
    cfg = state.config
    cdf = sampling_cdf(data, cfg.sampler, cfg.weighting_temperature)
    return scan_delayed_learn_steps(
        lambda s, k, actor_step: learn_step(nets, bounds, data, cdf, s, k, actor_step),
        state,
        cfg.updates_per_iteration,
        cfg.policy_delay,
    )


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
    return deterministic_act(nets.actor, bounds, exploration_noise, params, obs, key, deterministic)


policy_params = scaled_policy_params


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """A2PR's ``init``, ``update``, ``evaluate`` and ``act`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, "A2PR")
    nets = Networks(
        actor=DeterministicActor(action_dim, config.hidden_sizes, config.activation),
        critic=QNetwork(config.hidden_sizes, config.activation),
        value=ValueNetwork(config.hidden_sizes, config.activation),
        vae=ActionVAE(action_dim, 2 * action_dim, config.vae_hidden_sizes),
    )
    obs_shape = tuple(env.observation_space(env_params).shape)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        check_dataset(data, env, env_params)
        key, actor_key, critic_key, value_key, vae_key = jax.random.split(key, 5)
        dummy_obs = jnp.zeros(obs_shape, jnp.float32)
        dummy_action = jnp.zeros((action_dim,))
        tx = optax.adam(cfg.learning_rate)
        value_params = nets.value.init(value_key, dummy_obs)
        vae_params = nets.vae.init(vae_key, dummy_obs, dummy_action, vae_key)
        return TrainState(
            **init_actor_critic(
                nets.actor, nets.critic, actor_key, critic_key, dummy_obs, dummy_action, tx
            ),
            value_params=value_params,
            vae_params=vae_params,
            value_opt=tx.init(value_params),
            vae_opt=optax.adam(cfg.vae_learning_rate).init(vae_params),
            obs_scale=init_obs_scale(cfg.normalize_observations, data["observations"], obs_shape),
            key=key,
            gradient_step=jnp.zeros((), jnp.int32),
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    return build_agent(
        config,
        env,
        env_params,
        init=init,
        update=functools.partial(update, nets, bounds),
        act=functools.partial(act, nets, bounds, float(config.exploration_noise)),
        policy_params=policy_params,
        steps_per_iteration=config.updates_per_iteration,
        step_unit=STEP_UNIT,
        score_key=SCORE_KEY,
        metrics=METRICS,
        data_kind=DATA_KIND,
    )


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config, data=dataset) -> (final_state, per-iteration metrics)``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
