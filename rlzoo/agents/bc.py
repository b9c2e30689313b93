"""Behaviour cloning: maximum likelihood of a dataset's actions, discrete or continuous.

    train = jax.jit(jax.vmap(bc.make_train(bc.Config(), env, env_params), in_axes=(0, None, None)))
    state, metrics = train(keys, bc.Config(), dataset)   # dataset: dict of arrays

The dataset comes through the agent contract's ``data`` argument (``rlzoo.core.agent``):
``observations [N, ...]`` and ``actions [N]`` (discrete) or ``[N, action_dim]``. It is an
argument of every jitted call, shared by all seeds, never a compiled-in constant. The
policy is a categorical or diagonal-Gaussian MLP; the loss is the negative log-likelihood
of the dataset action (for a Gaussian, a variance-weighted squared error plus log std).
Observations are standardised with the dataset's mean and std, computed in ``init`` and
kept in the state, so evaluation in the env sees the same scaling. Progress is counted in
gradient steps; one iteration is ``updates_per_iteration`` of them.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlzoo.core import hparams
from rlzoo.core.agent import Agent
from rlzoo.core.agent import make_train as make_train_from_agent
from rlzoo.core.batching import sample_minibatch
from rlzoo.core.evaluation import EVAL_METRICS, episode_evaluator
from rlzoo.core.hparams import static, traced
from rlzoo.envs import (
    Box,
    ClipAction,
    Discrete,
    Environment,
    MultiDiscrete,
    RunningMeanStd,
    init_running_stats,
    normalize,
    update_running_stats,
)
from rlzoo.nets import Policy


@struct.dataclass
class Config:
    """Behaviour-cloning hyperparameters."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(1e-3, "Adam step size.")
    max_grad_norm: float = traced(1.0, "Global gradient-norm clip.")
    # Static: compiled into the program.
    total_steps: int = static(20_000, "Budget per seed, in gradient steps.")
    updates_per_iteration: int = static(500, "Gradient steps per logged iteration.")
    batch_size: int = static(256, "Transitions per gradient step, sampled with replacement.")
    hidden_sizes: tuple[int, ...] = static((256, 256), "Policy MLP layer sizes.")
    activation: str = static("relu", "tanh, relu, elu, silu or gelu.")
    log_std_init: float = static(-0.5, "Initial log std of Gaussian actions (continuous only).")
    normalize_observations: bool = static(True, "Standardise inputs by the dataset mean/std.")
    num_eval_episodes: int = static(32, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {}  # the defaults serve classic control and Brax alike

STEP_UNIT = "gradient_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = "dataset"
METRICS = {
    "loss/nll": "negative log-likelihood of the dataset actions, mean over the iteration",
    "policy/entropy": "mean policy entropy on the minibatches",
    "policy/accuracy": "share of minibatch actions equal to the policy's mode (discrete only)",
    "policy/action_mse": "squared error of the policy's mean action (continuous only)",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    obs_stats: RunningMeanStd  # dataset statistics (identity when not normalising)
    key: jax.Array
    iteration: jax.Array
    config: Config


def check_config(config: Config) -> None:
    hparams.check_positive(config, "learning_rate", "max_grad_norm")
    hparams.check_layer_sizes(config, "hidden_sizes")
    for name in ("updates_per_iteration", "batch_size", "num_eval_episodes"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.total_steps < config.updates_per_iteration:
        raise ValueError(
            f"total_steps = {config.total_steps} is less than one iteration's "
            f"updates_per_iteration = {config.updates_per_iteration}."
        )


def check_dataset(data: dict[str, jax.Array], env: Environment, env_params: Any) -> None:
    """Refuse datasets whose arrays do not fit the env (shapes are known at trace time)."""
    for name in ("observations", "actions"):
        if name not in data:
            raise ValueError(f"the dataset has no {name!r} array; it has {sorted(data)}.")
    obs_shape = tuple(env.observation_space(env_params).shape)
    if tuple(data["observations"].shape[1:]) != obs_shape:
        raise ValueError(
            f"dataset observations have shape {tuple(data['observations'].shape[1:])} per "
            f"sample but {env.id} observations have shape {obs_shape}."
        )
    action_shape = tuple(env.action_space(env_params).shape)
    if tuple(data["actions"].shape[1:]) != action_shape:
        raise ValueError(
            f"dataset actions have shape {tuple(data['actions'].shape[1:])} per sample but "
            f"{env.id} actions have shape {action_shape}."
        )


def compute_loss(
    params: Any, network: Policy, obs_stats: RunningMeanStd, batch: dict[str, jax.Array]
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Negative log-likelihood of the batch's actions under the policy."""
    policy = network.apply(params, normalize(obs_stats, batch["observations"]))
    nll = -policy.log_prob(batch["actions"]).mean()
    metrics = {"loss/nll": nll, "policy/entropy": policy.entropy().mean()}
    if network.discrete:
        metrics["policy/accuracy"] = jnp.mean(policy.mode() == batch["actions"])
    else:
        metrics["policy/action_mse"] = jnp.mean(jnp.square(policy.mode() - batch["actions"]))
    return nll, metrics


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))


def update(
    network: Policy, state: TrainState, data: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """``updates_per_iteration`` gradient steps on minibatches sampled from ``data``."""
    cfg = state.config
    tx = make_optimizer(cfg)

    def sgd_step(carry, _):
        params, opt_state, key = carry
        key, batch_key = jax.random.split(key)
        batch = sample_minibatch(batch_key, data, cfg.batch_size)
        grads, metrics = jax.grad(compute_loss, has_aux=True)(
            params, network, state.obs_stats, batch
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), metrics

    (params, opt_state, key), metrics = jax.lax.scan(
        sgd_step, (state.params, state.opt_state, state.key), None, cfg.updates_per_iteration
    )
    state = state.replace(
        params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1
    )
    return state, jax.tree.map(jnp.mean, metrics)


def act(
    network: Policy,
    params: tuple[RunningMeanStd, Any],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """``params = (observation statistics, network params)``."""
    obs_stats, net_params = params
    policy = network.apply(net_params, normalize(obs_stats, obs))
    return policy.mode() if deterministic else policy.sample(seed=key)


def policy_params(state: TrainState) -> tuple[RunningMeanStd, Any]:
    return state.obs_stats, state.params


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """BC's ``init``, ``update``, ``evaluate`` and ``act`` for ``env`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_space = env.action_space(env_params)
    discrete = isinstance(action_space, Discrete)
    if not discrete and not isinstance(action_space, Box):
        # The only MultiDiscrete envs (Jumanji's) have pytree observations, which BC's flat
        # observation datasets cannot hold either.
        multi = isinstance(action_space, MultiDiscrete)
        hint = "; PPO (--agent=ppo) trains MultiDiscrete actions" if multi else ""
        raise ValueError(f"BC needs a Discrete or Box action space, got {action_space!r}{hint}")
    network = Policy(
        action_dim=action_space.n if discrete else action_space.shape[0],
        discrete=discrete,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        log_std_init=config.log_std_init,
    )
    acting_env = env if discrete else ClipAction(env)
    obs_shape = tuple(env.observation_space(env_params).shape)
    bound_act = functools.partial(act, network)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        check_dataset(data, env, env_params)
        key, net_key = jax.random.split(key)
        obs_stats = init_running_stats(obs_shape)
        if cfg.normalize_observations:
            obs_stats = update_running_stats(obs_stats, data["observations"])
            # A constant feature would divide by ~0; floor the std as TD3+BC does (1e-3).
            obs_stats = obs_stats.replace(var=jnp.square(jnp.sqrt(obs_stats.var) + 1e-3))
        params = network.init(net_key, jnp.zeros(obs_shape, jnp.float32))
        return TrainState(
            params=params,
            opt_state=make_optimizer(cfg).init(params),
            obs_stats=obs_stats,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    return Agent(
        init=init,
        update=functools.partial(update, network),
        evaluate=episode_evaluator(
            bound_act, policy_params, acting_env, env_params, config.num_eval_episodes
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
