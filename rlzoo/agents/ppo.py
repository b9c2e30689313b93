"""Proximal Policy Optimisation (Schulman et al., 2017), discrete and continuous actions.

The whole algorithm is in this file, top to bottom:

1. ``Config``: hyperparameters. Float fields are traced (a sweep may batch them); fields
   made with ``static`` fix shapes and control flow.
2. ``make_agent``: wraps the env for training, builds the network and optimiser, and
   returns ``init``, ``update`` (one iteration: rollout, GAE, epochs of minibatch SGD)
   and ``evaluate``.
3. ``make_train``: ``train(key) -> (final_state, metrics)``, pure, jittable, vmappable::

       train = jax.jit(jax.vmap(ppo.make_train(ppo.Config(), env, env_params)))
       state, metrics = train(jax.random.split(jax.random.key(0), 8))

Truncation is handled properly: the value of the final observation of a time-limited
episode is bootstrapped (``rlzoo.core.advantages.gae``), terminations are not.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlzoo.core import losses
from rlzoo.core.advantages import gae
from rlzoo.core.agent import Agent
from rlzoo.core.agent import make_train as _make_train_from_agent
from rlzoo.core.evaluation import episode_limit, run_episodes
from rlzoo.core.hparams import static
from rlzoo.envs import (
    Box,
    ClipAction,
    Discrete,
    Environment,
    EpisodeStatistics,
    NormalizeObservation,
    NormalizeReward,
    VectorEnv,
    normalize,
    observation_statistics,
)
from rlzoo.nets import ActorCritic


@struct.dataclass
class Config:
    """PPO hyperparameters. Defaults are PureJaxRL's CartPole settings."""

    # Traced: may be batched for a sweep.
    learning_rate: float = 2.5e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2  # policy ratio clip range
    vf_clip_eps: float = 0.2  # value clip range, used when clip_value_loss
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    adam_eps: float = 1e-5
    reward_scale: float = 1.0  # multiplies env rewards before learning
    # Static: compiled into the program.
    total_timesteps: int = static(500_000)
    num_envs: int = static(4)
    num_steps: int = static(128)  # rollout length per env and iteration
    num_epochs: int = static(4)
    num_minibatches: int = static(4)
    anneal_lr: bool = static(True)  # linear decay to 0 over the run
    normalize_advantages: bool = static(True)  # per minibatch
    clip_value_loss: bool = static(False)
    normalize_observations: bool = static(False)  # running statistics, in the env state
    normalize_rewards: bool = static(False)  # scale by the running std of the return
    torso: str = static("mlp")  # "mlp" or "cnn" (MinAtar images)
    hidden_sizes: tuple[int, ...] = static((64, 64))
    value_hidden_sizes: tuple[int, ...] | None = static(None)  # None: same as hidden_sizes
    activation: str = static("tanh")
    log_std_init: float = static(0.0)  # continuous actions only
    num_eval_episodes: int = static(32)


# Shipped defaults per env family, applied on top of ``Config()`` by ``default_config``.
PRESETS: dict[str, dict[str, Any]] = {
    # Classic control: PureJaxRL's CartPole settings with a 4x larger learning rate, which
    # solved CartPole-v1 for 24 of 24 seeds (2.5e-4: 7 of 8); experiments/ppo_cartpole.py.
    "gymnax": dict(learning_rate=1e-3),
    # MinAtar images: CNN torso, more envs (PureJaxRL / gymnax MinAtar settings).
    "gymnax/minatar": dict(
        torso="cnn",
        hidden_sizes=(64,),
        activation="relu",
        num_envs=64,
        num_steps=128,
        num_minibatches=8,
        learning_rate=5e-4,
        total_timesteps=10_000_000,
    ),
    # Brax locomotion: the Brax training colab's PPO settings (its "ant" entry, with
    # Brax's default networks), with num_envs scaled from 4096 to 256 for small machines.
    # One iteration = 256 envs x 80 steps = Brax's 16 unrolls of 5 steps per update.
    "brax": dict(
        num_envs=256,
        num_steps=80,
        num_epochs=4,
        num_minibatches=32,
        learning_rate=3e-4,
        # Brax keeps the rate constant; annealing it keeps the final policy from collapsing
        # late in a run (2 of 4 inverted_pendulum seeds at 1000 fell to ~200 without it).
        anneal_lr=True,
        gamma=0.97,
        gae_lambda=0.95,
        clip_eps=0.3,
        ent_coef=1e-2,
        vf_coef=0.5,
        max_grad_norm=1e9,  # Brax's default: no gradient clipping
        reward_scale=10.0,
        hidden_sizes=(32, 32, 32, 32),
        value_hidden_sizes=(256, 256, 256, 256, 256),
        activation="silu",
        normalize_observations=True,
        total_timesteps=1_000_000,
    ),
}


def preset_name(env_id: str) -> str:
    if env_id.startswith("gymnax/") and env_id.endswith("-MinAtar"):
        return "gymnax/minatar"
    return env_id.split("/", 1)[0]


def default_config(env_id: str) -> Config:
    """Shipped settings for the env's family (see ``PRESETS``)."""
    return Config(**PRESETS.get(preset_name(env_id), {}))


@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array
    iteration: jax.Array
    config: Config  # traced hyperparameters travel with the state (sweeps, checkpoints)


@struct.dataclass
class Transition:
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array  # where the transition really led (differs from next obs on reset)


def check_config(config: Config) -> None:
    """Refuse configs whose shapes do not fit, naming the numbers that disagree."""
    batch = config.num_envs * config.num_steps
    if batch % config.num_minibatches:
        raise ValueError(
            f"rollout batch num_envs * num_steps = {config.num_envs} * {config.num_steps} = "
            f"{batch} does not split into num_minibatches = {config.num_minibatches}; "
            "choose values whose product is divisible by num_minibatches."
        )
    if config.total_timesteps < batch:
        raise ValueError(
            f"total_timesteps = {config.total_timesteps} is less than one iteration's batch "
            f"num_envs * num_steps = {batch}."
        )
    for name in ("num_envs", "num_steps", "num_epochs", "num_minibatches", "num_eval_episodes"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """Build PPO's ``init``, ``update`` and ``evaluate`` for ``env`` (see ``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_space = env.action_space(env_params)
    discrete = isinstance(action_space, Discrete)
    if not discrete and not isinstance(action_space, Box):
        raise ValueError(f"PPO needs a Discrete or Box action space, got {action_space!r}")

    network = ActorCritic(
        action_dim=action_space.n if discrete else action_space.shape[0],
        discrete=discrete,
        torso=config.torso,
        hidden_sizes=config.hidden_sizes,
        value_hidden_sizes=config.value_hidden_sizes,
        activation=config.activation,
        log_std_init=config.log_std_init,
    )

    # Gaussian actions are clipped by the env; the unclipped sample is what gets trained on.
    acting_env = env if discrete else ClipAction(env)
    train_env = VectorEnv(EpisodeStatistics(acting_env), config.num_envs)
    if config.normalize_observations:
        train_env = NormalizeObservation(train_env)
    if config.normalize_rewards:
        # The env is built once per program, so a gamma sweep shares this (base) gamma here.
        train_env = NormalizeReward(train_env, gamma=config.gamma)
    max_eval_steps = episode_limit(env, env_params)

    batch_size = config.num_envs * config.num_steps
    minibatch_size = batch_size // config.num_minibatches
    num_iterations = config.total_timesteps // batch_size
    steps_per_iteration_sgd = config.num_epochs * config.num_minibatches

    def optimizer(cfg: Config) -> optax.GradientTransformation:
        def learning_rate(count):
            if not config.anneal_lr:
                return cfg.learning_rate
            done_fraction = (count // steps_per_iteration_sgd) / num_iterations
            return cfg.learning_rate * (1.0 - done_fraction)

        return optax.chain(
            optax.clip_by_global_norm(cfg.max_grad_norm),
            optax.adam(learning_rate, eps=cfg.adam_eps),
        )

    def init(key: jax.Array, cfg: Config = config) -> TrainState:
        key, net_key, env_key = jax.random.split(key, 3)
        obs, env_state = train_env.reset(env_key, env_params)
        params = network.init(net_key, obs)
        return TrainState(
            params=params,
            opt_state=optimizer(cfg).init(params),
            env_state=env_state,
            obs=obs,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    def rollout(state: TrainState) -> tuple[TrainState, Transition, dict]:
        def env_step(carry, _):
            env_state, obs, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            policy, value = network.apply(state.params, obs)
            action, log_prob = policy.sample_and_log_prob(seed=act_key)
            next_obs, env_state, reward, terminated, truncated, info = train_env.step(
                step_key, env_state, action, env_params
            )
            transition = Transition(
                obs=obs,
                action=action,
                log_prob=log_prob,
                value=value,
                reward=reward * state.config.reward_scale,
                terminated=terminated,
                truncated=truncated,
                final_obs=info["final_observation"],
            )
            episode = (info["episode_return"], info["episode_length"], info["episode_done"])
            return (env_state, next_obs, key), (transition, episode)

        (env_state, obs, key), (trajectory, episodes) = jax.lax.scan(
            env_step, (state.env_state, state.obs, state.key), None, config.num_steps
        )
        episode_return, episode_length, episode_done = episodes
        stats = {
            # Return and length of the most recently completed episode of each env.
            "episode_return": episode_return[-1].mean(),
            "episode_length": episode_length[-1].astype(jnp.float32).mean(),
            "episodes_completed": episode_done.sum(),
        }
        return state.replace(env_state=env_state, obs=obs, key=key), trajectory, stats

    def loss_fn(params, cfg: Config, obs, action, old_log_prob, old_value, advantages, returns):
        policy, values = network.apply(params, obs)
        log_ratio = policy.log_prob(action) - old_log_prob
        if config.normalize_advantages:
            advantages = losses.normalize(advantages)
        policy_loss, clipped = losses.clipped_surrogate(log_ratio, advantages, cfg.clip_eps)
        value_clip = cfg.vf_clip_eps if config.clip_value_loss else None
        value_loss = losses.value_loss(values, old_value, returns, value_clip)
        entropy = policy.entropy().mean()
        total = policy_loss.mean() + cfg.vf_coef * value_loss.mean() - cfg.ent_coef * entropy
        return total, {
            "loss": total,
            "policy_loss": policy_loss.mean(),
            "value_loss": value_loss.mean(),
            "entropy": entropy,
            "approx_kl": losses.approx_kl(log_ratio),
            "clip_fraction": clipped.mean(),
        }

    def update(state: TrainState) -> tuple[TrainState, dict]:
        """One PPO iteration: collect ``num_envs x num_steps``, then epochs of minibatch SGD."""
        cfg = state.config
        state, trajectory, episode_stats = rollout(state)

        # V(final_obs) is V(next obs) except where an episode ended, where it is the value
        # of the state the episode really ended in (bootstrapped on truncation).
        next_values = network.apply(state.params, trajectory.final_obs, method=network.value)
        advantages, returns = gae(
            trajectory.reward,
            trajectory.value,
            next_values,
            trajectory.terminated,
            trajectory.truncated,
            cfg.gamma,
            cfg.gae_lambda,
        )

        tx = optimizer(cfg)
        # Only what the loss reads is shuffled into minibatches.
        learn_batch = (
            trajectory.obs,
            trajectory.action,
            trajectory.log_prob,
            trajectory.value,
            advantages,
            returns,
        )
        flat = jax.tree.map(lambda x: x.reshape((batch_size, *x.shape[2:])), learn_batch)

        def epoch(carry, _):
            params, opt_state, key = carry
            key, perm_key = jax.random.split(key)
            order = jax.random.permutation(perm_key, batch_size)

            def split(x):
                return jnp.take(x, order, axis=0).reshape(
                    (config.num_minibatches, minibatch_size, *x.shape[1:])
                )

            minibatches = jax.tree.map(split, flat)

            def sgd_step(carry, minibatch):
                params, opt_state = carry
                grads, metrics = jax.grad(loss_fn, has_aux=True)(params, cfg, *minibatch)
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), metrics

            (params, opt_state), metrics = jax.lax.scan(sgd_step, (params, opt_state), minibatches)
            return (params, opt_state, key), metrics

        (params, opt_state, key), sgd_metrics = jax.lax.scan(
            epoch, (state.params, state.opt_state, state.key), None, config.num_epochs
        )
        iteration = state.iteration + 1
        metrics = jax.tree.map(jnp.mean, sgd_metrics)
        params_finite = jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)])
        )
        metrics.update(episode_stats)
        metrics["finite"] = params_finite & jnp.isfinite(metrics["loss"])
        metrics["env_steps"] = iteration * batch_size
        metrics["explained_variance"] = 1.0 - jnp.var(returns - trajectory.value) / (
            jnp.var(returns) + 1e-8
        )
        state = state.replace(params=params, opt_state=opt_state, key=key, iteration=iteration)
        return state, metrics

    def evaluate(state: TrainState, key: jax.Array) -> dict[str, jax.Array]:
        """Mean and per-episode returns of the deterministic and the stochastic policy."""
        obs_stats = observation_statistics(state.env_state)

        def policy(deterministic: bool):
            def act(obs, act_key):
                if obs_stats is not None:
                    obs = normalize(obs_stats, obs)
                dist, _ = network.apply(state.params, obs)
                return dist.mode() if deterministic else dist.sample(seed=act_key)

            return act

        results = {}
        for name, deterministic in (("deterministic", True), ("stochastic", False)):
            key, episode_key = jax.random.split(key)
            episodes = run_episodes(
                episode_key,
                acting_env,
                env_params,
                policy(deterministic),
                config.num_eval_episodes,
                max_eval_steps,
            )
            results[f"{name}_return"] = episodes["return"].mean()
            results[f"{name}_length"] = episodes["length"].astype(jnp.float32).mean()
        return results

    return Agent(
        init=init,
        update=update,
        evaluate=evaluate,
        num_iterations=num_iterations,
        steps_per_iteration=batch_size,
    )


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config) -> (final_state, per-iteration metrics)``."""
    return _make_train_from_agent(make_agent(config, env, env_params), config)
