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
from collections.abc import Callable
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
    smoothed_target,
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
    check_offline_config(
        config, ("updates_per_iteration", "batch_size", "policy_delay", "num_eval_episodes")
    )


# ----------------------------------------------------------------------------- losses
# TD3's target and twin-critic step: ``rlzoo.core.off_policy`` (``smoothed_target``,
# ``critic_update``).


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
    actor_step: bool,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """A critic step; with ``actor_step`` (static) also an actor step and target updates."""
    cfg = state.config
    tx = optax.adam(cfg.learning_rate)
    sample_key, noise_key = jax.random.split(key)
    batch = sample_batch(sample_key, data, cfg.batch_size, cdf)
    obs, next_obs, actions, rewards, discounts = prepare_batch(
        batch, state.obs_scale, bounds, cfg.gamma
    )

    # CRITICS
    target = smoothed_target(
        nets.actor, nets.critic, state, next_obs, rewards, discounts, noise_key
    )
    critic_params, critic_opt, metrics = critic_update(
        nets.critic, tx, state.critic_params, state.critic_opt, obs, actions, target
    )

    # DELAYED ACTOR AND TARGETS (every policy_delay-th step)
    if not actor_step:
        return critic_step_update(state, critic_params, critic_opt), metrics

    def actor_objective(params):
        pi_action = nets.actor.apply(params, obs)
        q_pi = nets.critic.apply(critic_params, obs, pi_action)[0]
        return td3_bc_actor_loss(pi_action, q_pi, actions, cfg.alpha)

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
    """TD3+BC's ``init``, ``update``, ``evaluate`` and ``act`` (``rlzoo.core.agent``)."""
    check_config(config)
    return bind_agent(update, METRICS, config, env, env_params, "TD3+BC")


def bind_agent(
    update: Callable[..., Any],
    metrics: dict[str, str],
    config: Any,
    env: Environment,
    env_params: Any,
    name: str,
) -> Agent:
    """The agent of a TD3+BC-shaped method: its state and networks; ``update(nets,
    bounds, state, data)`` and the ``metrics`` it declares are its own (PRDC shares all
    but those, ``rlzoo.agents.prdc``)."""
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, name)
    nets = Networks(
        actor=DeterministicActor(action_dim, config.hidden_sizes, config.activation),
        critic=QNetwork(config.hidden_sizes, config.activation),
    )
    obs_shape = tuple(env.observation_space(env_params).shape)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        check_dataset(data, env, env_params)
        key, actor_key, critic_key = jax.random.split(key, 3)
        return TrainState(
            **init_actor_critic(
                nets.actor,
                nets.critic,
                actor_key,
                critic_key,
                jnp.zeros(obs_shape, jnp.float32),
                jnp.zeros((action_dim,)),
                optax.adam(cfg.learning_rate),
            ),
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
        metrics=metrics,
        data_kind=DATA_KIND,
    )


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config, data=dataset) -> (final_state, per-iteration metrics)``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
