"""Diffusion-QL (Wang, Hunt & Zhou, 2023): a diffusion policy trained to clone and to maximise Q.

    train = jax.jit(jax.vmap(diffusion_ql.make_train(cfg, env, params), in_axes=(0, None, None)))
    state, metrics = train(keys, cfg, dataset)   # dataset: dict of arrays

Per gradient step, as in the authors' released code (``agents/ql_diffusion.py``):
* critics: twin Q toward ``r + gamma * (1 - terminated) * min_i Q'_i(s', a')`` with ``a'``
  drawn from the EMA policy by DDPM sampling (``max_q_backup``: 10 draws, the max per critic,
  then the min over critics); gradients clipped to norm ``max_grad_norm``;
* actor (after the critic step, with the new critics): ``L = L_denoise + eta * L_q`` where
  ``L_denoise`` is the DDPM noise-prediction loss of the dataset action and
  ``L_q = -mean Q_i(s, a_0) / mean |Q_j(s, a_0)|`` (the denominator detached) with
  ``a_0`` sampled by the *differentiable* DDPM chain from fresh noise, so the Q gradient
  reaches the denoiser through every denoising step; ``(i, j)`` is ``(1, 2)`` or ``(2, 1)``
  with probability 1/2 each step; gradients clipped to ``max_grad_norm``;
* targets: critics polyak ``tau`` every step; the EMA policy is updated every ``ema_every``
  steps (rate ``ema_rate``) once ``ema_start`` steps are done (a copy of the initial policy
  until then).
Acting: 50 candidate actions per state from the (online) policy by DDPM sampling; the
sampling mode draws one with probability ``softmax(min_i Q'_i)`` (the paper's rule:
``SCORE_KEY`` is the stochastic return; ``selection="argmax"`` makes it greedy), the
deterministic mode takes the candidate with the highest ``min_i Q'_i``.

Defaults are the released code's locomotion settings: 5 steps of the VP schedule, Adam
3e-4 for both, batch 256, eta 1, tau 0.005, EMA 0.995 every 5 steps from step 1000,
2M gradient steps (2000 epochs of 1000); ``max_grad_norm`` 5 is the median of their
per-task values (1 to 9), and ``lr_decay`` (cosine to 0 over the run) is what their README
recommends for the best scores. Where ours differs: the denoiser is rlzoo's residual MLP
(``rlzoo.nets.diffusion.Denoiser``, SiLU; theirs a 3-layer Mish MLP), states are
normalised by the dataset's mean and std (theirs raw), critics use ``activation`` (theirs
Mish), and the denoising loss is averaged over action dimensions (as theirs; rlzoo's
``diffusion_bc`` sums them, so ``loss/denoise`` here is its value / ``action_dim``).
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
    """Diffusion-QL hyperparameters. Defaults are the released code's locomotion settings."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size of the policy and the critics.")
    eta: float = traced(1.0, "Weight of the normalised Q term against the denoising loss.")
    gamma: float = traced(0.99, "Discount factor.")
    tau: float = traced(0.005, "Polyak rate of the target critics per gradient step.")
    ema_rate: float = traced(0.005, "Polyak rate of the EMA policy per EMA update (1 - 0.995).")
    max_grad_norm: float = traced(5.0, "Global gradient-norm clip of policy and critics.")
    weighting_temperature: float = traced(0.1, "Softmax temperature of trajectory weighting.")
    # Static: compiled into the program.
    total_steps: int = static(2_000_000, "Budget per seed, in gradient steps.")
    updates_per_iteration: int = static(1_000, "Gradient steps per logged iteration.")
    batch_size: int = static(256, "Transitions per gradient step, sampled with replacement.")
    ema_every: int = static(5, "Gradient steps between EMA updates.")
    ema_start: int = static(1_000, "Gradient steps before the EMA policy starts to move.")
    max_q_backup: bool = static(False, "Target: max over 10 EMA-policy actions (antmaze).")
    num_candidates: int = static(50, "Candidate actions sampled per state when acting.")
    selection: str = static("softmax", "Sampling mode's choice: 'softmax' of Q or 'argmax'.")
    lr_decay: bool = static(False, "Cosine learning-rate decay to 0 over total_steps.")
    sampler: str = static("uniform", "'uniform', or trajectory weighting 'return' / 'advantage'.")
    normalize_observations: bool = static(True, "Standardise states by dataset mean, std+1e-3.")
    policy: str = static("ddpm", "'ddpm' (noise prediction) or 'flow' (rectified flow).")
    num_denoising_steps: int = static(5, "Denoising (or Euler) steps per action.")
    noise_schedule: str = static("vp", "DDPM noise schedule: 'vp', 'linear' or 'cosine'.")
    hidden_size: int = static(256, "Width of the denoiser's residual MLP.")
    num_blocks: int = static(3, "Residual blocks of the denoiser.")
    time_dim: int = static(16, "Width of the denoising-time embedding.")
    layer_norm: bool = static(False, "LayerNorm at the start of each residual block.")
    activation: str = static("silu", "Denoiser and critic activation: tanh, relu, elu, silu, gelu.")
    critic_hidden_sizes: tuple[int, ...] = static((256, 256, 256), "Critic layer sizes.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {}

SELECTIONS = ("softmax", "argmax")
MAX_Q_BACKUP_SAMPLES = 10  # the released code's number of next actions for max_q_backup
STEP_UNIT = "gradient_steps"
SCORE_KEY = "eval/stochastic_return"  # the paper's rule: softmax(Q) over 50 candidates
DATA_KIND = "dataset"
METRICS = {
    "loss/critic": "mean squared Bellman error, summed over the two critics",
    "loss/actor": "denoising loss + eta * Q term, mean over the iteration's steps",
    "loss/denoise": "DDPM noise-prediction loss of the dataset actions (mean over dims)",
    "loss/q": "-Q_i(s, a_0) / mean |Q_j(s, a_0)| of chain-sampled actions a_0",
    "value/q": "mean Q of the dataset actions (first critic)",
    "value/target": "mean TD target",
    "opt/actor_grad_norm": "global norm of the policy gradient before clipping",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


@struct.dataclass
class TrainState:
    params: Any  # the denoiser being trained (what acts, as in the released code)
    ema_params: Any  # its moving average: the target policy of the critics
    critic_params: Any
    target_critic_params: Any
    actor_opt: Any
    critic_opt: Any
    obs_scale: ObsScale
    key: jax.Array
    gradient_step: jax.Array
    iteration: jax.Array
    config: Config


@struct.dataclass
class Networks:
    policy: DiffusionPolicy
    critic: QNetwork


def check_config(config: Config) -> None:
    check_offline_config(
        config,
        ("updates_per_iteration", "batch_size", "ema_every", "num_candidates", "num_eval_episodes"),
    )
    if config.selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {config.selection!r}")


def optimizer(cfg: Config) -> optax.GradientTransformation:
    """Adam after a global-norm clip; cosine decay to 0 over the run with ``lr_decay``."""
    rate = cfg.learning_rate
    if cfg.lr_decay:
        rate = optax.cosine_decay_schedule(cfg.learning_rate, cfg.total_steps)
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(rate))


# ----------------------------------------------------------------------------- losses


def normalized_q_loss(q: jax.Array, pick_first: jax.Array) -> jax.Array:
    """``-mean Q_i / mean |Q_j|`` (denominator detached), ``(i, j) = (1, 2)`` if
    ``pick_first`` else ``(2, 1)``; ``q`` is ``[2, B]``."""
    numerator = jnp.where(pick_first, q[0], q[1])
    denominator = jnp.where(pick_first, q[1], q[0])
    return -numerator.mean() / jax.lax.stop_gradient(jnp.abs(denominator).mean())


def actor_loss(
    nets: Networks,
    params: Any,
    critic_params: Any,
    obs: jax.Array,
    actions: jax.Array,
    eta: float | jax.Array,
    key: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``L_denoise + eta * L_q``; ``L_q`` is differentiated through the sampling chain."""
    loss_key, noise_key, chain_key, pick_key = jax.random.split(key, 4)
    denoise = jnp.mean(nets.policy.loss(params, loss_key, obs, actions)) / actions.shape[-1]
    noise = jax.random.normal(noise_key, actions.shape)
    sampled = nets.policy.sample(params, obs, noise, chain_key)
    q = nets.critic.apply(critic_params, obs, sampled)
    q_loss = normalized_q_loss(q, jax.random.bernoulli(pick_key))
    loss = denoise + eta * q_loss
    return loss, {"loss/actor": loss, "loss/denoise": denoise, "loss/q": q_loss}


def backup_q(
    nets: Networks, state: TrainState, next_obs: jax.Array, max_q_backup: bool, key: jax.Array
) -> jax.Array:
    """``min_i Q'_i(s', a')`` with ``a'`` from the EMA policy; with ``max_q_backup`` the max
    per critic over ``MAX_Q_BACKUP_SAMPLES`` draws, then the min over critics."""
    draws = MAX_Q_BACKUP_SAMPLES if max_q_backup else None
    next_actions = nets.policy.act(state.ema_params, next_obs, key, False, draws)
    if not max_q_backup:
        return nets.critic.apply(state.target_critic_params, next_obs, next_actions).min(axis=0)
    next_obs = jnp.broadcast_to(next_obs[:, None], (*next_actions.shape[:-1], next_obs.shape[-1]))
    q = nets.critic.apply(state.target_critic_params, next_obs, next_actions)  # [2, B, N]
    return q.max(axis=-1).min(axis=0)


# ----------------------------------------------------------------------------- algorithm


def learn_step(
    nets: Networks,
    bounds: ActionBounds,
    data: dict[str, jax.Array],
    cdf: jax.Array | None,
    state: TrainState,
    key: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """A critic step, then an actor step through the chain, then the targets and the EMA."""
    cfg = state.config
    tx = optimizer(cfg)
    sample_key, target_key, actor_key = jax.random.split(key, 3)
    batch = sample_batch(sample_key, data, cfg.batch_size, cdf)
    obs, next_obs, actions, rewards, discounts = prepare_batch(
        batch, state.obs_scale, bounds, cfg.gamma
    )

    # CRITICS: toward r + gamma * min Q'(s', a' ~ EMA policy).
    target = rewards + discounts * backup_q(nets, state, next_obs, cfg.max_q_backup, target_key)
    critic_params, critic_opt, metrics = critic_update(
        nets.critic, tx, state.critic_params, state.critic_opt, obs, actions, target
    )

    # ACTOR: denoising loss + eta * normalised Q through the chain (the new critics).
    grads, actor_metrics = jax.grad(
        lambda p: actor_loss(nets, p, critic_params, obs, actions, cfg.eta, actor_key),
        has_aux=True,
    )(state.params)
    params, actor_opt = apply_gradients(tx, grads, state.params, state.actor_opt)

    # TARGETS: critics every step; the EMA every ema_every steps once ema_start are done.
    step = state.gradient_step
    ema_now = (step % cfg.ema_every == 0) & (step >= cfg.ema_start)
    ema_params = jax.tree.map(
        lambda new, old: jnp.where(ema_now, new, old),
        polyak(state.ema_params, params, cfg.ema_rate),
        state.ema_params,
    )
    state = state.replace(
        params=params,
        ema_params=ema_params,
        critic_params=critic_params,
        target_critic_params=polyak(state.target_critic_params, critic_params, cfg.tau),
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        gradient_step=step + 1,
    )
    return state, {
        **metrics,
        **actor_metrics,
        "value/target": target.mean(),
        "opt/actor_grad_norm": optax.tree.norm(grads),
    }


def update(
    nets: Networks, bounds: ActionBounds, state: TrainState, data: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """``updates_per_iteration`` gradient steps on minibatches drawn from ``data``."""
    return sampled_update(functools.partial(learn_step, nets, bounds), state, data)


def act(
    nets: Networks,
    bounds: ActionBounds,
    num_candidates: int,
    selection: str,
    params: tuple[ObsScale, Any, Any],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """``params = (state normalisation, denoiser, target critics)``: ``num_candidates`` DDPM
    samples per state, then the best by ``min Q'`` (deterministic) or the ``selection`` rule."""
    obs_scale, denoiser_params, critic_params = params
    candidates, q, choose_key = scored_candidates(
        nets.policy, nets.critic, denoiser_params, critic_params, obs_scale(obs), key,
        num_candidates,
    )  # fmt: skip
    greedy = deterministic or selection == "argmax"
    return bounds.to_env(choose_candidate(choose_key, candidates, q, greedy))


def policy_params(state: TrainState) -> tuple[ObsScale, Any, Any]:
    """What ``act`` needs: the state normalisation, the denoiser and the target critics."""
    return state.obs_scale, state.params, state.target_critic_params


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """Diffusion-QL's ``init``, ``update``, ``evaluate`` and ``act`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, "Diffusion-QL")
    nets = Networks(
        policy=policy_from_config(config, action_dim),
        critic=QNetwork(config.critic_hidden_sizes, config.activation),
    )
    obs_shape = tuple(env.observation_space(env_params).shape)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        check_dataset(data, env, env_params)
        key, policy_key, critic_key = jax.random.split(key, 3)
        dummy_obs = jnp.zeros(obs_shape, jnp.float32)
        params = nets.policy.init(policy_key, dummy_obs)
        critic_params = nets.critic.init(critic_key, dummy_obs, jnp.zeros((action_dim,)))
        tx = optimizer(cfg)
        return TrainState(
            params=params,
            ema_params=params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            actor_opt=tx.init(params),
            critic_opt=tx.init(critic_params),
            obs_scale=init_obs_scale(cfg.normalize_observations, data["observations"], obs_shape),
            key=key,
            gradient_step=jnp.zeros((), jnp.int32),
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
