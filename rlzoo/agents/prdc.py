"""PRDC (Ran et al., 2023): Policy Regularization with Dataset Constraint, on TD3.

    train = jax.jit(jax.vmap(prdc.make_train(cfg, env, env_params), in_axes=(0, None, None)))
    state, metrics = train(keys, cfg, dataset)   # dataset: dict of arrays

TD3+BC's critic and schedule (``rlzoo.agents.td3_bc``: policy noise 0.2 clipped 0.5, delay
2, tau 0.005, Adam 3e-4, batch 256, states normalised by the dataset's mean and std + 1e-3,
lambda = alpha / mean |Q| not differentiated, alpha 2.5), but the actor is pulled toward
the action of the *nearest state-action pair in the whole dataset* instead of the action
logged with its own state: for a batch state ``s`` the query ``[beta * s, pi(s)]`` is
matched against every key ``[beta * s_i, a_i]`` (k = 1, beta 2, as in the paper), and the
actor minimises ``-lambda * Q(s, pi(s)) + mean (pi(s) - a_nn)^2``. The search is exact and
runs on the device in chunks of ``search_chunk`` keys (``rlzoo.data.sampling``): memory is
``batch x chunk x dim`` and time ``batch x N x dim`` per gradient step. The paper builds a
KD-tree on the host; the device search gives the same neighbour (up to float rounding).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlzoo.agents.td3_bc import Networks, TrainState, bind_agent
from rlzoo.core.agent import Agent
from rlzoo.core.agent import make_train as make_train_from_agent
from rlzoo.core.evaluation import EVAL_METRICS
from rlzoo.core.hparams import static, traced
from rlzoo.core.off_policy import (
    actor_step_update,
    apply_gradients,
    critic_step_update,
    critic_update,
    smoothed_target,
)
from rlzoo.core.offline import (
    check_offline_config,
    prepare_batch,
    scan_delayed_learn_steps,
)
from rlzoo.data.sampling import ObsScale, nearest_neighbour, sample_batch, sampling_cdf
from rlzoo.envs import Environment
from rlzoo.nets import ActionBounds


@struct.dataclass
class Config:
    """PRDC hyperparameters. Defaults are the paper's MuJoCo settings."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size of actor and critics.")
    alpha: float = traced(2.5, "Weight of Q against the constraint: lambda = alpha / mean |Q|.")
    beta: float = traced(2.0, "Scale of states against actions in the neighbour search key.")
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
    search_chunk: int = static(256, "Dataset keys per chunk of the nearest-neighbour search.")
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
    "loss/actor": "-lambda * Q + constraint, mean over the iteration's gradient steps",
    "loss/constraint": "mean squared error of pi(s) to the nearest dataset pair's action",
    "policy/neighbour_distance": "mean distance of [beta s, pi(s)] to its nearest key",
    "policy/lambda": "alpha / mean |Q(s, pi(s))|",
    "value/q": "mean Q of the dataset actions (first critic)",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


def check_config(config: Config) -> None:
    check_offline_config(
        config,
        (
            "updates_per_iteration",
            "batch_size",
            "policy_delay",
            "num_eval_episodes",
            "search_chunk",
        ),
    )


# ----------------------------------------------------------------------------- losses
# TD3's target and twin-critic step: ``rlzoo.core.off_policy`` (``smoothed_target``,
# ``critic_update``).


def prdc_actor_loss(
    pi_action: jax.Array, q_pi: jax.Array, neighbour_action: jax.Array, alpha: float | jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``-lambda * mean Q(s, pi(s)) + mean (pi(s) - a_nn)^2``, ``lambda = alpha / mean |Q|``."""
    lam = jax.lax.stop_gradient(alpha / jnp.abs(q_pi).mean())
    constraint = jnp.square(pi_action - jax.lax.stop_gradient(neighbour_action)).mean()
    loss = -lam * q_pi.mean() + constraint
    return loss, {"loss/actor": loss, "loss/constraint": constraint, "policy/lambda": lam}


def search_keys(
    obs_scale: ObsScale, bounds: ActionBounds, data: dict[str, jax.Array], beta: jax.Array
) -> jax.Array:
    """``[beta * normalised s_i, unit-box a_i]`` for every dataset pair: the search keys."""
    obs = obs_scale(data["observations"].astype(jnp.float32))
    actions = bounds.to_unit(data["actions"].astype(jnp.float32))
    return jnp.concatenate([beta * obs, actions], axis=1)


# ----------------------------------------------------------------------------- algorithm


def learn_step(
    nets: Networks,
    bounds: ActionBounds,
    data: dict[str, jax.Array],
    cdf: jax.Array | None,
    keys: jax.Array,
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
    # NEAREST DATASET PAIR to [beta s, pi(s)], searched with the current policy's actions.
    pi_now = nets.actor.apply(state.actor_params, obs)
    index, distance = nearest_neighbour(
        jnp.concatenate([cfg.beta * obs, pi_now], axis=1), keys, cfg.search_chunk
    )
    neighbour_action = keys[index, obs.shape[1] :]

    def actor_objective(params):
        pi_action = nets.actor.apply(params, obs)
        q_pi = nets.critic.apply(critic_params, obs, pi_action)[0]
        return prdc_actor_loss(pi_action, q_pi, neighbour_action, cfg.alpha)

    grads, actor_metrics = jax.grad(actor_objective, has_aux=True)(state.actor_params)
    actor_metrics["policy/neighbour_distance"] = jnp.sqrt(distance).mean()
    actor_params, actor_opt = apply_gradients(tx, grads, state.actor_params, state.actor_opt)
    state = actor_step_update(state, critic_params, critic_opt, actor_params, actor_opt, cfg.tau)
    return state, {**metrics, **actor_metrics}


def update(
    nets: Networks, bounds: ActionBounds, state: TrainState, data: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """``updates_per_iteration`` gradient steps on minibatches drawn from ``data``."""
    cfg = state.config
    cdf = sampling_cdf(data, cfg.sampler, cfg.weighting_temperature)
    keys = search_keys(state.obs_scale, bounds, data, cfg.beta)  # O(N), once per iteration
    return scan_delayed_learn_steps(
        lambda s, k, actor_step: learn_step(nets, bounds, data, cdf, keys, s, k, actor_step),
        state,
        cfg.updates_per_iteration,
        cfg.policy_delay,
    )


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """PRDC's ``init``, ``update``, ``evaluate`` and ``act`` (``rlzoo.core.agent``): TD3+BC's
    state, networks and acting, with PRDC's ``update``."""
    check_config(config)
    return bind_agent(update, METRICS, config, env, env_params, "PRDC")


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config, data=dataset) -> (final_state, per-iteration metrics)``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
