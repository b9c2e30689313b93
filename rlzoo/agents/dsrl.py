"""DSRL: steering a frozen diffusion policy with latent-space SAC (Wagenmaker et al., 2025).

    data = diffusion_base.base_data(bc_state.obs_scale, bc_state.ema_params)  # or --base
    train = jax.jit(jax.vmap(dsrl.make_train(cfg, env, params), in_axes=(0, None, None)))
    state, metrics = train(keys, cfg, data)

"Steering Your Diffusion Policy with Latent Space Reinforcement Learning" fine-tunes a
pretrained diffusion (or flow) policy without touching its weights: a SAC agent chooses the
*initial noise* ``w`` of the policy's deterministic sampler, and the env plays
``a = pi_base(s, w)`` (DDIM from ``x_T = w`` for a DDPM policy, Euler from ``x_0 = w`` for a
flow). To SAC the base policy is part of the environment: its action space is the latent box
``[-action_magnitude, action_magnitude]^A``. This file implements the paper's DSRL-SAC
variant (the released code's ``algorithm: dsrl_sac``, ``train_dsrl.py`` with
``DiffusionPolicyEnvWrapper`` in ``env_utils.py``, github.com/ajwagen/dsrl):

1. Warm-up: for ``learning_starts`` env steps the latent is ``clip(N(0, I), +-magnitude)``,
   i.e. the base policy as trained (the released ``collect_rollouts`` before learning).
2. Each iteration steps ``num_envs`` envs ``num_steps`` times with ``w = magnitude *
   tanh(u)``, ``u ~ N(mu(s), sigma(s))`` (the SAC actor), storing ``w / magnitude`` (the unit
   box, as SB3's ``scale_action``) in the replay buffer, then takes ``utd_ratio`` gradient
   steps per env step collected: soft Bellman backup on twin critics with the min over the
   pair, the reparameterised actor loss and the learned temperature (target entropy
   ``target_entropy_scale * A``; the released configs set ``target_ent: 0.0``).
3. The base's weights come through ``data`` and never reach an optimiser; only the latent
   actor, its critics and the temperature learn (``tests/test_diffusion_online.py`` checks
   that the base is bit-identical after training).

Defaults are the released gym configs (``cfg/gym/dsrl_hopper.yaml``): Adam 3e-4 for all
three, batch 256, tau 0.005, gamma 0.99, ``action_magnitude`` 1.5, 4 envs with 20 gradient
steps every 2 vector steps (``utd_ratio`` 2.5 per env step), 2001 x 4 warm-up steps, 3
layers of 128 with LayerNorm and tanh (the README suggests up to 2048 wide).

Where this differs: DSRL-NA (the noise-aliased variant that learns Q on env actions and
distils it into the latent critic) is not implemented; the released gym runs act in
chunks of 4 actions (the latent is the whole chunk's noise), here the base policy emits one
action per step; the actor has no LayerNorm (``rlzoo.nets.TanhGaussianActor``; the
critics have it) and its log std is clipped to [-5, 2] (SB3: [-20, 2]); actor and critics see
the base's normalised state (``obs_scale``). Without ``data`` the base is a randomly
initialised denoiser kept in the state (for tests); any real use passes a trained base.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlzoo.core import diffusion_base
from rlzoo.core.agent import Agent
from rlzoo.core.agent import make_train as make_train_from_agent
from rlzoo.core.evaluation import EVAL_METRICS, episode_limit, evaluate_policy
from rlzoo.core.hparams import static, traced
from rlzoo.core.off_policy import (
    box_action_space,
    check_replay_config,
    collect_and_learn,
    replay_example,
    soft_learn_step,
)
from rlzoo.data.replay import ReplayBuffer
from rlzoo.envs import ClipAction, Environment, EpisodeStatistics, VectorEnv
from rlzoo.nets import ActionBounds, QNetwork, TanhGaussianActor, sample_tanh_gaussian
from rlzoo.nets.diffusion import DiffusionPolicy, policy_from_config


@struct.dataclass
class Config:
    """DSRL-SAC hyperparameters; defaults are the released ``cfg/gym/dsrl_hopper.yaml``."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size of actor, critics and temperature.")
    gamma: float = traced(0.99, "Discount factor.")
    tau: float = traced(0.005, "Polyak rate of the target critics per gradient step.")
    init_alpha: float = traced(1.0, "Initial temperature (entropy weight; SB3's 'auto').")
    target_entropy_scale: float = traced(0.0, "Target entropy per latent dimension (DSRL: 0).")
    reward_scale: float = traced(1.0, "Multiplies env rewards before learning.")
    action_magnitude: float = traced(1.5, "Bound of the latent noise box, +-this per dimension.")
    # Static: compiled into the program.
    total_steps: int = static(1_000_000, "Budget per seed, in env steps.")
    num_envs: int = static(4, "Parallel envs per seed.")
    num_steps: int = static(2, "Env steps per env and iteration (SB3's train_freq).")
    utd_ratio: float = static(2.5, "Gradient steps per env step collected (20 per 4 x 2).")
    batch_size: int = static(256, "Transitions per gradient step.")
    buffer_size: int = static(1_000_000, "Replay capacity in transitions (all envs).")
    learning_starts: int = static(8_004, "Env steps of the base policy (N(0,1) noise) first.")
    n_step: int = static(1, "Steps of reward summed before bootstrapping (n-step returns).")
    replay_backend: str = static("flashbax", "'flashbax' or 'ring' (rlzoo.data.replay).")
    latent_hidden_sizes: tuple[int, ...] = static((128, 128, 128), "Actor and critic layers.")
    latent_activation: str = static("tanh", "Activation of the latent actor and critics.")
    critic_layer_norm: bool = static(True, "LayerNorm after each critic layer (DSRL's nets).")
    # The base policy (diffusion_bc's fields; --base sets them from the base run).
    policy: str = static("ddpm", "Base policy: 'ddpm' (sampled by DDIM) or 'flow' (Euler).")
    num_denoising_steps: int = static(5, "Denoising (or Euler) steps of the base policy.")
    noise_schedule: str = static("vp", "Base DDPM noise schedule: 'vp', 'linear' or 'cosine'.")
    hidden_size: int = static(256, "Width of the base denoiser's residual MLP.")
    num_blocks: int = static(3, "Residual blocks of the base denoiser.")
    time_dim: int = static(16, "Width of the base denoiser's time embedding.")
    layer_norm: bool = static(False, "LayerNorm in the base denoiser's blocks.")
    activation: str = static("silu", "Activation of the base denoiser.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {}

STEP_UNIT = "env_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = "pytree"  # the frozen base: {"params", "obs_scale"}; None: a random base
METRICS = {
    "loss/critic": "mean squared soft Bellman error, summed over the two critics",
    "loss/actor": "alpha * log pi - min Q over latent actions, mean over the batch",
    "loss/temperature": "-log alpha * (log pi + target entropy), mean over the batch",
    "policy/entropy": "minus the mean log-density of the latent actions (unit box)",
    "policy/alpha": "the temperature",
    "value/q": "mean Q of the replayed latent actions (first critic)",
    "rollout/episode_return": "return of the latest completed episode, mean over envs",
    "rollout/episode_length": "length of the latest completed episode, mean over envs",
    "rollout/episodes_completed": "episodes that ended during the iteration's collection",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


def from_base(base_agent: str, base_config: Any, base_state: Any) -> tuple[dict, dict]:
    """``--base``: a ``diffusion_bc`` run's EMA policy becomes the frozen base."""
    return diffusion_base.base_from_diffusion_bc("dsrl", base_agent, base_config, base_state)


@struct.dataclass
class TrainState:
    actor_params: Any  # the latent (noise) policy
    critic_params: Any
    target_critic_params: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    replay: Any
    env_state: Any
    obs: jax.Array
    base: Any  # a random base when no data is given, else None (the base is data)
    key: jax.Array
    iteration: jax.Array
    config: Config

    @property
    def params(self) -> Any:
        return self.actor_params


# What a gradient step changes (masked while warming up). Never the base.
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
    policy: DiffusionPolicy = struct.field(pytree_node=False)
    action_dim: int = struct.field(pytree_node=False)


def check_config(config: Config) -> None:
    check_replay_config(
        config, ("num_envs", "num_steps", "batch_size", "n_step", "num_eval_episodes")
    )
    if config.action_magnitude <= 0:
        raise ValueError(f"action_magnitude must be > 0, got {config.action_magnitude}")


def base_action(
    nets: Networks, bounds: ActionBounds, base: dict, obs: jax.Array, latent: jax.Array
) -> jax.Array:
    """The env action: the base policy's deterministic sample from initial noise ``latent``."""
    unit = nets.policy.sample(base["params"], base["obs_scale"](obs), latent, deterministic=True)
    return bounds.to_env(unit)


# ----------------------------------------------------------------------------- algorithm


def learn_step(
    nets: Networks, buffer: ReplayBuffer, scale: Any, state: TrainState, key: jax.Array
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One SAC gradient step over latent actions, on the base's normalised states."""

    def normalise(batch):
        obs, next_obs = batch["observations"], batch["next_observations"]
        return dict(batch, observations=scale(obs), next_observations=scale(next_obs))

    return soft_learn_step(nets, buffer, nets.action_dim, state, key, normalise)


def update(
    nets: Networks,
    env: Environment,
    env_params: Any,
    buffer: ReplayBuffer,
    bounds: ActionBounds,
    state: TrainState,
    data: Any = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One iteration: collect latent actions through the base policy, then learn."""
    base = diffusion_base.base_of(state, data)
    scale = base["obs_scale"]
    magnitude = state.config.action_magnitude

    # COLLECT: latent w = magnitude * unit action; the env plays the base's sample from w.
    def explore(obs, key):
        mean, log_std = nets.actor.apply(state.actor_params, scale(obs))
        return sample_tanh_gaussian(key, mean, log_std)[0]

    def warmup(obs, key):  # the base policy as trained: N(0, I), clipped to the latent box
        noise = jax.random.normal(key, (*obs.shape[:-1], nets.action_dim))
        return jnp.clip(noise, -magnitude, magnitude) / magnitude

    def to_env(obs, unit_latent):
        return base_action(nets, bounds, base, obs, magnitude * unit_latent)

    return collect_and_learn(
        env,
        env_params,
        buffer,
        bounds,
        explore,
        lambda s, k: learn_step(nets, buffer, scale, s, k),
        LEARNED,
        state,
        warmup=warmup,
        to_env=to_env,
    )


def act(
    nets: Networks,
    bounds: ActionBounds,
    params: tuple[Any, jax.Array, dict],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """``params = (actor params, action_magnitude, base)``: the base's action from the
    latent ``magnitude * tanh(mean)`` (deterministic) or a sampled latent."""
    actor_params, magnitude, base = params
    mean, log_std = nets.actor.apply(actor_params, base["obs_scale"](obs))
    unit = jnp.tanh(mean) if deterministic else sample_tanh_gaussian(key, mean, log_std)[0]
    return base_action(nets, bounds, base, obs, magnitude * unit)


def acting_params(state: TrainState, data: Any = None) -> tuple[Any, jax.Array, dict]:
    """What ``act`` needs: the latent actor, the latent bound and the base (from data)."""
    return state.actor_params, state.config.action_magnitude, diffusion_base.base_of(state, data)


def policy_params(state: TrainState) -> tuple[Any, jax.Array, dict]:
    """``acting_params`` of a run without data (its random base lives in the state); with a
    base given as data, use ``acting_params(state, data)``."""
    return acting_params(state)


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """DSRL's ``init``, ``update``, ``evaluate`` and ``act`` for ``env`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, "DSRL")
    sizes, activation = config.latent_hidden_sizes, config.latent_activation
    nets = Networks(
        actor=TanhGaussianActor(action_dim, sizes, activation),
        critic=QNetwork(sizes, activation, layer_norm=config.critic_layer_norm),
        policy=policy_from_config(config, action_dim),
        action_dim=action_dim,
    )
    train_env = VectorEnv(EpisodeStatistics(env), config.num_envs)
    buffer = ReplayBuffer(config.buffer_size, config.num_envs, config.replay_backend)
    obs_shape = tuple(env.observation_space(env_params).shape)
    eval_env, max_steps = ClipAction(env), episode_limit(env, env_params)
    bound_act = functools.partial(act, nets, bounds)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        diffusion_base.check_base(nets.policy, data, obs_shape)
        key, actor_key, critic_key, env_key, base_key = jax.random.split(key, 5)
        obs, env_state = train_env.reset(env_key, env_params)
        example = replay_example(obs_shape, action_dim)
        actor_params = nets.actor.init(actor_key, example["observations"])
        critic_params = nets.critic.init(critic_key, example["observations"], example["actions"])
        log_alpha = jnp.log(jnp.asarray(cfg.init_alpha, jnp.float32))
        tx = optax.adam(cfg.learning_rate)
        base = None  # the base is data; else a random one, kept in the state
        if data is None:
            base = diffusion_base.random_base(nets.policy, base_key, obs_shape)
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
            base=base,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    def evaluate(state: TrainState, key: jax.Array, data: Any = None) -> dict[str, jax.Array]:
        params = acting_params(state, data)
        return evaluate_policy(
            bound_act, params, key, eval_env, env_params, config.num_eval_episodes, max_steps
        )

    steps_per_iteration = config.num_envs * config.num_steps
    return Agent(
        init=init,
        update=functools.partial(update, nets, train_env, env_params, buffer, bounds),
        evaluate=evaluate,
        act=bound_act,
        policy_params=policy_params,
        num_iterations=config.total_steps // steps_per_iteration,
        steps_per_iteration=steps_per_iteration,
        step_unit=STEP_UNIT,
        score_key=SCORE_KEY,
        metrics=METRICS,
        data_kind=DATA_KIND,
    )


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config, data=None or a base) -> (final_state, metrics)``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
