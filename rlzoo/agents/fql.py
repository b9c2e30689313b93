"""Flow Q-Learning (Park, Li & Levine, 2025): a one-step policy distilled from a flow BC
policy and trained to maximise Q.

    train = jax.jit(jax.vmap(fql.make_train(cfg, env, params), in_axes=(0, None, None)))
    state, metrics = train(keys, cfg, dataset)   # dataset: dict of arrays

Two policies over unit-box actions, both given the same Gaussian noise ``z``:
* the flow BC policy ``v(s, x_t, t)``, trained by flow matching on the dataset actions
  (``x_t = (1 - t) z + t a``, target velocity ``a - z``) and sampled by ``num_denoising_steps``
  Euler steps (``rlzoo.nets.diffusion``); it only ever imitates;
* the one-step policy ``mu(s, z)``, the policy that acts and that the critics evaluate,
  trained with ``L = -lam * mean Q(s, clip(mu(s, z))) + alpha * mean |mu(s, z) - flow(s, z)|^2``
  where ``flow(s, z)`` is the (constant) Euler solution of the BC flow from the same ``z``,
  ``Q`` the mean of the two critics, and ``lam = 1 / mean |Q|`` (detached) with
  ``normalize_q_loss``, else 1 (the paper);
* critics: ``Q_i(s, a) -> r + gamma * (1 - terminated) * agg_i Q'_i(s', clip(mu(s', z')))``,
  ``agg`` the mean (the paper) or the min (``q_agg="min"``), polyak targets (0.005).
As in the released code (``agents/fql.py``) the critic and actor losses of one step are
taken at the same parameters (one joint gradient step). Acting: ``clip(mu(s, z))`` with fresh
noise (the paper: ``SCORE_KEY`` is the stochastic return); the deterministic mode uses
``z = 0``.

Defaults are the released code's: Adam 3e-4, batch 256, 1M steps, alpha 10, 10 flow steps,
gamma 0.99, tau 0.005, q_agg mean, critics (512, 512, 512, 512) GELU with LayerNorm, actors
of width 512 without LayerNorm, ``normalize_q_loss`` off (its README recommends it on, with
alpha tuned in 0.03..10, for new environments). Where ours differs: both actors are rlzoo's
residual ``Denoiser`` (2 blocks of 512, GELU: 5 hidden layers with skips; theirs 4 plain
layers), the one-step policy being the same network evaluated at the fixed time ``t = 0``
(a constant time embedding), and the flow-matching loss sums over action dimensions (theirs
averages; it trains only the BC flow, so Adam ignores the factor); states are normalised by
the dataset's mean and std (theirs raw).
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
from rlzoo.core.off_policy import apply_gradients, box_action_space, build_agent, critic_update
from rlzoo.core.offline import check_offline_config, init_obs_scale, prepare_batch, sampled_update
from rlzoo.core.reductions import polyak
from rlzoo.data.sampling import ObsScale, sample_batch
from rlzoo.data.store import check_dataset
from rlzoo.envs import Environment
from rlzoo.nets import ActionBounds, QNetwork
from rlzoo.nets.diffusion import DiffusionPolicy, policy_from_config


@struct.dataclass
class Config:
    """FQL hyperparameters. Defaults are the released code's."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size of both policies and the critics.")
    alpha: float = traced(10.0, "Weight of the distillation loss toward the flow policy.")
    gamma: float = traced(0.99, "Discount factor.")
    tau: float = traced(0.005, "Polyak rate of the target critics per gradient step.")
    weighting_temperature: float = traced(0.1, "Softmax temperature of trajectory weighting.")
    # Static: compiled into the program.
    total_steps: int = static(1_000_000, "Budget per seed, in gradient steps.")
    updates_per_iteration: int = static(1_000, "Gradient steps per logged iteration.")
    batch_size: int = static(256, "Transitions per gradient step, sampled with replacement.")
    q_agg: str = static("mean", "Target over the two critics: 'mean' (paper) or 'min'.")
    normalize_q_loss: bool = static(False, "Scale the Q term by 1 / mean |Q| (alpha unitless).")
    sampler: str = static("uniform", "'uniform', or trajectory weighting 'return' / 'advantage'.")
    normalize_observations: bool = static(True, "Standardise states by dataset mean, std+1e-3.")
    policy: str = static("flow", "The BC policy: 'flow' (the paper) or 'ddpm' (DDIM steps).")
    num_denoising_steps: int = static(10, "Euler steps of the flow BC policy.")
    noise_schedule: str = static("vp", "DDPM noise schedule, if policy='ddpm'.")
    hidden_size: int = static(512, "Width of both actors' residual MLPs.")
    num_blocks: int = static(2, "Residual blocks of both actors.")
    time_dim: int = static(16, "Width of the flow-time embedding.")
    layer_norm: bool = static(False, "LayerNorm in the actors' residual blocks.")
    activation: str = static("gelu", "Actor and critic activation: tanh, relu, elu, silu, gelu.")
    critic_hidden_sizes: tuple[int, ...] = static((512, 512, 512, 512), "Critic layer sizes.")
    critic_layer_norm: bool = static(True, "LayerNorm after each critic hidden layer.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {}

Q_AGGREGATIONS = ("mean", "min")
STEP_UNIT = "gradient_steps"
SCORE_KEY = "eval/stochastic_return"  # the paper acts with fresh noise
DATA_KIND = "dataset"
METRICS = {
    "loss/critic": "mean squared Bellman error, summed over the two critics",
    "loss/flow": "flow-matching loss of the BC flow policy",
    "loss/distill": "mean squared distance of the one-step policy to the BC flow (same noise)",
    "loss/q": "-lam * mean Q(s, mu(s, z)) of the one-step policy",
    "loss/actor": "loss/flow + alpha * loss/distill + loss/q",
    "value/q": "mean Q of the dataset actions (first critic)",
    "policy/lambda": "the Q term's scale: 1 / mean |Q| with normalize_q_loss, else 1",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


@struct.dataclass
class TrainState:
    params: Any  # the one-step policy mu(s, z): what acts
    flow_params: Any  # the flow BC policy
    critic_params: Any
    target_critic_params: Any
    actor_opt: Any
    flow_opt: Any
    critic_opt: Any
    obs_scale: ObsScale
    key: jax.Array
    iteration: jax.Array
    config: Config


@struct.dataclass
class Networks:
    flow: DiffusionPolicy  # its ``network`` is also the one-step policy's architecture
    critic: QNetwork

    def one_step(self, params: Any, obs: jax.Array, noise: jax.Array) -> jax.Array:
        """``mu(s, z)`` (unclipped): the actor network at the fixed time ``t = 0``."""
        return self.flow.network.apply(params, obs, noise, jnp.zeros(noise.shape[:-1]))


def check_config(config: Config) -> None:
    check_offline_config(config, ("updates_per_iteration", "batch_size", "num_eval_episodes"))
    if config.q_agg not in Q_AGGREGATIONS:
        raise ValueError(f"q_agg must be one of {Q_AGGREGATIONS}, got {config.q_agg!r}")


# ----------------------------------------------------------------------------- losses


def one_step_loss(
    action: jax.Array,
    flow_action: jax.Array,
    q: jax.Array,
    alpha: float | jax.Array,
    normalize: bool,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``-lam * mean Q + alpha * mean (mu - flow)^2``; ``q`` is the critics' mean at
    ``clip(mu)``, ``lam = 1 / mean |Q|`` (detached) if ``normalize`` else 1."""
    lam = jax.lax.stop_gradient(1.0 / jnp.abs(q).mean()) if normalize else jnp.ones(())
    distill = jnp.square(action - jax.lax.stop_gradient(flow_action)).mean()
    q_loss = -lam * q.mean()
    metrics = {"loss/distill": distill, "loss/q": q_loss, "policy/lambda": lam}
    return q_loss + alpha * distill, metrics


# ----------------------------------------------------------------------------- algorithm


def learn_step(
    nets: Networks,
    bounds: ActionBounds,
    data: dict[str, jax.Array],
    cdf: jax.Array | None,
    state: TrainState,
    key: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Critics, flow BC policy and one-step policy, all from this step's parameters."""
    cfg = state.config
    tx = optax.adam(cfg.learning_rate)
    sample_key, next_key, flow_key, noise_key, chain_key = jax.random.split(key, 5)
    batch = sample_batch(sample_key, data, cfg.batch_size, cdf)
    obs, next_obs, actions, rewards, discounts = prepare_batch(
        batch, state.obs_scale, bounds, cfg.gamma
    )

    # CRITICS: toward r + gamma * agg Q'(s', clip(mu(s', z'))).
    next_noise = jax.random.normal(next_key, actions.shape)
    next_actions = jnp.clip(nets.one_step(state.params, next_obs, next_noise), -1.0, 1.0)
    next_q = nets.critic.apply(state.target_critic_params, next_obs, next_actions)
    next_q = next_q.min(axis=0) if cfg.q_agg == "min" else next_q.mean(axis=0)
    critic_params, critic_opt, metrics = critic_update(
        nets.critic, tx, state.critic_params, state.critic_opt, obs, actions,
        rewards + discounts * next_q,
    )  # fmt: skip

    # FLOW BC POLICY: flow matching on the dataset actions.
    flow_loss, grads = jax.value_and_grad(
        lambda p: jnp.mean(nets.flow.loss(p, flow_key, obs, actions))
    )(state.flow_params)
    flow_params, flow_opt = apply_gradients(tx, grads, state.flow_params, state.flow_opt)

    # ONE-STEP POLICY: max Q, distilled toward the flow's action from the same noise.
    noise = jax.random.normal(noise_key, actions.shape)
    flow_action = nets.flow.sample(state.flow_params, obs, noise, chain_key, deterministic=True)

    def actor_objective(params):
        action = nets.one_step(params, obs, noise)
        q = nets.critic.apply(state.critic_params, obs, jnp.clip(action, -1.0, 1.0)).mean(axis=0)
        return one_step_loss(action, flow_action, q, cfg.alpha, cfg.normalize_q_loss)

    (actor_loss, actor_metrics), grads = jax.value_and_grad(actor_objective, has_aux=True)(
        state.params
    )
    params, actor_opt = apply_gradients(tx, grads, state.params, state.actor_opt)

    state = state.replace(
        params=params,
        flow_params=flow_params,
        critic_params=critic_params,
        target_critic_params=polyak(state.target_critic_params, critic_params, cfg.tau),
        actor_opt=actor_opt,
        flow_opt=flow_opt,
        critic_opt=critic_opt,
    )
    return state, {
        **metrics,
        **actor_metrics,
        "loss/flow": flow_loss,
        "loss/actor": flow_loss + actor_loss,
    }


def update(
    nets: Networks, bounds: ActionBounds, state: TrainState, data: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """``updates_per_iteration`` gradient steps on minibatches drawn from ``data``."""
    return sampled_update(functools.partial(learn_step, nets, bounds), state, data)


def act(
    nets: Networks,
    bounds: ActionBounds,
    params: tuple[ObsScale, Any],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """``params = (state normalisation, one-step policy)``: ``clip(mu(s, z))``, ``z = 0`` in
    the deterministic mode, else ``z ~ N(0, I)``."""
    obs_scale, actor_params = params
    noise = jax.random.normal(key, (*obs.shape[:-1], nets.flow.action_dim))
    if deterministic:
        noise = jnp.zeros_like(noise)
    return bounds.to_env(jnp.clip(nets.one_step(actor_params, obs_scale(obs), noise), -1.0, 1.0))


def policy_params(state: TrainState) -> tuple[ObsScale, Any]:
    """What ``act`` needs: the state normalisation and the one-step policy."""
    return state.obs_scale, state.params


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """FQL's ``init``, ``update``, ``evaluate`` and ``act`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, "FQL")
    nets = Networks(
        flow=policy_from_config(config, action_dim),
        critic=QNetwork(
            config.critic_hidden_sizes, config.activation, layer_norm=config.critic_layer_norm
        ),
    )
    obs_shape = tuple(env.observation_space(env_params).shape)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        check_dataset(data, env, env_params)
        key, actor_key, flow_key, critic_key = jax.random.split(key, 4)
        dummy_obs = jnp.zeros(obs_shape, jnp.float32)
        params = nets.flow.init(actor_key, dummy_obs)
        flow_params = nets.flow.init(flow_key, dummy_obs)
        critic_params = nets.critic.init(critic_key, dummy_obs, jnp.zeros((action_dim,)))
        tx = optax.adam(cfg.learning_rate)
        return TrainState(
            params=params,
            flow_params=flow_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            actor_opt=tx.init(params),
            flow_opt=tx.init(flow_params),
            critic_opt=tx.init(critic_params),
            obs_scale=init_obs_scale(cfg.normalize_observations, data["observations"], obs_shape),
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
