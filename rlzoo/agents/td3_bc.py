"""TD3+BC (Fujimoto & Gu, 2021): TD3 on a fixed dataset with a behaviour-cloning term.

    train = jax.jit(jax.vmap(td3_bc.make_train(cfg, env, env_params), in_axes=(0, None, None)))
    state, metrics = train(keys, cfg, dataset)   # dataset: dict of arrays

As in the paper and its released code: the actor minimises
``-lambda * Q_1(s, pi(s)) + mean (pi(s) - a)^2`` with ``lambda = alpha / mean |Q_1(s, pi(s))|``
(not differentiated), alpha 2.5; states are normalised by the dataset's mean and
``std + 1e-3`` (the same at evaluation); critics learn TD3's target with policy noise 0.2
clipped at 0.5, the actor and targets update every 2 critic steps, tau 0.005, Adam 3e-4,
batch 256, two 256-unit hidden layers. Actions are handled in the unit box
(``rlzoo.nets.ActionBounds``): for envs whose bounds are +-1 (Brax, D4RL) this is the paper
exactly; elsewhere the BC term is measured in unit-box actions.

The dataset comes through ``data`` (``rlzoo.core.agent``): ``observations``, ``actions``,
``rewards``, ``terminated``, ``truncated``, ``next_observations``. Truncated transitions
bootstrap, terminated ones do not. ``sampler`` picks minibatches uniformly (the paper) or
by trajectory weight (``rlzoo.data.sampling``). Progress is counted in gradient steps.
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
from rlzoo.nets import ActionBounds, DeterministicActor, QNetwork


@struct.dataclass
class Config:
    """TD3+BC hyperparameters. Defaults are the paper's."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size of actor and critics.")
    alpha: float = traced(2.5, "Weight of Q against BC: lambda = alpha / mean |Q|.")
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
    hidden_sizes: tuple[int, ...] = static((256, 256), "Actor and critic layer sizes.")
    activation: str = static("relu", "tanh, relu, elu, silu or gelu.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {}  # the paper's settings serve every task

STEP_UNIT = "gradient_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = "dataset"
METRICS = {
    "loss/critic": "mean squared Bellman error, summed over the two critics",
    "loss/actor": "-lambda * Q + BC, mean over the iteration's gradient steps",
    "loss/bc": "mean squared error of pi(s) to the dataset action (unit box)",
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
    actor_opt: Any
    critic_opt: Any
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


def td3_bc_actor_loss(
    pi_action: jax.Array, q_pi: jax.Array, data_action: jax.Array, alpha: float | jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``-lambda * mean Q(s, pi(s)) + mean (pi(s) - a)^2``, ``lambda = alpha / mean |Q|``."""
    lam = jax.lax.stop_gradient(alpha / jnp.abs(q_pi).mean())
    bc = jnp.square(pi_action - data_action).mean()
    loss = -lam * q_pi.mean() + bc
    return loss, {"loss/actor": loss, "loss/bc": bc, "policy/lambda": lam}


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
    sample_key, noise_key = jax.random.split(key)
    batch = sample_batch(sample_key, data, cfg.batch_size, cdf)
    obs = state.obs_scale(batch["observations"].astype(jnp.float32))
    next_obs = state.obs_scale(batch["next_observations"].astype(jnp.float32))
    actions = bounds.to_unit(batch["actions"].astype(jnp.float32))
    discounts = cfg.gamma * (1.0 - batch["terminated"].astype(jnp.float32))

    # CRITICS
    next_action = nets.actor.apply(state.target_actor_params, next_obs)
    noise = cfg.policy_noise * jax.random.normal(noise_key, next_action.shape)
    target = td3_target(
        lambda a: nets.critic.apply(state.target_critic_params, next_obs, a),
        next_action,
        batch["rewards"].astype(jnp.float32),
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

    # DELAYED ACTOR AND TARGETS (computed every step, kept on every policy_delay-th)
    def actor_objective(params):
        pi_action = nets.actor.apply(params, obs)
        q_pi = nets.critic.apply(critic_params, obs, pi_action)[0]
        return td3_bc_actor_loss(pi_action, q_pi, actions, cfg.alpha)

    grads, actor_metrics = jax.grad(actor_objective, has_aux=True)(state.actor_params)
    updates, actor_opt = tx.update(grads, state.actor_opt, state.actor_params)
    actor_params = optax.apply_updates(state.actor_params, updates)
    delayed = (state.gradient_step + 1) % cfg.policy_delay == 0

    def keep_if_delayed(new, old):
        return jax.tree.map(lambda n, o: jnp.where(delayed, n, o), new, old)

    state = state.replace(
        critic_params=critic_params,
        critic_opt=critic_opt,
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
    """TD3+BC's ``init``, ``update``, ``evaluate`` and ``act`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_space = env.action_space(env_params)
    if not isinstance(action_space, Box) or len(action_space.shape) != 1:
        raise ValueError(f"TD3+BC needs a vector Box action space, got {action_space!r}")
    action_dim = action_space.shape[0]
    bounds = ActionBounds(action_space.low, action_space.high)
    nets = Networks(
        actor=DeterministicActor(action_dim, config.hidden_sizes, config.activation),
        critic=QNetwork(config.hidden_sizes, config.activation),
    )
    obs_shape = tuple(env.observation_space(env_params).shape)
    bound_act = functools.partial(act, nets, bounds, float(config.exploration_noise))

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        check_dataset(data, env, env_params)
        key, actor_key, critic_key = jax.random.split(key, 3)
        if cfg.normalize_observations:
            obs_scale = dataset_scale(data["observations"])
        else:
            obs_scale = ObsScale(jnp.zeros(obs_shape), jnp.ones(obs_shape))
        dummy_obs = jnp.zeros(obs_shape, jnp.float32)
        actor_params = nets.actor.init(actor_key, dummy_obs)
        critic_params = nets.critic.init(critic_key, dummy_obs, jnp.zeros((action_dim,)))
        tx = optax.adam(cfg.learning_rate)
        return TrainState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_actor_params=actor_params,
            target_critic_params=critic_params,
            actor_opt=tx.init(actor_params),
            critic_opt=tx.init(critic_params),
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
