"""Twin Delayed DDPG (Fujimoto et al., 2018), continuous actions.

    train = jax.jit(jax.vmap(td3.make_train(td3.Config(), env, env_params)))
    state, metrics = train(jax.random.split(jax.random.key(0), 8))

The file, top to bottom: ``Config``, ``PRESETS``, the state, the losses (``td3_target``,
``actor_loss``; the twin-critic step and the delayed update are ``rlzoo.core.off_policy``'s),
one gradient step (``learn_step``), ``update`` (collect, then learn), ``act``,
``make_agent``, ``make_train``.

One iteration steps each of ``num_envs`` envs ``num_steps`` times into the replay buffer
(``rlzoo.data.replay``, part of the state) with Gaussian exploration noise, then takes
``utd_ratio`` gradient steps per env step collected (none applied before
``learning_starts``; those iterations' ``loss/`` metrics describe discarded steps). TD3's
three rules: the smaller of two target critics, target-policy smoothing (noise
``policy_noise`` clipped at ``noise_clip``), and actor and target updates every
``policy_delay`` critic steps. Actions live in the unit box (``rlzoo.nets.ActionBounds``
maps them to the env), so the noise scales are the paper's for a max action of 1.
Truncations bootstrap, terminations do not.
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
    apply_gradients,
    box_action_space,
    build_agent,
    check_replay_config,
    collect_and_learn,
    critic_update,
    delayed_update,
    init_actor_critic,
    noisy_action,
    replay_example,
    smoothed_target,
)
from rlzoo.core.off_policy import (  # re-exported: gradient steps per iteration
    gradient_steps_per_iteration as gradient_steps_per_iteration,
)
from rlzoo.data.replay import ReplayBuffer
from rlzoo.envs import Environment, EpisodeStatistics, VectorEnv
from rlzoo.nets import ActionBounds, DeterministicActor, QNetwork


@struct.dataclass
class Config:
    """TD3 hyperparameters. Defaults are the paper's (and CleanRL's ``td3_continuous_action``)."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size of actor and critics.")
    gamma: float = traced(0.99, "Discount factor.")
    tau: float = traced(0.005, "Polyak rate of the target networks per actor update.")
    exploration_noise: float = traced(0.1, "Std of the Gaussian noise on collected actions.")
    policy_noise: float = traced(0.2, "Std of the target-policy smoothing noise.")
    noise_clip: float = traced(0.5, "Clip of the target-policy smoothing noise.")
    reward_scale: float = traced(1.0, "Multiplies env rewards before learning.")
    # Static: compiled into the program.
    total_steps: int = static(100_000, "Budget per seed, in env steps.")
    num_envs: int = static(1, "Parallel envs per seed.")
    num_steps: int = static(100, "Env steps per env and iteration.")
    utd_ratio: float = static(1.0, "Gradient steps per env step collected (update-to-data).")
    policy_delay: int = static(2, "Critic steps per actor and target update.")
    batch_size: int = static(256, "Transitions per gradient step.")
    buffer_size: int = static(1_000_000, "Replay capacity in transitions (all envs).")
    learning_starts: int = static(25_000, "Env steps of uniform actions before learning.")
    n_step: int = static(1, "Steps of reward summed before bootstrapping (n-step returns).")
    replay_backend: str = static("flashbax", "'flashbax' or 'ring' (rlzoo.data.replay).")
    hidden_sizes: tuple[int, ...] = static((256, 256), "Actor and critic layer sizes.")
    activation: str = static("relu", "tanh, relu, elu, silu or gelu.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {
    # Short classic-control tasks: 25k warm-up steps would be most of the budget.
    "gymnax": dict(learning_starts=5_000),
    "brax": dict(num_envs=8, num_steps=16, learning_starts=8_192, total_steps=1_000_000),
}

STEP_UNIT = "env_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = None  # TD3 learns from its own replay buffer
METRICS = {
    "loss/critic": "mean squared Bellman error, summed over the two critics",
    "loss/actor": "-Q(s, pi(s)), mean over the batch and the iteration's gradient steps",
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
    target_actor_params: Any
    target_critic_params: Any
    actor_opt: Any
    critic_opt: Any
    replay: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array
    gradient_step: jax.Array
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
    "target_actor_params",
    "target_critic_params",
    "actor_opt",
    "critic_opt",
    "gradient_step",
)


@struct.dataclass
class Networks:
    actor: DeterministicActor
    critic: QNetwork


def check_config(config: Config) -> None:
    check_replay_config(
        config,
        ("num_envs", "num_steps", "batch_size", "n_step", "policy_delay", "num_eval_episodes"),
    )


# ----------------------------------------------------------------------------- losses
# The twin-critic loss and step: ``rlzoo.core.off_policy`` (``twin_critic_loss``,
# ``critic_update``).


def td3_target(
    nets: Networks, state: TrainState, batch: dict[str, jax.Array], key: jax.Array
) -> jax.Array:
    """``r + discount * min_i Q'_i(s', clip(pi'(s') + clip(noise, +-c), -1, 1))``."""
    return smoothed_target(
        nets.actor,
        nets.critic,
        state,
        batch["next_observations"],
        batch["rewards"] * state.config.reward_scale,
        batch["discounts"],
        key,
    )


def actor_loss(
    actor_params: Any, nets: Networks, critic_params: Any, observations: jax.Array
) -> jax.Array:
    """``-Q_1(s, pi(s))``: the deterministic policy gradient through the first critic."""
    action = nets.actor.apply(actor_params, observations)
    return -nets.critic.apply(critic_params, observations, action)[0].mean()


# ----------------------------------------------------------------------------- algorithm


def learn_step(
    nets: Networks, buffer: ReplayBuffer, state: TrainState, key: jax.Array
) -> tuple[TrainState, dict[str, jax.Array]]:
    """A critic step; every ``policy_delay``-th step also an actor step and target updates."""
    cfg = state.config
    tx = optax.adam(cfg.learning_rate)
    sample_key, noise_key = jax.random.split(key)
    batch = buffer.sample(state.replay, sample_key, cfg.batch_size, cfg.n_step, cfg.gamma)

    target = td3_target(nets, state, batch, noise_key)
    critic_params, critic_opt, metrics = critic_update(
        nets.critic,
        tx,
        state.critic_params,
        state.critic_opt,
        batch["observations"],
        batch["actions"],
        target,
    )

    # DELAYED ACTOR AND TARGETS (computed every step, kept on every policy_delay-th).
    loss, grads = jax.value_and_grad(actor_loss)(
        state.actor_params, nets, critic_params, batch["observations"]
    )
    actor_params, actor_opt = apply_gradients(tx, grads, state.actor_params, state.actor_opt)
    state = delayed_update(
        state, critic_params, critic_opt, actor_params, actor_opt, cfg.policy_delay, cfg.tau
    )
    metrics["loss/actor"] = loss
    return state, metrics


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

    # COLLECT with pi(s) + exploration noise (uniform actions while warming up).
    def explore(obs, key):
        action = nets.actor.apply(state.actor_params, obs)
        return noisy_action(action, key, state.config.exploration_noise)

    return collect_and_learn(
        env,
        env_params,
        buffer,
        bounds,
        explore,
        lambda s, k: learn_step(nets, buffer, s, k),
        LEARNED,
        state,
    )


def act(
    nets: Networks,
    bounds: ActionBounds,
    exploration_noise: float,
    params: Any,
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """Env-unit actions: ``pi(s)``, plus the exploration noise unless deterministic."""
    action = nets.actor.apply(params, obs)
    if not deterministic:
        action = noisy_action(action, key, exploration_noise)
    return bounds.to_env(action)


def policy_params(state: TrainState) -> Any:
    return state.actor_params


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """TD3's ``init``, ``update``, ``evaluate`` and ``act`` for ``env`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, "TD3")
    nets = Networks(
        actor=DeterministicActor(action_dim, config.hidden_sizes, config.activation),
        critic=QNetwork(config.hidden_sizes, config.activation),
    )
    train_env = VectorEnv(EpisodeStatistics(env), config.num_envs)
    buffer = ReplayBuffer(config.buffer_size, config.num_envs, config.replay_backend)
    obs_shape = tuple(env.observation_space(env_params).shape)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        del data
        key, actor_key, critic_key, env_key = jax.random.split(key, 4)
        obs, env_state = train_env.reset(env_key, env_params)
        example = replay_example(obs_shape, action_dim)
        return TrainState(
            **init_actor_critic(
                nets.actor,
                nets.critic,
                actor_key,
                critic_key,
                example["observations"],
                example["actions"],
                optax.adam(cfg.learning_rate),
            ),
            replay=buffer.init(example),
            env_state=env_state,
            obs=obs,
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
        update=functools.partial(update, nets, train_env, env_params, buffer, bounds),
        # Evaluation's stochastic mode uses the base config's exploration noise.
        act=functools.partial(act, nets, bounds, float(config.exploration_noise)),
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
