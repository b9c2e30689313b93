"""Diffusion behaviour cloning: a DDPM (or flow-matching) policy fit to a dataset's actions.

    train = jax.jit(jax.vmap(diffusion_bc.make_train(cfg, env, params), in_axes=(0, None, None)))
    state, metrics = train(keys, cfg, dataset)   # dataset: dict of arrays

The policy (``rlzoo.nets.diffusion``) generates a unit-box action from Gaussian noise in
``num_denoising_steps`` steps conditioned on the (normalised) state. Training minimises the
denoising loss, ``|eps - eps_theta(sqrt(abar_t) a + sqrt(1 - abar_t) eps, s, t)|^2`` at a
random step ``t`` (or the rectified-flow loss with ``policy="flow"``), on minibatches of
dataset pairs. Where a Gaussian policy must average the modes of a multimodal action
distribution, this one reproduces them (``experiments/diffusion_expressivity.py``).

Defaults follow Diffusion-QL's behaviour model (Wang et al., 2023): 5 steps of the VP
schedule, Adam 3e-4, batch 256, 256 units; here a residual MLP with SiLU and an EMA copy of
the weights (rate ``ema_rate`` per step), which is what acts and what DSRL and DPPO take as
their base (``--base``). Evaluation: deterministic mode is DDIM from zero noise (a function of
the state), stochastic mode is DDPM ancestral sampling from fresh noise.
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
from rlzoo.core.off_policy import box_action_space, build_agent
from rlzoo.core.offline import check_offline_config, init_obs_scale, scan_learn_steps
from rlzoo.core.reductions import polyak
from rlzoo.data.sampling import ObsScale, sample_batch, sampling_cdf
from rlzoo.data.store import check_dataset
from rlzoo.envs import Environment
from rlzoo.nets import ActionBounds
from rlzoo.nets.diffusion import DiffusionPolicy, policy_from_config


@struct.dataclass
class Config:
    """Diffusion-BC hyperparameters."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size.")
    max_grad_norm: float = traced(1.0, "Global gradient-norm clip.")
    ema_rate: float = traced(0.005, "Polyak rate of the EMA weights per gradient step.")
    weighting_temperature: float = traced(0.1, "Softmax temperature of trajectory weighting.")
    # Static: compiled into the program.
    total_steps: int = static(100_000, "Budget per seed, in gradient steps.")
    updates_per_iteration: int = static(1_000, "Gradient steps per logged iteration.")
    batch_size: int = static(256, "Transitions per gradient step, sampled with replacement.")
    sampler: str = static("uniform", "'uniform', or trajectory weighting 'return' / 'advantage'.")
    normalize_observations: bool = static(True, "Standardise states by dataset mean, std+1e-3.")
    policy: str = static("ddpm", "'ddpm' (noise prediction) or 'flow' (rectified flow).")
    num_denoising_steps: int = static(5, "Denoising (or Euler) steps per action.")
    noise_schedule: str = static("vp", "DDPM noise schedule: 'vp', 'linear' or 'cosine'.")
    hidden_size: int = static(256, "Width of the denoiser's residual MLP.")
    num_blocks: int = static(3, "Residual blocks of the denoiser.")
    time_dim: int = static(16, "Width of the denoising-time embedding.")
    layer_norm: bool = static(False, "LayerNorm at the start of each residual block.")
    activation: str = static("silu", "tanh, relu, elu, silu or gelu.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {}

STEP_UNIT = "gradient_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = "dataset"
METRICS = {
    "loss/denoise": "denoising (or flow-matching) loss, mean over the iteration's steps",
    "opt/grad_norm": "global gradient norm before clipping",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


@struct.dataclass
class TrainState:
    params: Any  # the denoiser being trained
    ema_params: Any  # its moving average: what acts and what a --base run passes on
    opt_state: Any
    obs_scale: ObsScale
    key: jax.Array
    gradient_step: jax.Array
    iteration: jax.Array
    config: Config


def check_config(config: Config) -> None:
    check_offline_config(config, ("updates_per_iteration", "batch_size", "num_eval_episodes"))


def optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))


def learn_step(
    policy: DiffusionPolicy,
    bounds: ActionBounds,
    data: dict[str, jax.Array],
    cdf: jax.Array | None,
    state: TrainState,
    key: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One gradient step of the denoising loss, then the EMA update."""
    cfg = state.config
    sample_key, loss_key = jax.random.split(key)
    batch = sample_batch(sample_key, data, cfg.batch_size, cdf)
    obs = state.obs_scale(batch["observations"].astype(jnp.float32))
    actions = bounds.to_unit(batch["actions"].astype(jnp.float32))

    def loss_fn(params):
        return jnp.mean(policy.loss(params, loss_key, obs, actions))

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    tx = optimizer(cfg)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    state = state.replace(
        params=params,
        ema_params=polyak(state.ema_params, params, cfg.ema_rate),
        opt_state=opt_state,
        gradient_step=state.gradient_step + 1,
    )
    return state, {"loss/denoise": loss, "opt/grad_norm": optax.tree.norm(grads)}


def update(
    policy: DiffusionPolicy, bounds: ActionBounds, state: TrainState, data: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """``updates_per_iteration`` gradient steps on minibatches drawn from ``data``."""
    cfg = state.config
    cdf = sampling_cdf(data, cfg.sampler, cfg.weighting_temperature)
    return scan_learn_steps(
        lambda s, k: learn_step(policy, bounds, data, cdf, s, k), state, cfg.updates_per_iteration
    )


def act(
    policy: DiffusionPolicy,
    bounds: ActionBounds,
    params: tuple[ObsScale, Any],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """``params = (state normalisation, denoiser params)``; env-unit actions."""
    obs_scale, denoiser_params = params
    return bounds.to_env(policy.act(denoiser_params, obs_scale(obs), key, deterministic))


def policy_params(state: TrainState) -> tuple[ObsScale, Any]:
    """What ``act`` needs: the state normalisation and the EMA weights."""
    return state.obs_scale, state.ema_params


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """Diffusion-BC's ``init``, ``update``, ``evaluate`` and ``act`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, "Diffusion-BC")
    policy = policy_from_config(config, action_dim)
    obs_shape = tuple(env.observation_space(env_params).shape)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        check_dataset(data, env, env_params)
        key, init_key = jax.random.split(key)
        params = policy.init(init_key, jnp.zeros(obs_shape, jnp.float32))
        return TrainState(
            params=params,
            ema_params=params,
            opt_state=optimizer(cfg).init(params),
            obs_scale=init_obs_scale(cfg.normalize_observations, data["observations"], obs_shape),
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
        update=functools.partial(update, policy, bounds),
        act=functools.partial(act, policy, bounds),
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
