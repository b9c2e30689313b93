"""Soft Actor-Critic with automatic temperature (Haarnoja et al., 2018b), continuous actions.

    train = jax.jit(jax.vmap(sac.make_train(sac.Config(), env, env_params)))
    state, metrics = train(jax.random.split(jax.random.key(0), 8))

The file, top to bottom: ``Config``, ``PRESETS``, the state, ``update`` (one
iteration: collect, then learn), ``act``, ``make_agent``, ``make_train``.

One iteration steps each of ``num_envs`` envs ``num_steps`` times into the replay buffer
(``rlzoo.data.replay``, which lives in the state), then takes ``utd_ratio`` gradient steps
per environment step collected. Before ``learning_starts`` env steps the actions are uniform
and no parameter moves (the gradient steps are still computed and discarded, so the
``loss/`` metrics of those iterations describe steps that were not applied). The actor is a
tanh-squashed Gaussian acting in the unit box (``rlzoo.nets.ActionBounds`` maps it to the
env's bounds); two critics with polyak targets; the temperature ``alpha`` is learned so that
the policy entropy tracks ``target_entropy_scale * action_dim`` (-1 per dimension: the SAC
paper's rule). Truncated episodes bootstrap from their final observation, terminated ones do
not.
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
    box_action_space,
    build_agent,
    check_replay_config,
    collect_and_learn,
    replay_example,
    soft_learn_step,
)
from rlzoo.core.off_policy import (  # re-exported: gradient steps per iteration
    gradient_steps_per_iteration as gradient_steps_per_iteration,
)
from rlzoo.data.replay import ReplayBuffer
from rlzoo.envs import Environment, EpisodeStatistics, VectorEnv
from rlzoo.nets import ActionBounds, QNetwork, TanhGaussianActor, sample_tanh_gaussian


@struct.dataclass
class Config:
    """SAC hyperparameters. Defaults are CleanRL's ``sac_continuous_action`` settings."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size of actor, critics and temperature.")
    gamma: float = traced(0.99, "Discount factor.")
    tau: float = traced(0.005, "Polyak rate of the target critics per gradient step.")
    init_alpha: float = traced(1.0, "Initial temperature (entropy weight).")
    target_entropy_scale: float = traced(-1.0, "Target entropy per action dimension.")
    reward_scale: float = traced(1.0, "Multiplies env rewards before learning.")
    # Static: compiled into the program.
    total_steps: int = static(100_000, "Budget per seed, in env steps.")
    num_envs: int = static(1, "Parallel envs per seed.")
    num_steps: int = static(100, "Env steps per env and iteration.")
    utd_ratio: float = static(1.0, "Gradient steps per env step collected (update-to-data).")
    batch_size: int = static(256, "Transitions per gradient step.")
    buffer_size: int = static(1_000_000, "Replay capacity in transitions (all envs).")
    learning_starts: int = static(5_000, "Env steps of uniform actions before learning.")
    n_step: int = static(1, "Steps of reward summed before bootstrapping (n-step returns).")
    replay_backend: str = static("flashbax", "'flashbax' or 'ring' (rlzoo.data.replay).")
    hidden_sizes: tuple[int, ...] = static((256, 256), "Actor and critic layer sizes.")
    activation: str = static("relu", "tanh, relu, elu, silu or gelu.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {
    # Brax locomotion: more envs per seed so that the device does not idle per step.
    "brax": dict(num_envs=8, num_steps=16, learning_starts=8_192, total_steps=1_000_000),
}

STEP_UNIT = "env_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = None  # SAC learns from its own replay buffer
METRICS = {
    "loss/critic": "mean squared soft Bellman error, summed over the two critics",
    "loss/actor": "alpha * log pi - min Q, mean over the batch",
    "loss/temperature": "-log alpha * (log pi + target entropy), mean over the batch",
    "policy/entropy": "minus the mean log-density of the policy's actions",
    "policy/alpha": "the temperature",
    "value/q": "mean Q of the replayed actions (first critic)",
    "rollout/episode_return": "return of the latest completed episode, mean over envs",
    "rollout/episode_length": "length of the latest completed episode, mean over envs",
    "rollout/episodes_completed": "episodes that ended during the iteration's collection",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    return Config(**PRESETS.get(env_id.split("/", 1)[0], {}))


@struct.dataclass
class TrainState:
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    replay: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array
    iteration: jax.Array
    config: Config

    @property
    def params(self) -> Any:
        """The actor's weights (what ``state.params`` means for every agent)."""
        return self.actor_params


# What a gradient step changes (masked while warming up; the buffer is never copied).
LEARNED = (
    "actor_params",
    "critic_params",
    "target_critic_params",
    "log_alpha",
    "actor_opt",
    "critic_opt",
    "alpha_opt",
)


@struct.dataclass
class Networks:
    actor: TanhGaussianActor
    critic: QNetwork
    action_dim: int = struct.field(pytree_node=False)


def check_config(config: Config) -> None:
    check_replay_config(
        config, ("num_envs", "num_steps", "batch_size", "n_step", "num_eval_episodes")
    )


def adam(cfg: Config) -> optax.GradientTransformation:
    return optax.adam(cfg.learning_rate)


# ----------------------------------------------------------------------------- algorithm
# The losses and one gradient step (critics, then actor and temperature) are
# ``rlzoo.core.off_policy.soft_learn_step``, shared with DSRL's latent-noise SAC.


def update(
    nets: Networks,
    env: Environment,
    env_params: Any,
    buffer: ReplayBuffer,
    bounds: ActionBounds,
    state: TrainState,
    data: Any = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One iteration: ``num_envs x num_steps`` env steps into the buffer, then learning."""
    del data

    # COLLECT with the stochastic policy (uniform actions while warming up).
    def explore(obs, key):
        mean, log_std = nets.actor.apply(state.actor_params, obs)
        return sample_tanh_gaussian(key, mean, log_std)[0]

    return collect_and_learn(
        env,
        env_params,
        buffer,
        bounds,
        explore,
        lambda s, k: soft_learn_step(nets, buffer, nets.action_dim, s, k),
        LEARNED,
        state,
    )


def act(
    nets: Networks,
    bounds: ActionBounds,
    params: Any,
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """Env-unit actions: ``tanh(mean)`` when deterministic, a squashed sample otherwise."""
    mean, log_std = nets.actor.apply(params, obs)
    action = jnp.tanh(mean) if deterministic else sample_tanh_gaussian(key, mean, log_std)[0]
    return bounds.to_env(action)


def policy_params(state: TrainState) -> Any:
    return state.actor_params


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """SAC's ``init``, ``update``, ``evaluate`` and ``act`` for ``env`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, "SAC")
    nets = Networks(
        actor=TanhGaussianActor(action_dim, config.hidden_sizes, config.activation),
        critic=QNetwork(config.hidden_sizes, config.activation),
        action_dim=action_dim,
    )
    train_env = VectorEnv(EpisodeStatistics(env), config.num_envs)
    buffer = ReplayBuffer(config.buffer_size, config.num_envs, config.replay_backend)
    obs_shape = tuple(env.observation_space(env_params).shape)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        del data
        key, actor_key, critic_key, env_key = jax.random.split(key, 4)
        obs, env_state = train_env.reset(env_key, env_params)
        example = replay_example(obs_shape, action_dim)
        actor_params = nets.actor.init(actor_key, example["observations"])
        critic_params = nets.critic.init(critic_key, example["observations"], example["actions"])
        log_alpha = jnp.log(jnp.asarray(cfg.init_alpha, jnp.float32))
        tx = adam(cfg)
        return TrainState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            log_alpha=log_alpha,
            actor_opt=tx.init(actor_params),
            critic_opt=tx.init(critic_params),
            alpha_opt=tx.init(log_alpha),
            replay=buffer.init(example),
            env_state=env_state,
            obs=obs,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    return build_agent(
        config,
        env,
        env_params,
        init=init,
        update=functools.partial(update, nets, train_env, env_params, buffer, bounds),
        act=functools.partial(act, nets, bounds),
        policy_params=policy_params,
        steps_per_iteration=config.num_envs * config.num_steps,
        step_unit=STEP_UNIT,
        score_key=SCORE_KEY,
        metrics=METRICS,
        data_kind=DATA_KIND,
    )


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config, data=None) -> (final_state, per-iteration metrics)``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
