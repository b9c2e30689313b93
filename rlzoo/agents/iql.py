"""Implicit Q-Learning (Kostrikov, Nair & Levine, 2022): offline RL without querying unseen actions.

    train = jax.jit(jax.vmap(iql.make_train(cfg, env, env_params), in_axes=(0, None, None)))
    state, metrics = train(keys, cfg, dataset)   # dataset: dict of arrays

Three losses, in the order of the paper's released code per gradient step:
* value: expectile regression of ``V(s)`` on ``min_i Q'_i(s, a)`` for dataset actions,
  ``|expectile - 1(u < 0)| * u^2`` with ``u = Q' - V`` (expectile 0.7 for locomotion);
* policy extraction: advantage-weighted regression, ``-exp(beta * (Q' - V)) * log pi(a|s)``
  with the weight clipped at 100 (beta, the inverse temperature, 3.0);
* critics: ``Q_i(s, a) -> r + gamma * (1 - terminated) * V(s')``; polyak targets (0.005).
Adam 3e-4, batch 256, two 256-unit layers. The policy is a Gaussian around a tanh mean with
a state-independent log std, in the unit box (``rlzoo.nets.ActionBounds``). States are
normalised by the dataset's mean and std + 1e-3 (as CORL does); rewards may be scaled by
``1000 / (max - min episode return)`` (the paper's locomotion setting, ``normalize_rewards``,
on in the Brax preset). ``sampler`` draws minibatches uniformly or by trajectory weight.
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
from rlzoo.core.expectile import expectile_loss as expectile_loss  # re-exported (tests)
from rlzoo.core.expectile import expectile_value_update
from rlzoo.core.hparams import static, traced
from rlzoo.core.off_policy import apply_gradients, box_action_space, build_agent, twin_critic_loss
from rlzoo.core.offline import (
    check_offline_config,
    init_obs_scale,
    prepare_batch,
    return_range_reward_scale,
    scaled_policy_params,
    scan_learn_steps,
)
from rlzoo.core.reductions import polyak
from rlzoo.data.sampling import ObsScale, sample_batch, sampling_cdf
from rlzoo.data.store import check_dataset
from rlzoo.envs import Environment
from rlzoo.nets import ActionBounds, GaussianActor, QNetwork, ValueNetwork, gaussian_log_prob


@struct.dataclass
class Config:
    """IQL hyperparameters. Defaults are the paper's locomotion settings."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size of value, critics and policy.")
    gamma: float = traced(0.99, "Discount factor.")
    tau: float = traced(0.005, "Polyak rate of the target critics per gradient step.")
    expectile: float = traced(0.7, "Expectile of the value regression (0.5: the mean).")
    beta: float = traced(3.0, "Inverse temperature of the advantage weights.")
    max_weight: float = traced(100.0, "Clip of the advantage weights exp(beta * A).")
    weighting_temperature: float = traced(0.1, "Softmax temperature of trajectory weighting.")
    # Static: compiled into the program.
    total_steps: int = static(1_000_000, "Budget per seed, in gradient steps.")
    updates_per_iteration: int = static(1_000, "Gradient steps per logged iteration.")
    batch_size: int = static(256, "Transitions per gradient step, sampled with replacement.")
    sampler: str = static("uniform", "'uniform', or trajectory weighting 'return' / 'advantage'.")
    normalize_observations: bool = static(True, "Standardise states by dataset mean, std+1e-3.")
    normalize_rewards: bool = static(False, "Scale rewards by 1000 / episode-return range.")
    hidden_sizes: tuple[int, ...] = static((256, 256), "Policy, value and critic layer sizes.")
    activation: str = static("relu", "tanh, relu, elu, silu or gelu.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {
    "brax": dict(normalize_rewards=True),  # the paper's MuJoCo locomotion setting
}

STEP_UNIT = "gradient_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = "dataset"
METRICS = {
    "loss/value": "expectile loss of V against min Q', mean over the iteration",
    "loss/critic": "squared error of both critics to r + gamma V(s'), summed over critics",
    "loss/actor": "advantage-weighted negative log-likelihood of the dataset actions",
    "value/v": "mean V(s) on the minibatches",
    "value/advantage": "mean Q'(s, a) - V(s) on the minibatches",
    "policy/weight": "mean clipped advantage weight",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    return Config(**PRESETS.get(env_id.split("/", 1)[0], {}))


@struct.dataclass
class TrainState:
    actor_params: Any
    value_params: Any
    critic_params: Any
    target_critic_params: Any
    actor_opt: Any
    value_opt: Any
    critic_opt: Any
    obs_scale: ObsScale
    reward_scale: jax.Array
    key: jax.Array
    iteration: jax.Array
    config: Config

    @property
    def params(self) -> Any:
        """The actor's weights (what ``state.params`` means for every agent)."""
        return self.actor_params


@struct.dataclass
class Networks:
    actor: GaussianActor
    value: ValueNetwork
    critic: QNetwork


def check_config(config: Config) -> None:
    check_offline_config(config, ("updates_per_iteration", "batch_size", "num_eval_episodes"))


# ----------------------------------------------------------------------------- losses
# The expectile value loss and step: ``rlzoo.core.expectile`` (shared with IDQL).


def advantage_weights(
    advantage: jax.Array, beta: float | jax.Array, max_weight: float | jax.Array
) -> jax.Array:
    """``min(exp(beta * A), max_weight)``, a constant of the policy gradient."""
    return jax.lax.stop_gradient(jnp.minimum(jnp.exp(beta * advantage), max_weight))


# ----------------------------------------------------------------------------- algorithm


def learn_step(
    nets: Networks,
    bounds: ActionBounds,
    data: dict[str, jax.Array],
    cdf: jax.Array | None,
    state: TrainState,
    key: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Value, then policy, then critics, then the target critics."""
    cfg = state.config
    tx = optax.adam(cfg.learning_rate)
    batch = sample_batch(key, data, cfg.batch_size, cdf)
    obs, next_obs, actions, rewards, discounts = prepare_batch(
        batch, state.obs_scale, bounds, cfg.gamma
    )
    rewards = rewards * state.reward_scale
    target_q = nets.critic.apply(state.target_critic_params, obs, actions).min(axis=0)

    # VALUE: expectile of the target Q over the dataset's actions.
    value_params, value_opt, value_loss, v = expectile_value_update(
        nets.value, tx, state.value_params, state.value_opt, obs, target_q, cfg.expectile
    )

    # POLICY: advantage-weighted regression on the dataset actions (the new V).
    advantage = target_q - nets.value.apply(value_params, obs)
    weights = advantage_weights(advantage, cfg.beta, cfg.max_weight)

    def actor_objective(params):
        mean, log_std = nets.actor.apply(params, obs)
        return -jnp.mean(weights * gaussian_log_prob(mean, log_std, actions))

    actor_loss, grads = jax.value_and_grad(actor_objective)(state.actor_params)
    actor_params, actor_opt = apply_gradients(tx, grads, state.actor_params, state.actor_opt)

    # CRITICS: one-step backup through V(s'), never through a policy action.
    target = rewards + discounts * nets.value.apply(value_params, next_obs)

    def critic_objective(params):
        return twin_critic_loss(nets.critic.apply(params, obs, actions), target)

    critic_loss, grads = jax.value_and_grad(critic_objective)(state.critic_params)
    critic_params, critic_opt = apply_gradients(tx, grads, state.critic_params, state.critic_opt)

    state = state.replace(
        actor_params=actor_params,
        value_params=value_params,
        critic_params=critic_params,
        target_critic_params=polyak(state.target_critic_params, critic_params, cfg.tau),
        actor_opt=actor_opt,
        value_opt=value_opt,
        critic_opt=critic_opt,
    )
    return state, {
        "loss/value": value_loss,
        "loss/critic": critic_loss,
        "loss/actor": actor_loss,
        "value/v": v.mean(),
        "value/advantage": advantage.mean(),
        "policy/weight": weights.mean(),
    }


def update(
    nets: Networks, bounds: ActionBounds, state: TrainState, data: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """``updates_per_iteration`` gradient steps on minibatches drawn from ``data``."""
    cfg = state.config
    cdf = sampling_cdf(data, cfg.sampler, cfg.weighting_temperature)
    return scan_learn_steps(
        lambda s, k: learn_step(nets, bounds, data, cdf, s, k), state, cfg.updates_per_iteration
    )


def act(
    nets: Networks,
    bounds: ActionBounds,
    params: tuple[ObsScale, Any],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """``params = (state normalisation, actor params)``; env-unit actions."""
    obs_scale, actor_params = params
    mean, log_std = nets.actor.apply(actor_params, obs_scale(obs))
    if not deterministic:
        mean = jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)
    return bounds.to_env(mean)


policy_params = scaled_policy_params


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """IQL's ``init``, ``update``, ``evaluate`` and ``act`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, "IQL")
    nets = Networks(
        actor=GaussianActor(action_dim, config.hidden_sizes, config.activation),
        value=ValueNetwork(config.hidden_sizes, config.activation),
        critic=QNetwork(config.hidden_sizes, config.activation),
    )
    obs_shape = tuple(env.observation_space(env_params).shape)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        check_dataset(data, env, env_params)
        key, actor_key, value_key, critic_key = jax.random.split(key, 4)
        reward_scale = return_range_reward_scale(cfg.normalize_rewards, data)
        dummy_obs = jnp.zeros(obs_shape, jnp.float32)
        actor_params = nets.actor.init(actor_key, dummy_obs)
        value_params = nets.value.init(value_key, dummy_obs)
        critic_params = nets.critic.init(critic_key, dummy_obs, jnp.zeros((action_dim,)))
        tx = optax.adam(cfg.learning_rate)
        return TrainState(
            actor_params=actor_params,
            value_params=value_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            actor_opt=tx.init(actor_params),
            value_opt=tx.init(value_params),
            critic_opt=tx.init(critic_params),
            obs_scale=init_obs_scale(cfg.normalize_observations, data["observations"], obs_shape),
            reward_scale=reward_scale,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    return build_agent(
        config,
        env,
        env_params,
        init=init,
        update=functools.partial(update, nets, bounds),
        act=functools.partial(act, nets, bounds),
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
