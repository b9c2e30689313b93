"""Proximal Policy Optimisation (Schulman et al., 2017): discrete, multi-discrete and continuous.

    train = jax.jit(jax.vmap(ppo.make_train(ppo.Config(), env, env_params)))
    state, metrics = train(jax.random.split(jax.random.key(0), 8))

The file, top to bottom: ``Config`` (traced floats may be batched for a sweep; ``static``
fields fix shapes and control flow), ``PRESETS`` per env family, the state types, then the
algorithm as top-level functions (``rollout``, ``compute_loss``, ``update``, ``act``),
which ``make_agent`` only binds to one env and network, and ``make_train``.

Truncation is handled properly: the value of the final observation of a time-limited
episode is bootstrapped (``rlzoo.core.advantages.gae``), terminations are not.

Observations may be arrays or pytrees (``TreeObservation``, space ``Dict``: Jumanji,
Playground's locomotion envs). Pytree ones are stored, shuffled and evaluated leaf by leaf
(``jax.tree.map``); the torsos read their entries flattened and concatenated
(``torsos.TreeMLP``), and an ``"action_mask"`` entry masks the categorical policy, so an
invalid action is never sampled.

``MultiDiscrete`` actions (Jumanji's JobShop, MMST, RubiksCube, ...) get one independent
categorical per entry (``rlzoo.nets.actor_critic.multi_categorical``), masked by a
per-entry ``action_mask``; a joint mask over whole action vectors is refused when the
agent is built.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlzoo.core import hparams, losses
from rlzoo.core.advantages import gae
from rlzoo.core.agent import Agent
from rlzoo.core.agent import make_train as make_train_from_agent
from rlzoo.core.batching import shuffled_minibatches
from rlzoo.core.evaluation import EVAL_METRICS, episode_evaluator
from rlzoo.core.hparams import static, traced
from rlzoo.core.reductions import standardize
from rlzoo.envs import (
    ClipAction,
    Environment,
    EpisodeStatistics,
    NormalizeObservation,
    NormalizeReward,
    VectorEnv,
    normalize_observation,
    observation_statistics,
)
from rlzoo.nets import ActorCritic
from rlzoo.nets.actor_critic import policy_spaces


@struct.dataclass
class Config:
    """PPO hyperparameters. Defaults are PureJaxRL's CartPole settings."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(2.5e-4, "Adam step size (start value when anneal_lr).")
    gamma: float = traced(0.99, "Discount factor.")
    gae_lambda: float = traced(0.95, "GAE lambda: 0 is one-step TD, 1 is Monte Carlo.")
    clip_eps: float = traced(0.2, "Policy ratio clip range: ratios outside 1 +- clip_eps.")
    vf_clip_eps: float = traced(0.2, "Value clip range around the old value (clip_value_loss).")
    ent_coef: float = traced(0.01, "Weight of the entropy bonus in the loss.")
    vf_coef: float = traced(0.5, "Weight of the value loss in the loss.")
    max_grad_norm: float = traced(0.5, "Global gradient-norm clip (1e9: no clipping).")
    adam_eps: float = traced(1e-5, "Adam epsilon.")
    reward_scale: float = traced(1.0, "Multiplies env rewards before learning.")
    # Static: compiled into the program.
    total_steps: int = static(500_000, "Budget per seed, in env steps.")
    num_envs: int = static(4, "Parallel envs per seed.")
    num_steps: int = static(128, "Rollout length per env and iteration.")
    num_epochs: int = static(4, "Passes of minibatch SGD over each rollout.")
    num_minibatches: int = static(4, "Minibatches per epoch; must divide num_envs * num_steps.")
    anneal_lr: bool = static(True, "Decay the learning rate linearly to 0 over the run.")
    normalize_advantages: bool = static(True, "Standardise advantages per minibatch.")
    clip_value_loss: bool = static(False, "PPO value clipping with vf_clip_eps.")
    normalize_observations: bool = static(False, "Running obs statistics, kept in the env state.")
    normalize_rewards: bool = static(False, "Scale rewards by the running std of the return.")
    torso: str = static(
        "mlp", "'mlp' or 'flat_mlp' (images flattened; separate actor and critic) or 'cnn' "
        "(MinAtar, shared).",
    )  # fmt: skip
    hidden_sizes: tuple[int, ...] = static((64, 64), "Actor (and critic) layer sizes.")
    value_hidden_sizes: tuple[int, ...] | None = static(None, "Critic sizes; None: hidden_sizes.")
    activation: str = static("tanh", "tanh, relu, elu, silu or gelu.")
    log_std_init: float = static(0.0, "Initial log std of Gaussian actions (continuous only).")
    num_eval_episodes: int = static(32, "Episodes per evaluation, per policy mode and seed.")


# The optional suites' presets share this shape: 64 envs x 64 steps, 8 minibatches, ReLU
# MLPs, observation normalisation, 2e5 steps: a small CPU's budget, far below the suites'
# own PPO runs (Craftax: 1e9 steps, Playground CartpoleBalance: 6e7).
_SUITE_BASE: dict[str, Any] = dict(
    hidden_sizes=(128, 128),
    activation="relu",
    num_envs=64,
    num_steps=64,
    num_minibatches=8,
    normalize_observations=True,
    total_steps=200_000,
)

# Shipped defaults per env family, applied on top of ``Config()`` by ``default_config``.
PRESETS: dict[str, dict[str, Any]] = {
    # Classic control: PureJaxRL's CartPole settings with twice the envs per iteration
    # (8 x 128 steps: half the updates, each on twice the data) and an 8x larger learning
    # rate. CartPole-v1 at 5e5 steps: 1017 of 1024 fresh runs >= 475, against 1012 with
    # 4 envs at 1e-3 (experiments/ppo_cartpole_candidates.py; README).
    "gymnax": dict(num_envs=8, learning_rate=2e-3),
    # MinAtar images: PureJaxRL's MinAtar settings (its examples/brax_minatar notebook):
    # separate 64x64 ReLU MLPs on the flattened 10x10xC image and a learning rate of 5e-3.
    # The shared CNN at 5e-4 it replaced stayed at a Breakout return of 7 after 2e6 steps
    # and ran 3.7x slower on a CPU (experiments/ppo_minatar.py, minatar_torso_speed.py).
    "gymnax/minatar": dict(
        torso="flat_mlp",
        hidden_sizes=(64, 64),
        activation="relu",
        num_envs=64,
        num_steps=128,
        num_minibatches=8,
        learning_rate=5e-3,
        total_steps=10_000_000,
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
        total_steps=1_000_000,
    ),
    # The optional suites (experiments/ppo_suites.py), sized for a small CPU (see
    # _SUITE_BASE); pass --total_steps / --config.num_envs to scale up.
    # Grid worlds: the H x W x C grid flattened into an MLP; entries normalised.
    "xminigrid": dict(**_SUITE_BASE, torso="flat_mlp", learning_rate=1e-3),
    "navix": dict(**_SUITE_BASE, torso="flat_mlp", learning_rate=1e-3),
    # Jumanji: pytree observations (TreeMLP over the non-mask entries), masked policy.
    "jumanji": dict(**_SUITE_BASE, learning_rate=5e-4, num_eval_episodes=8),
    # Craftax symbolic (1345 / 8268 features): the Craftax baselines' PPO shape
    # (gamma 0.99, lambda 0.8, lr 2e-4, 4 epochs x 8 minibatches), a wider network, and
    # no observation normalisation (the features are already in [0, 1]).
    "craftax": dict(
        **{**_SUITE_BASE, "hidden_sizes": (256, 256), "normalize_observations": False},
        learning_rate=2e-4,
        gae_lambda=0.8,
        num_eval_episodes=8,
    ),
    # MuJoCo Playground (DM Control Suite): Brax-style settings as Playground's own PPO
    # config (discount 0.995, reward scaling 10, lr 1e-3, observation normalisation).
    "playground": dict(
        num_envs=64,
        num_steps=32,
        num_minibatches=8,
        learning_rate=1e-3,
        gamma=0.995,
        reward_scale=10.0,
        max_grad_norm=1e9,
        hidden_sizes=(32, 32, 32, 32),
        value_hidden_sizes=(256, 256, 256, 256, 256),
        activation="silu",
        normalize_observations=True,
        num_eval_episodes=8,
        total_steps=100_000,
    ),
}

STEP_UNIT = "env_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = None  # PPO learns from its own rollouts only
METRICS = {
    "loss/total": "policy + vf_coef * value - ent_coef * entropy, mean over SGD steps",
    "loss/policy": "clipped surrogate loss",
    "loss/value": "0.5 * squared value error (clipped when clip_value_loss)",
    "policy/entropy": "mean policy entropy on the minibatches",
    "policy/approx_kl": "KL(old || new) estimate, (r - 1) - log r",
    "policy/clip_fraction": "share of samples whose ratio left the clip range",
    "value/explained_variance": "1 - Var(returns - values) / Var(returns) on the rollout",
    "rollout/episode_return": "return of the latest completed episode, mean over envs",
    "rollout/episode_length": "length of the latest completed episode, mean over envs",
    "rollout/episodes_completed": "episodes that ended during the rollout",
    **EVAL_METRICS,
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
    obs: Any  # an array, or a pytree (TreeObservation) of arrays
    key: jax.Array
    iteration: jax.Array
    config: Config  # traced hyperparameters travel with the state (sweeps, checkpoints)


@struct.dataclass
class Transition:
    obs: Any  # array or pytree, as the env gives it
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: Any  # where the transition really led (differs from next obs on reset)


@struct.dataclass
class LearnBatch:
    """What the loss reads; only this is shuffled into minibatches."""

    obs: Any
    action: jax.Array
    old_log_prob: jax.Array
    old_value: jax.Array
    advantages: jax.Array
    returns: jax.Array


def check_config(config: Config) -> None:
    """Refuse configs whose values or shapes do not fit, naming the numbers that disagree."""
    hparams.check_positive(config, "learning_rate", "clip_eps", "vf_clip_eps", "max_grad_norm")
    hparams.check_positive(config, "adam_eps", "reward_scale")
    hparams.check_within(config, "gamma", 0.0, 1.0, low_open=True)
    hparams.check_within(config, "gae_lambda", 0.0, 1.0)
    hparams.check_layer_sizes(config, "hidden_sizes", "value_hidden_sizes")
    for name in ("num_envs", "num_steps", "num_epochs", "num_minibatches", "num_eval_episodes"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    batch = config.num_envs * config.num_steps
    if batch % config.num_minibatches:
        raise ValueError(
            f"rollout batch num_envs * num_steps = {config.num_envs} * {config.num_steps} = "
            f"{batch} does not split into num_minibatches = {config.num_minibatches}; "
            "choose values whose product is divisible by num_minibatches."
        )
    if config.total_steps < batch:
        raise ValueError(
            f"total_steps = {config.total_steps} is less than one iteration's batch "
            f"num_envs * num_steps = {batch}."
        )


def make_optimizer(cfg: Config, num_iterations: int) -> optax.GradientTransformation:
    """Adam behind global-norm clipping; the rate decays linearly per iteration if asked."""
    sgd_steps_per_iteration = cfg.num_epochs * cfg.num_minibatches

    def learning_rate(count):
        if not cfg.anneal_lr:
            return cfg.learning_rate
        done_fraction = (count // sgd_steps_per_iteration) / num_iterations
        return cfg.learning_rate * (1.0 - done_fraction)

    return optax.chain(
        optax.clip_by_global_norm(cfg.max_grad_norm),
        optax.adam(learning_rate, eps=cfg.adam_eps),
    )


# ----------------------------------------------------------------------------- algorithm


def rollout(
    network: ActorCritic, env: Environment, env_params: Any, state: TrainState
) -> tuple[TrainState, Transition, dict[str, jax.Array]]:
    """``num_steps`` steps of every env with the current policy."""

    def env_step(carry, _):
        env_state, obs, key = carry
        key, act_key, step_key = jax.random.split(key, 3)
        policy, value = network.apply(state.params, obs)
        action, log_prob = policy.sample_and_log_prob(seed=act_key)
        next_obs, env_state, reward, terminated, truncated, info = env.step(
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
        env_step, (state.env_state, state.obs, state.key), None, state.config.num_steps
    )
    episode_return, episode_length, episode_done = episodes
    stats = {
        # Return and length of the most recently completed episode of each env.
        "rollout/episode_return": episode_return[-1].mean(),
        "rollout/episode_length": episode_length[-1].astype(jnp.float32).mean(),
        "rollout/episodes_completed": episode_done.sum(),
    }
    return state.replace(env_state=env_state, obs=obs, key=key), trajectory, stats


def compute_loss(
    params: Any, network: ActorCritic, cfg: Config, batch: LearnBatch
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO's loss on one minibatch: clipped surrogate, value loss, entropy bonus."""
    policy, values = network.apply(params, batch.obs)
    log_ratio = policy.log_prob(batch.action) - batch.old_log_prob
    advantages = batch.advantages
    if cfg.normalize_advantages:
        advantages = standardize(advantages)
    policy_loss, clipped = losses.clipped_surrogate(log_ratio, advantages, cfg.clip_eps)
    value_clip = cfg.vf_clip_eps if cfg.clip_value_loss else None
    value_loss = losses.value_loss(values, batch.old_value, batch.returns, value_clip)
    entropy = policy.entropy().mean()
    total = policy_loss.mean() + cfg.vf_coef * value_loss.mean() - cfg.ent_coef * entropy
    return total, {
        "loss/total": total,
        "loss/policy": policy_loss.mean(),
        "loss/value": value_loss.mean(),
        "policy/entropy": entropy,
        "policy/approx_kl": losses.approx_kl(log_ratio),
        "policy/clip_fraction": clipped.mean(),
    }


def update(
    network: ActorCritic,
    env: Environment,
    env_params: Any,
    num_iterations: int,
    state: TrainState,
    data: Any = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One PPO iteration: collect ``num_envs x num_steps``, then epochs of minibatch SGD."""
    del data
    cfg = state.config
    # COLLECT A ROLLOUT
    state, trajectory, episode_stats = rollout(network, env, env_params, state)

    # ADVANTAGES. V(final_obs) is V(next obs) except where an episode ended, where it is
    # the value of the state the episode really ended in (bootstrapped on truncation).
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
    batch_size = cfg.num_envs * cfg.num_steps
    batch = LearnBatch(
        trajectory.obs,
        trajectory.action,
        trajectory.log_prob,
        trajectory.value,
        advantages,
        returns,
    )
    batch = jax.tree.map(lambda x: x.reshape((batch_size, *x.shape[2:])), batch)

    # EPOCHS OF MINIBATCH SGD
    tx = make_optimizer(cfg, num_iterations)

    def sgd_step(carry, minibatch):
        params, opt_state = carry
        grads, metrics = jax.grad(compute_loss, has_aux=True)(params, network, cfg, minibatch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), metrics

    def epoch(carry, _):
        params, opt_state, key = carry
        key, perm_key = jax.random.split(key)
        minibatches = shuffled_minibatches(perm_key, batch, cfg.num_minibatches)
        (params, opt_state), metrics = jax.lax.scan(sgd_step, (params, opt_state), minibatches)
        return (params, opt_state, key), metrics

    (params, opt_state, key), sgd_metrics = jax.lax.scan(
        epoch, (state.params, state.opt_state, state.key), None, cfg.num_epochs
    )

    # METRICS: SGD metrics averaged over epochs and minibatches.
    metrics = jax.tree.map(jnp.mean, sgd_metrics)
    metrics.update(episode_stats)
    metrics["value/explained_variance"] = 1.0 - jnp.var(returns - trajectory.value) / (
        jnp.var(returns) + 1e-8
    )
    state = state.replace(
        params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1
    )
    return state, metrics


def act(
    network: ActorCritic,
    params: tuple[Any, Any],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """The policy alone: ``params = (observation statistics or None, network params)``."""
    obs_stats, net_params = params
    if obs_stats is not None:
        obs = normalize_observation(obs_stats, obs)
    dist, _ = network.apply(net_params, obs)
    return dist.mode() if deterministic else dist.sample(seed=key)


def policy_params(state: TrainState) -> tuple[Any, Any]:
    """What ``act`` needs: the running observation statistics (if any) and the weights."""
    return observation_statistics(state.env_state), state.params


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """PPO's ``init``, ``update``, ``evaluate`` and ``act`` for ``env`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_space = env.action_space(env_params)
    obs_space = env.observation_space(env_params)
    spaces = policy_spaces(action_space, obs_space, "PPO")  # refused here, not at init
    discrete = spaces["discrete"]

    network = ActorCritic(
        torso=config.torso,
        hidden_sizes=config.hidden_sizes,
        value_hidden_sizes=config.value_hidden_sizes,
        activation=config.activation,
        log_std_init=config.log_std_init,
        **spaces,
    )

    # Gaussian actions are clipped by the env; the unclipped sample is what gets trained on.
    acting_env = env if discrete else ClipAction(env)
    train_env = VectorEnv(EpisodeStatistics(acting_env), config.num_envs)
    if config.normalize_observations:
        train_env = NormalizeObservation(train_env)
    if config.normalize_rewards:
        train_env = NormalizeReward(train_env)  # its discount is set per config in init
    num_iterations = config.total_steps // (config.num_envs * config.num_steps)
    bound_act = functools.partial(act, network)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        del data
        key, net_key, env_key = jax.random.split(key, 3)
        obs, env_state = train_env.reset(env_key, env_params)
        if cfg.normalize_rewards:  # the return is discounted with this config's gamma
            env_state = env_state.replace(gamma=jnp.asarray(cfg.gamma, jnp.float32))
        params = network.init(net_key, obs)
        return TrainState(
            params=params,
            opt_state=make_optimizer(cfg, num_iterations).init(params),
            env_state=env_state,
            obs=obs,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    return Agent(
        init=init,
        update=functools.partial(update, network, train_env, env_params, num_iterations),
        evaluate=episode_evaluator(
            bound_act, policy_params, acting_env, env_params, config.num_eval_episodes
        ),
        act=bound_act,
        policy_params=policy_params,
        num_iterations=num_iterations,
        steps_per_iteration=config.num_envs * config.num_steps,
        step_unit=STEP_UNIT,
        score_key=SCORE_KEY,
        metrics=METRICS,
        data_kind=DATA_KIND,
        schedule_spans_budget=config.anneal_lr,
    )


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config, data=None) -> (final_state, per-iteration metrics)``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
