"""IDQL (Hansen-Estruch et al., 2023): IQL's critics with a diffusion behaviour policy, acting
by choosing among sampled actions.

    train = jax.jit(jax.vmap(idql.make_train(cfg, env, params), in_axes=(0, None, None)))
    state, metrics = train(keys, cfg, dataset)   # dataset: dict of arrays

Per gradient step, as in the authors' released code (``jaxrl5/agents/ddpm_iql``), three
independent updates on one minibatch:
* behaviour policy: the DDPM noise-prediction loss of the dataset actions, summed over
  action dimensions (the released ``actor_objective="bc"``: every transition weighted 1);
  Adam with a cosine decay to 0 over the run; an EMA copy (rate ``ema_rate``, 0.001 per
  step) is what samples;
* value: expectile regression of ``V(s)`` on ``min_i Q'_i(s, a)`` for dataset actions
  (``rlzoo.core.expectile``; expectile 0.7 for locomotion);
* critics: ``Q_i(s, a) -> r + gamma * (1 - terminated) * V(s')``; polyak targets (0.005).
The policy never sees the critics during training: the critics only choose among its
samples. Acting: ``num_candidates`` (64) actions per state from the EMA policy by DDPM
sampling, in one batched call, scored by ``min_i Q'_i``; the deterministic mode keeps the
best (the released ``eval_actions``, ``SCORE_KEY``), the sampling mode follows
``selection``: ``"argmax"`` again, or ``"expectile"``, the paper's implicit policy, which
draws candidate ``n`` with probability proportional to ``tau`` if ``Q'(s, a_n) > V(s)``
else ``1 - tau``.

Defaults are the released offline locomotion launcher's: T = 5 steps of the VP schedule,
LayerNorm residual denoiser with 3 blocks of 256 (the paper's LN-ResNet), 64-dim time
features, batch 512, 3M steps, Adam 3e-4 everywhere, critics and value (256, 256) ReLU,
rewards scaled by 1000 / (max - min episode return) (``normalize_rewards``). Where ours
differs: the residual block is rlzoo's ``Denoiser`` (``LN -> act -> W -> act -> W``; theirs
``LN -> W(4x) -> act -> W``, with dropout 0.1 and a 128-unit time MLP we do not have), the
policy optimiser is Adam (theirs AdamW, weight decay 1e-4), the DDPM step is the posterior
of a clipped ``a_hat`` (``rlzoo.nets.diffusion``; theirs clips ``x`` after each step), the
critic loss sums the two critics' mean squared errors (theirs averages: a factor 2 that
Adam ignores), and states are normalised by the dataset's mean and std (theirs raw).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlzoo.core.agent import Agent
from rlzoo.core.agent import make_train as make_train_from_agent
from rlzoo.core.candidates import choose_candidate, scored_candidates
from rlzoo.core.evaluation import EVAL_METRICS
from rlzoo.core.expectile import expectile_value_update
from rlzoo.core.hparams import static, traced
from rlzoo.core.off_policy import apply_gradients, box_action_space, build_agent, critic_update
from rlzoo.core.offline import (
    check_offline_config,
    init_obs_scale,
    prepare_batch,
    return_range_reward_scale,
    sampled_update,
)
from rlzoo.core.reductions import polyak
from rlzoo.data.sampling import ObsScale, sample_batch
from rlzoo.data.store import check_dataset
from rlzoo.envs import Environment
from rlzoo.nets import ActionBounds, QNetwork, ValueNetwork
from rlzoo.nets.diffusion import DiffusionPolicy, policy_from_config


@struct.dataclass
class Config:
    """IDQL hyperparameters. Defaults are the released code's offline locomotion settings."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size of policy, value and critics.")
    gamma: float = traced(0.99, "Discount factor.")
    tau: float = traced(0.005, "Polyak rate of the target critics per gradient step.")
    expectile: float = traced(0.7, "Expectile of the value regression; also the resampling tau.")
    ema_rate: float = traced(0.001, "Polyak rate of the sampling (EMA) policy per step.")
    weighting_temperature: float = traced(0.1, "Softmax temperature of trajectory weighting.")
    # Static: compiled into the program.
    total_steps: int = static(3_000_000, "Budget per seed, in gradient steps.")
    updates_per_iteration: int = static(1_000, "Gradient steps per logged iteration.")
    batch_size: int = static(512, "Transitions per gradient step, sampled with replacement.")
    lr_decay: bool = static(True, "Cosine decay of the policy's step size to 0 over the run.")
    num_candidates: int = static(64, "Candidate actions sampled per state when acting (N).")
    selection: str = static("argmax", "Sampling mode's choice: 'argmax' or 'expectile'.")
    sampler: str = static("uniform", "'uniform', or trajectory weighting 'return' / 'advantage'.")
    normalize_observations: bool = static(True, "Standardise states by dataset mean, std+1e-3.")
    normalize_rewards: bool = static(True, "Scale rewards by 1000 / episode-return range.")
    policy: str = static("ddpm", "'ddpm' (noise prediction) or 'flow' (rectified flow).")
    num_denoising_steps: int = static(5, "Denoising (or Euler) steps per action (T).")
    noise_schedule: str = static("vp", "DDPM noise schedule: 'vp', 'linear' or 'cosine'.")
    hidden_size: int = static(256, "Width of the denoiser's residual MLP.")
    num_blocks: int = static(3, "Residual blocks of the denoiser.")
    time_dim: int = static(64, "Width of the denoising-time embedding.")
    layer_norm: bool = static(True, "LayerNorm at the start of each residual block.")
    activation: str = static("silu", "Denoiser activation: tanh, relu, elu, silu or gelu.")
    critic_hidden_sizes: tuple[int, ...] = static((256, 256), "Value and critic layer sizes.")
    critic_activation: str = static("relu", "Value and critic activation.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {}

SELECTIONS = ("argmax", "expectile")
STEP_UNIT = "gradient_steps"
SCORE_KEY = "eval/deterministic_return"  # the released eval_actions: argmax over 64
DATA_KIND = "dataset"
METRICS = {
    "loss/denoise": "DDPM noise-prediction loss of the dataset actions",
    "loss/value": "expectile loss of V against min Q', mean over the iteration",
    "loss/critic": "squared error of both critics to r + gamma V(s'), summed over critics",
    "value/v": "mean V(s) on the minibatches",
    "value/q": "mean Q of the dataset actions (first critic)",
    "value/advantage": "mean min Q'(s, a) - V(s) on the minibatches",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


@struct.dataclass
class TrainState:
    params: Any  # the behaviour denoiser being trained
    ema_params: Any  # its moving average: what samples candidates
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


@struct.dataclass
class Networks:
    policy: DiffusionPolicy
    value: ValueNetwork
    critic: QNetwork


def check_config(config: Config) -> None:
    check_offline_config(
        config, ("updates_per_iteration", "batch_size", "num_candidates", "num_eval_episodes")
    )
    if config.selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {config.selection!r}")


def policy_optimizer(cfg: Config) -> optax.GradientTransformation:
    rate = cfg.learning_rate
    if cfg.lr_decay:
        rate = optax.cosine_decay_schedule(cfg.learning_rate, cfg.total_steps)
    return optax.adam(rate)


# ----------------------------------------------------------------------------- algorithm


def learn_step(
    nets: Networks,
    bounds: ActionBounds,
    data: dict[str, jax.Array],
    cdf: jax.Array | None,
    state: TrainState,
    key: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Behaviour policy, value and critics, each one step on the same minibatch."""
    cfg = state.config
    tx = optax.adam(cfg.learning_rate)
    sample_key, loss_key = jax.random.split(key)
    batch = sample_batch(sample_key, data, cfg.batch_size, cdf)
    obs, next_obs, actions, rewards, discounts = prepare_batch(
        batch, state.obs_scale, bounds, cfg.gamma
    )
    rewards = rewards * state.reward_scale

    # BEHAVIOUR POLICY: plain denoising loss; the critics never enter it.
    denoise, grads = jax.value_and_grad(
        lambda p: jnp.mean(nets.policy.loss(p, loss_key, obs, actions))
    )(state.params)
    params, actor_opt = apply_gradients(policy_optimizer(cfg), grads, state.params, state.actor_opt)

    # VALUE: expectile of the target Q over the dataset's actions.
    target_q = nets.critic.apply(state.target_critic_params, obs, actions).min(axis=0)
    value_params, value_opt, value_loss, v = expectile_value_update(
        nets.value, tx, state.value_params, state.value_opt, obs, target_q, cfg.expectile
    )

    # CRITICS: one-step backup through the new V(s').
    target = rewards + discounts * nets.value.apply(value_params, next_obs)
    critic_params, critic_opt, metrics = critic_update(
        nets.critic, tx, state.critic_params, state.critic_opt, obs, actions, target
    )

    state = state.replace(
        params=params,
        ema_params=polyak(state.ema_params, params, cfg.ema_rate),
        value_params=value_params,
        critic_params=critic_params,
        target_critic_params=polyak(state.target_critic_params, critic_params, cfg.tau),
        actor_opt=actor_opt,
        value_opt=value_opt,
        critic_opt=critic_opt,
    )
    return state, {
        **metrics,
        "loss/denoise": denoise,
        "loss/value": value_loss,
        "value/v": v.mean(),
        "value/advantage": (target_q - v).mean(),
    }


def update(
    nets: Networks, bounds: ActionBounds, state: TrainState, data: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """``updates_per_iteration`` gradient steps on minibatches drawn from ``data``."""
    return sampled_update(functools.partial(learn_step, nets, bounds), state, data)


def expectile_log_weights(q: jax.Array, v: jax.Array, expectile: float | jax.Array) -> jax.Array:
    """``log(tau)`` where ``Q > V`` else ``log(1 - tau)``: IDQL's implicit-policy weights."""
    return jnp.log(jnp.where(q > v[..., None], expectile, 1.0 - expectile))


def act(
    nets: Networks,
    bounds: ActionBounds,
    num_candidates: int,
    selection: str,
    params: tuple[ObsScale, Any, Any, Any, jax.Array],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """``params = (state normalisation, EMA denoiser, target critics, value, expectile)``:
    ``num_candidates`` DDPM samples per state, then the best by ``min Q'`` (deterministic,
    or ``selection="argmax"``) or one drawn by the expectile weights."""
    obs_scale, denoiser_params, critic_params, value_params, expectile = params
    obs = obs_scale(obs)
    candidates, q, choose_key = scored_candidates(
        nets.policy, nets.critic, denoiser_params, critic_params, obs, key, num_candidates
    )
    if deterministic or selection == "argmax":
        return bounds.to_env(choose_candidate(choose_key, candidates, q, True))
    scores = expectile_log_weights(q, nets.value.apply(value_params, obs), expectile)
    return bounds.to_env(choose_candidate(choose_key, candidates, scores, False))


def policy_params(state: TrainState) -> tuple[ObsScale, Any, Any, Any, jax.Array]:
    """What ``act`` needs: normalisation, EMA denoiser, target critics, value and tau."""
    return (
        state.obs_scale,
        state.ema_params,
        state.target_critic_params,
        state.value_params,
        state.config.expectile,
    )


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """IDQL's ``init``, ``update``, ``evaluate`` and ``act`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, "IDQL")
    nets = Networks(
        policy=policy_from_config(config, action_dim),
        value=ValueNetwork(config.critic_hidden_sizes, config.critic_activation),
        critic=QNetwork(config.critic_hidden_sizes, config.critic_activation),
    )
    obs_shape = tuple(env.observation_space(env_params).shape)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        check_dataset(data, env, env_params)
        key, policy_key, value_key, critic_key = jax.random.split(key, 4)
        dummy_obs = jnp.zeros(obs_shape, jnp.float32)
        params = nets.policy.init(policy_key, dummy_obs)
        value_params = nets.value.init(value_key, dummy_obs)
        critic_params = nets.critic.init(critic_key, dummy_obs, jnp.zeros((action_dim,)))
        tx = optax.adam(cfg.learning_rate)
        return TrainState(
            params=params,
            ema_params=params,
            value_params=value_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            actor_opt=policy_optimizer(cfg).init(params),
            value_opt=tx.init(value_params),
            critic_opt=tx.init(critic_params),
            obs_scale=init_obs_scale(cfg.normalize_observations, data["observations"], obs_shape),
            reward_scale=return_range_reward_scale(cfg.normalize_rewards, data),
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    agent = build_agent(
        config,
        env,
        env_params,
        init=init,
        update=functools.partial(update, nets, bounds),
        act=functools.partial(act, nets, bounds, config.num_candidates, config.selection),
        policy_params=policy_params,
        steps_per_iteration=config.updates_per_iteration,
        step_unit=STEP_UNIT,
        score_key=SCORE_KEY,
        metrics=METRICS,
        data_kind=DATA_KIND,
    )
    return dataclasses.replace(agent, schedule_spans_budget=config.lr_decay)


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config, data=dataset) -> (final_state, per-iteration metrics)``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
