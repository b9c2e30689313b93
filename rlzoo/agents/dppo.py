"""DPPO: PPO over the denoising chain of a diffusion policy (Ren et al., 2024).

    data = diffusion_base.base_data(bc_state.obs_scale, bc_state.ema_params)  # or --base
    train = jax.jit(jax.vmap(dppo.make_train(cfg, env, params), in_axes=(0, None, None)))
    state, metrics = train(keys, cfg, data)

"Diffusion Policy Policy Optimization" fine-tunes a pretrained DDPM policy with PPO by
treating its denoising chain as an inner MDP: each of the last ``K = ft_denoising_steps``
denoising steps ``x_k -> x_{k-1} ~ N(mu_theta(x_k, s, k), sigma_k^2)`` is an action with a
Gaussian log-probability (``rlzoo.nets.diffusion.ddpm_step_log_prob``); the first ``T - K``
steps are the frozen base's. The rules, as in the released code (github.com/irom-princeton/
dppo: ``model/diffusion/diffusion_ppo.py``, ``diffusion_vpg.py``,
``agent/finetune/train_ppo_diffusion_agent.py``, ``cfg/gym/finetune/hopper-v2/
ft_ppo_diffusion_mlp.yaml``):

1. Rollout: ``num_envs x num_steps`` env steps; each action is a DDPM sample from
   ``x_T ~ N(0, I)`` whose step noise is clipped to ``+-noise_clip`` (3) and whose std is
   floored at ``min_sampling_std`` (0.1, every step: exploration); the env plays
   ``clip(x_0, -1, 1)``, the chain ``x_K .. x_0`` is stored.
2. Advantages: GAE on env rewards with a value network of the state (``rlzoo.core.
   advantages.gae``), rewards divided by the running std of the return (DPPO's
   ``reward_scale_running``, here ``rlzoo.envs.NormalizeReward``). Each of the K steps of a
   chain gets its env step's advantage, standardised over the minibatch and multiplied by
   the denoising discount ``gamma_denoising ** k`` (k = 0 the last, noiseless-most step).
3. Loss on minibatches of (env step, denoising step) pairs: each step's log-probability is
   the Gaussian log-density with std floored at ``min_logprob_std`` (0.1), clamped to
   [-5, 2] per dimension and averaged over dimensions; the clipped surrogate with a clip
   range that grows exponentially from ``clip_eps_base`` at the first fine-tuned step to
   ``clip_eps`` at the last (rate ``clip_eps_rate``); plus ``vf_coef`` times the value loss.
   Actor (Adam ``actor_lr``) and critic (Adam ``critic_lr``) step together;
   ``num_epochs`` passes, stopped early once the approximate KL exceeds ``target_kl``.

Defaults are the gym hopper fine-tuning config: T = 20, K = 10, ``gamma_denoising`` 0.99,
clip 0.01 (base 0.01, rate 3), actor 1e-4, critic 1e-3, 40 envs x 500 steps, 5 epochs over
4 minibatches (batch 50000 of 200000 pairs), gamma 0.99, lambda 0.95, vf_coef 0.5,
target_kl 1, the cosine schedule, a 512-wide ReLU denoiser and a 256 x 3 critic.

Where this differs: truncated episodes bootstrap from their final state (the released gym
runs bootstrap from the reset state's value); one action per env step (the released gym runs
play chunks of 4); the learning rates are constant (the released cosine schedules have
``min_lr`` equal to the rate, i.e. constant after 10 warm-up iterations); the critic is a
plain MLP with SiLU (released: residual with Mish); "deterministic" evaluation is DPPO's
evaluation sampler (the base's own DDPM noise, floored at 1e-3, none on the last step),
which still draws noise; without ``data`` the base is a randomly initialised denoiser kept
in the state (for tests); any real use passes a trained base.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlzoo.core import diffusion_base, hparams, losses
from rlzoo.core.advantages import gae
from rlzoo.core.agent import Agent
from rlzoo.core.agent import make_train as make_train_from_agent
from rlzoo.core.batching import shuffled_minibatches
from rlzoo.core.evaluation import EVAL_METRICS, episode_limit, evaluate_policy
from rlzoo.core.hparams import static, traced
from rlzoo.core.off_policy import apply_gradients, box_action_space
from rlzoo.core.reductions import standardize
from rlzoo.envs import ClipAction, Environment, EpisodeStatistics, NormalizeReward, VectorEnv
from rlzoo.nets import ActionBounds, ValueNetwork
from rlzoo.nets.diffusion import (
    DiffusionPolicy,
    ddpm_chain_sample,
    ddpm_step_log_prob,
    policy_from_config,
)

# Per-dimension log-probabilities are clamped to this range (the released loss's clamp).
LOG_PROB_RANGE = (-5.0, 2.0)


@struct.dataclass
class Config:
    """DPPO hyperparameters; defaults are the released gym hopper fine-tuning config."""

    # Traced: may be batched for a sweep.
    actor_lr: float = traced(1e-4, "Adam step size of the fine-tuned denoiser.")
    critic_lr: float = traced(1e-3, "Adam step size of the value network.")
    gamma: float = traced(0.99, "Env discount factor.")
    gae_lambda: float = traced(0.95, "GAE lambda over env steps.")
    gamma_denoising: float = traced(0.99, "Denoising discount: step k's advantage x this**k.")
    clip_eps: float = traced(0.01, "Ratio clip range at the last denoising step.")
    clip_eps_base: float = traced(0.01, "Ratio clip range at the first fine-tuned step.")
    clip_eps_rate: float = traced(3.0, "Exponential rate from clip_eps_base to clip_eps.")
    vf_coef: float = traced(0.5, "Weight of the value loss.")
    min_sampling_std: float = traced(0.1, "Floor of every step's std while exploring.")
    min_logprob_std: float = traced(0.1, "Floor of the std in the step log-probabilities.")
    noise_clip: float = traced(3.0, "Each step's standard-normal draw is clipped to +-this.")
    target_kl: float = traced(1.0, "Stop the epochs once the approximate KL exceeds this.")
    max_grad_norm: float = traced(1e9, "Denoiser gradient-norm clip (1e9: none, as released).")
    reward_scale: float = traced(1.0, "Multiplies env rewards (after running scaling).")
    # Static: compiled into the program.
    total_steps: int = static(20_000_000, "Budget per seed, in env steps.")
    num_envs: int = static(40, "Parallel envs per seed.")
    num_steps: int = static(500, "Rollout length per env and iteration.")
    num_epochs: int = static(5, "Passes over each rollout's (env step, denoising step) pairs.")
    num_minibatches: int = static(4, "Minibatches per epoch; divides envs x steps x K.")
    ft_denoising_steps: int = static(10, "K: the last K denoising steps are fine-tuned.")
    normalize_rewards: bool = static(True, "Divide rewards by the running std of the return.")
    normalize_advantages: bool = static(True, "Standardise advantages per minibatch.")
    value_hidden_sizes: tuple[int, ...] = static((256, 256, 256), "Value network layers.")
    value_activation: str = static("silu", "Activation of the value network.")
    # The base policy (diffusion_bc's fields; --base sets them from the base run).
    policy: str = static("ddpm", "Base policy kind; DPPO needs 'ddpm'.")
    num_denoising_steps: int = static(20, "T: denoising steps of the base policy.")
    noise_schedule: str = static("cosine", "DDPM noise schedule: 'vp', 'linear' or 'cosine'.")
    hidden_size: int = static(512, "Width of the denoiser's residual MLP.")
    num_blocks: int = static(1, "Residual blocks of the denoiser.")
    time_dim: int = static(16, "Width of the denoiser's time embedding.")
    layer_norm: bool = static(False, "LayerNorm in the denoiser's blocks.")
    activation: str = static("relu", "Activation of the denoiser.")
    num_eval_episodes: int = static(16, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {}

STEP_UNIT = "env_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = "pytree"  # the frozen base: {"params", "obs_scale"}; None: a random base
METRICS = {
    "loss/total": "policy + vf_coef * value loss, mean over the SGD steps taken",
    "loss/policy": "clipped surrogate over denoising steps",
    "loss/value": "0.5 * squared value error",
    "policy/approx_kl": "KL(old || new) estimate per denoising step, (r - 1) - log r",
    "policy/clip_fraction": "share of denoising steps whose ratio left its clip range",
    "policy/log_prob": "mean per-dimension log-probability of the denoising steps",
    "policy/epochs_stopped": "share of SGD steps skipped after approx_kl passed target_kl",
    "value/explained_variance": "1 - Var(returns - values) / Var(returns) on the rollout",
    "rollout/episode_return": "return of the latest completed episode, mean over envs",
    "rollout/episode_length": "length of the latest completed episode, mean over envs",
    "rollout/episodes_completed": "episodes that ended during the rollout",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


def from_base(base_agent: str, base_config: Any, base_state: Any) -> tuple[dict, dict]:
    """``--base``: a ``diffusion_bc`` run's EMA policy is the frozen base and the start of
    the fine-tuned steps; K is capped at the base's chain length."""
    data, overrides = diffusion_base.base_from_diffusion_bc(
        "dppo", base_agent, base_config, base_state
    )
    if overrides["policy"] != "ddpm":
        raise ValueError(
            f"dppo fine-tunes a DDPM policy, but the --base run is {overrides['policy']!r}."
        )
    steps = min(Config().ft_denoising_steps, overrides["num_denoising_steps"])
    return data, dict(overrides, ft_denoising_steps=steps)


@struct.dataclass
class TrainState:
    params: Any  # the fine-tuned denoiser (its last K steps); starts as the base
    critic_params: Any
    actor_opt: Any
    critic_opt: Any
    env_state: Any
    obs: jax.Array
    base: Any  # a random base when no data is given, else None (the base is data)
    key: jax.Array
    iteration: jax.Array
    config: Config


@struct.dataclass
class PairBatch:
    """One (env step, denoising step) pair per row: what the loss reads."""

    obs: jax.Array  # normalised state
    x: jax.Array  # the step's input x_k
    x_next: jax.Array  # its sampled output x_{k-1}
    index: jax.Array  # k: the schedule index of the step (0 = last)
    old_log_prob: jax.Array
    old_value: jax.Array
    advantages: jax.Array
    returns: jax.Array


@struct.dataclass
class Networks:
    critic: ValueNetwork
    policy: DiffusionPolicy = struct.field(pytree_node=False)


def check_config(config: Config) -> None:
    """Refuse configs whose values or shapes do not fit, naming the numbers that disagree."""
    hparams.check_positive(config, "actor_lr", "critic_lr", "clip_eps", "clip_eps_base")
    hparams.check_positive(config, "min_logprob_std", "noise_clip", "max_grad_norm")
    hparams.check_within(config, "gamma", 0.0, 1.0, low_open=True)
    hparams.check_within(config, "gae_lambda", 0.0, 1.0)
    hparams.check_within(config, "gamma_denoising", 0.0, 1.0, low_open=True)
    if config.policy != "ddpm":
        raise ValueError(
            f"DPPO fine-tunes a DDPM policy (the chain's Gaussians), got {config.policy!r}"
        )
    for name in ("num_envs", "num_steps", "num_epochs", "num_minibatches", "num_eval_episodes"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if not 1 <= config.ft_denoising_steps <= config.num_denoising_steps:
        raise ValueError(
            f"ft_denoising_steps = {config.ft_denoising_steps} must be in 1..num_denoising_steps "
            f"= {config.num_denoising_steps}."
        )
    pairs = config.num_envs * config.num_steps * config.ft_denoising_steps
    if pairs % config.num_minibatches:
        raise ValueError(
            f"num_envs * num_steps * ft_denoising_steps = {pairs} pairs do not split into "
            f"num_minibatches = {config.num_minibatches}."
        )
    if config.total_steps < config.num_envs * config.num_steps:
        raise ValueError(
            f"total_steps = {config.total_steps} is less than one iteration's "
            f"num_envs * num_steps = {config.num_envs * config.num_steps}."
        )


def actor_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.actor_lr))


def clip_range(cfg: Config, index: jax.Array) -> jax.Array:
    """DPPO's per-step clip range: ``base + (clip - base) (e^{r u} - 1) / (e^r - 1)`` with
    ``u`` from 0 at the first fine-tuned step (``k = K - 1``) to 1 at the last (``k = 0``)."""
    num_tuned = cfg.ft_denoising_steps
    if num_tuned == 1:
        return jnp.full(index.shape, cfg.clip_eps)
    u = (num_tuned - 1 - index) / (num_tuned - 1)
    rate = cfg.clip_eps_rate
    return cfg.clip_eps_base + (cfg.clip_eps - cfg.clip_eps_base) * jnp.expm1(rate * u) / jnp.expm1(
        rate
    )


def step_log_prob(policy: DiffusionPolicy, params: Any, cfg: Config, batch: PairBatch) -> jax.Array:
    """Each pair's log-probability: clamped per dimension, averaged over dimensions."""
    per_dim = ddpm_step_log_prob(
        policy.denoiser(params),
        policy.schedule,
        batch.obs,
        batch.x,
        batch.x_next,
        batch.index,
        cfg.min_logprob_std,
    )
    return jnp.clip(per_dim, *LOG_PROB_RANGE).mean(axis=-1)


# ----------------------------------------------------------------------------- algorithm


def sample_chain(
    policy: DiffusionPolicy,
    params: Any,
    base: dict,
    cfg: Config,
    obs: jax.Array,
    key: jax.Array,
    exploring: bool,
) -> tuple[jax.Array, jax.Array]:
    """``(x_0, chain)`` for raw states ``obs``: frozen base steps, then the tuned ones."""
    noise_key, chain_key = jax.random.split(key)
    noise = jax.random.normal(noise_key, (*obs.shape[:-1], policy.action_dim))
    return ddpm_chain_sample(
        policy.denoiser(base["params"]),
        policy.denoiser(params),
        policy.schedule,
        chain_key,
        base["obs_scale"](obs),
        noise,
        cfg.ft_denoising_steps,
        cfg.min_sampling_std,
        cfg.noise_clip,
        exploring,
    )


def rollout(
    nets: Networks,
    env: Environment,
    env_params: Any,
    bounds: ActionBounds,
    base: dict,
    state: TrainState,
) -> tuple[TrainState, dict[str, jax.Array], dict[str, jax.Array]]:
    """``num_steps`` steps of every env with the exploring chain; chains kept for learning."""
    cfg = state.config

    def env_step(carry, _):
        env_state, obs, key = carry
        key, act_key, step_key = jax.random.split(key, 3)
        action, chain = sample_chain(nets.policy, state.params, base, cfg, obs, act_key, True)
        next_obs, env_state, reward, terminated, truncated, info = env.step(
            step_key, env_state, bounds.to_env(jnp.clip(action, -1.0, 1.0)), env_params
        )
        step = {
            "obs": obs,
            "chain": chain,
            "reward": reward * cfg.reward_scale,
            "terminated": terminated,
            "truncated": truncated,
            "final_obs": info["final_observation"],
        }
        episode = (info["episode_return"], info["episode_length"], info["episode_done"])
        return (env_state, next_obs, key), (step, episode)

    (env_state, obs, key), (trajectory, episodes) = jax.lax.scan(
        env_step, (state.env_state, state.obs, state.key), None, cfg.num_steps
    )
    episode_return, episode_length, episode_done = episodes
    stats = {
        "rollout/episode_return": episode_return[-1].mean(),
        "rollout/episode_length": episode_length[-1].astype(jnp.float32).mean(),
        "rollout/episodes_completed": episode_done.sum(),
    }
    return state.replace(env_state=env_state, obs=obs, key=key), trajectory, stats


def compute_loss(
    params: tuple[Any, Any], nets: Networks, cfg: Config, batch: PairBatch
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """DPPO's loss on one minibatch of pairs: clipped surrogate per denoising step + value."""
    actor_params, critic_params = params
    log_prob = step_log_prob(nets.policy, actor_params, cfg, batch)
    log_ratio = log_prob - batch.old_log_prob
    advantages = batch.advantages
    if cfg.normalize_advantages:
        advantages = standardize(advantages)
    advantages = advantages * cfg.gamma_denoising**batch.index
    policy_loss, clipped = losses.clipped_surrogate(
        log_ratio, advantages, clip_range(cfg, batch.index)
    )
    values = nets.critic.apply(critic_params, batch.obs)
    value_loss = losses.value_loss(values, batch.old_value, batch.returns).mean()
    total = policy_loss.mean() + cfg.vf_coef * value_loss
    return total, {
        "loss/total": total,
        "loss/policy": policy_loss.mean(),
        "loss/value": value_loss,
        "policy/approx_kl": losses.approx_kl(log_ratio),
        "policy/clip_fraction": clipped.mean(),
        "policy/log_prob": log_prob.mean(),
    }


def pair_batch(
    nets: Networks, base: dict, state: TrainState, trajectory: dict[str, jax.Array]
) -> tuple[PairBatch, jax.Array, jax.Array]:
    """GAE over the rollout, then one row per (env step, denoising step) pair."""
    cfg = state.config
    num_tuned = cfg.ft_denoising_steps
    scale = base["obs_scale"]
    obs = scale(trajectory["obs"])
    values = nets.critic.apply(state.critic_params, obs)
    next_values = nets.critic.apply(state.critic_params, scale(trajectory["final_obs"]))
    advantages, returns = gae(
        trajectory["reward"],
        values,
        next_values,
        trajectory["terminated"],
        trajectory["truncated"],
        cfg.gamma,
        cfg.gae_lambda,
    )
    size = cfg.num_steps * cfg.num_envs

    def per_pair(x):  # [S, E, ...] -> [S * E * K, ...], the env step's value K times
        x = x.reshape(size, *x.shape[2:])
        return jnp.repeat(x, num_tuned, axis=0)

    chain = trajectory["chain"].reshape(size, num_tuned + 1, -1)
    index = jnp.tile(jnp.arange(num_tuned - 1, -1, -1), size)
    batch = PairBatch(
        obs=per_pair(obs),
        x=chain[:, :-1].reshape(size * num_tuned, -1),
        x_next=chain[:, 1:].reshape(size * num_tuned, -1),
        index=index,
        old_log_prob=jnp.zeros(size * num_tuned),
        old_value=per_pair(values),
        advantages=per_pair(advantages),
        returns=per_pair(returns),
    )
    batch = batch.replace(old_log_prob=step_log_prob(nets.policy, state.params, cfg, batch))
    return batch, values, returns


def update(
    nets: Networks,
    env: Environment,
    env_params: Any,
    bounds: ActionBounds,
    state: TrainState,
    data: Any = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One DPPO iteration: collect chains, GAE, then epochs of minibatch SGD over pairs."""
    cfg = state.config
    base = diffusion_base.base_of(state, data)
    # COLLECT A ROLLOUT OF DENOISING CHAINS
    state, trajectory, episode_stats = rollout(nets, env, env_params, bounds, base, state)
    # ADVANTAGES, SHARED BY EACH ENV STEP'S DENOISING STEPS
    batch, values, returns = pair_batch(nets, base, state, trajectory)

    # EPOCHS OF MINIBATCH SGD, STOPPED ONCE THE KL PASSES target_kl
    actor_tx = actor_optimizer(cfg)
    critic_tx = optax.adam(cfg.critic_lr)

    def sgd_step(carry, minibatch):
        params, critic_params, actor_opt, critic_opt, stopped = carry
        (actor_grads, critic_grads), metrics = jax.grad(compute_loss, has_aux=True)(
            (params, critic_params), nets, cfg, minibatch
        )
        new = (
            *apply_gradients(actor_tx, actor_grads, params, actor_opt),
            *apply_gradients(critic_tx, critic_grads, critic_params, critic_opt),
        )
        old = (params, actor_opt, critic_params, critic_opt)
        kept = jax.tree.map(lambda n, o: jnp.where(stopped, o, n), new, old)
        params, actor_opt, critic_params, critic_opt = kept
        metrics["policy/epochs_stopped"] = stopped.astype(jnp.float32)
        stopped = stopped | (metrics["policy/approx_kl"] > cfg.target_kl)
        return (params, critic_params, actor_opt, critic_opt, stopped), metrics

    def epoch(carry, _):
        inner, key = carry
        key, perm_key = jax.random.split(key)
        minibatches = shuffled_minibatches(perm_key, batch, cfg.num_minibatches)
        inner, metrics = jax.lax.scan(sgd_step, inner, minibatches)
        return (inner, key), metrics

    stopped = jnp.zeros((), bool)
    start = (state.params, state.critic_params, state.actor_opt, state.critic_opt, stopped)
    (inner, key), sgd_metrics = jax.lax.scan(epoch, (start, state.key), None, cfg.num_epochs)
    params, critic_params, actor_opt, critic_opt, _ = inner

    # METRICS: over the SGD steps taken (all of them when none was stopped).
    taken = 1.0 - sgd_metrics["policy/epochs_stopped"]
    metrics = {
        name: (value * taken).sum() / jnp.maximum(taken.sum(), 1.0)
        for name, value in sgd_metrics.items()
        if name != "policy/epochs_stopped"
    }
    metrics["policy/epochs_stopped"] = 1.0 - taken.mean()
    metrics.update(episode_stats)
    metrics["value/explained_variance"] = 1.0 - jnp.var(returns - values) / (
        jnp.var(returns) + 1e-8
    )
    state = state.replace(
        params=params,
        critic_params=critic_params,
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        key=key,
        iteration=state.iteration + 1,
    )
    return state, metrics


def act(
    nets: Networks,
    bounds: ActionBounds,
    params: tuple[Any, dict, Config],
    obs: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """``params = (tuned denoiser, base, config)``; deterministic: DPPO's evaluation sampler,
    otherwise the exploring one it trains with."""
    tuned, base, cfg = params
    action, _ = sample_chain(nets.policy, tuned, base, cfg, obs, key, not deterministic)
    return bounds.to_env(jnp.clip(action, -1.0, 1.0))


def acting_params(state: TrainState, data: Any = None) -> tuple[Any, dict, Config]:
    """What ``act`` needs: the tuned denoiser, the base (from data) and the config."""
    return state.params, diffusion_base.base_of(state, data), state.config


def policy_params(state: TrainState) -> tuple[Any, dict, Config]:
    """``acting_params`` of a run without data (its random base lives in the state); with a
    base given as data, use ``acting_params(state, data)``."""
    return acting_params(state)


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """DPPO's ``init``, ``update``, ``evaluate`` and ``act`` for ``env`` (``rlzoo.core.agent``)."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    action_dim, bounds = box_action_space(env, env_params, "DPPO")
    nets = Networks(
        critic=ValueNetwork(config.value_hidden_sizes, config.value_activation),
        policy=policy_from_config(config, action_dim),
    )
    train_env = VectorEnv(EpisodeStatistics(env), config.num_envs)
    if config.normalize_rewards:
        train_env = NormalizeReward(train_env)  # its discount is set per config in init
    obs_shape = tuple(env.observation_space(env_params).shape)
    eval_env, max_steps = ClipAction(env), episode_limit(env, env_params)
    bound_act = functools.partial(act, nets, bounds)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        diffusion_base.check_base(nets.policy, data, obs_shape)
        key, critic_key, env_key, base_key = jax.random.split(key, 4)
        obs, env_state = train_env.reset(env_key, env_params)
        if cfg.normalize_rewards:  # the return is discounted with this config's gamma
            env_state = env_state.replace(gamma=jnp.asarray(cfg.gamma, jnp.float32))
        base = None  # the base is data; else a random one, kept in the state
        if data is None:
            base = diffusion_base.random_base(nets.policy, base_key, obs_shape)
        params = (data if base is None else base)["params"]
        critic_params = nets.critic.init(critic_key, jnp.zeros(obs_shape, jnp.float32))
        return TrainState(
            params=params,
            critic_params=critic_params,
            actor_opt=actor_optimizer(cfg).init(params),
            critic_opt=optax.adam(cfg.critic_lr).init(critic_params),
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
        update=functools.partial(update, nets, train_env, env_params, bounds),
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
