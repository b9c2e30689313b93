"""GRPO on control: group-relative advantages from episodic returns, no critic.

    env, params = envs.make("gymnax/CartPole-v1")
    config = grpo_control.Config(num_groups=8, group_size=8)
    train = jax.jit(jax.vmap(grpo_control.make_train(config, env, params)))
    state, metrics = train(jax.random.split(jax.random.key(0), 8))

The GRPO family (``rlzoo.agents.grpo`` on tokens) applied to episodes instead of
completions. One iteration:

1. **Groups.** ``num_groups`` start states, each shared by ``group_size`` (G) members:
   ``envs.GroupReset`` resets G copies of the env from one key, so the members start from
   the same state (the same prompt); their actions and the env's own randomness differ.
2. **Roll out.** Every member plays with the behaviour policy (the current one, or the one
   from ``staleness`` updates ago) for exactly ``max_episode_steps`` steps, a fixed-length
   ``lax.scan`` (fixed shapes under ``jit`` and ``vmap``). Only each member's *first*
   episode counts: the step that returns ``terminated`` or ``truncated`` is its last, and
   the steps after it (the env's auto-reset starts another episode, which is not shared by
   the group) are masked out.
3. **Outcome.** The episode's return ``sum_t gamma^t r_t`` (``gamma = 1``: undiscounted)
   times ``reward_scale``. Termination and truncation both end the outcome; an episode
   truncated by the env's time limit, or still running when the rollout's
   ``max_episode_steps`` run out, scores its return so far: there is no critic to
   bootstrap the rest from (for CartPole the time limit's return is the best one).
4. **Advantages.** ``advantage`` (``rlzoo.core.group_advantages``: ``grpo``, ``dr_grpo``
   or ``rloo``) over the G outcomes of each group; every step of a member's episode gets
   its member's advantage.
5. **Update.** ``num_epochs`` x ``num_minibatches`` steps (minibatches of whole episodes;
   later ones are off-policy) of the ``policy_loss`` (``rlzoo.core.objectives``:
   ``ppo_clip``, ``clip_higher``, ``dual_clip``, ``bapo``, ``topr``, ``apa``) on the
   masked-in steps, aggregated by ``loss_aggregation``, plus ``kl_coef`` x KL to the initial
   policy and minus ``ent_coef`` x entropy (``rlzoo.core.group_policy``).

Step unit ``env_steps``: every env step that is *stepped*, masked steps after an episode's
end included, ``num_groups x group_size x max_episode_steps`` per iteration; that is the
compute spent. The steps that belong to first episodes (the experience actually learnt
from) are reported as ``rollout/valid_steps``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlzoo.core import group_advantages as ga
from rlzoo.core import group_policy as gp
from rlzoo.core import hparams
from rlzoo.core import objectives as obj
from rlzoo.core.agent import Agent
from rlzoo.core.agent import make_train as make_train_from_agent
from rlzoo.core.evaluation import (
    DEFAULT_MAX_EPISODE_STEPS,
    EVAL_METRICS,
    episode_evaluator,
    episode_limit,
)
from rlzoo.core.hparams import static, traced
from rlzoo.envs import ClipAction, Environment, GroupReset, VectorEnv
from rlzoo.nets import Policy
from rlzoo.nets.actor_critic import policy_spaces

# bnpo's Beta normaliser assumes outcomes in [0, 1] (success rates); returns are not.
ADVANTAGES = ("grpo", "dr_grpo", "rloo")


@struct.dataclass
class Config:
    """GRPO-on-control hyperparameters (names shared with ``grpo`` and ``ppo``).

    Defaults: 4 groups of 8, 4 epochs x 4 minibatches, lr 3e-3, chosen from 2-seed trials on
    gymnax CartPole-v1 and Pendulum-v1 (2 epochs x 2 left Pendulum near -800 after 1e6
    steps, 4 x 4 reached about -200; experiments/grpo_control.py).
    """

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-3, "Adam step size.")
    max_grad_norm: float = traced(0.5, "Global gradient-norm clip.")
    gamma: float = traced(1.0, "Discount of the outcome sum_t gamma^t r_t (1: undiscounted).")
    reward_scale: float = traced(1.0, "Multiplies the outcome (matters for dr_grpo and rloo).")
    clip_eps: float = traced(0.2, "ppo_clip / dual_clip: ratio within [1 - eps, 1 + eps].")
    clip_eps_low: float = traced(0.2, "clip_higher: lower epsilon (DAPO 0.2).")
    clip_eps_high: float = traced(0.28, "clip_higher: upper epsilon (DAPO 0.28).")
    dual_clip_c: float = traced(3.0, "dual_clip: loss of A < 0 steps capped at -c A.")
    apa_lambda: float = traced(1.0, "apa: target log pi - log pi_init = A / lambda.")
    bapo_c_low_start: float = traced(0.6, "bapo: lower ratio bound at the start of a search.")
    bapo_c_high_start: float = traced(1.2, "bapo: upper ratio bound at the start of a search.")
    bapo_c_low_max: float = traced(0.9, "bapo: the lower bound rises at most to this.")
    bapo_c_high_max: float = traced(3.0, "bapo: the upper bound rises at most to this.")
    bapo_d_low: float = traced(0.02, "bapo: step of the lower bound.")
    bapo_d_high: float = traced(0.05, "bapo: step of the upper bound.")
    bapo_rho0: float = traced(0.4, "bapo: target positive share (authors: pos/neg ratio).")
    kl_coef: float = traced(0.0, "Weight of the KL(pi || initial policy) penalty.")
    ent_coef: float = traced(0.0, "Weight of the entropy bonus.")
    # Static: compiled into the program.
    advantage: str = static("grpo", "grpo, dr_grpo or rloo (rlzoo.core.group_advantages).")
    policy_loss: str = static(
        "ppo_clip", "ppo_clip, clip_higher, dual_clip, bapo, topr or apa (core.objectives)."
    )
    loss_aggregation: str = static(
        "token_mean",
        "token_mean (over every valid step), sequence_mean (per episode, then over "
        "episodes) or sequence_sum (episode sums / max_episode_steps).",
    )
    bapo_ordering: str = static("paper", "bapo bound search: paper (default) or authors.")
    bapo_share: str = static(
        "signed",
        "bapo rho's denominator: signed (|sum of terms|, as the paper writes it) or absolute "
        "(sum of |terms|, a share in [0, 1]).",
    )
    kl_estimator: str = static("k3", "k1 or k3 estimator of the KL to the initial policy.")
    dynamic_sampling: bool = static(False, "DAPO: mask groups whose outcomes are all equal.")
    staleness: int = static(0, "Roll out with the policy from this many updates ago.")
    total_steps: int = static(
        1_000_000, "Budget per seed in env steps, masked steps after an episode's end included."
    )
    num_groups: int = static(4, "Start states per iteration.")
    group_size: int = static(8, "Members per start state (G >= 2).")
    max_episode_steps: int = static(
        0, "Rollout length per member; 0: the env's own time limit. Longer episodes are cut."
    )
    num_epochs: int = static(4, "Passes over each batch of episodes.")
    num_minibatches: int = static(4, "Minibatches per epoch (split over episodes).")
    hidden_sizes: tuple[int, ...] = static((64, 64), "Policy MLP layer sizes.")
    activation: str = static("tanh", "tanh, relu, elu, silu or gelu.")
    log_std_init: float = static(0.0, "Initial log std of Gaussian actions (continuous only).")
    num_eval_episodes: int = static(32, "Episodes per evaluation, per policy mode and seed.")


PRESETS: dict[str, dict[str, Any]] = {}

STEP_UNIT = "env_steps"
SCORE_KEY = "eval/deterministic_return"
DATA_KIND = None  # learns from its own rollouts only
METRICS = {
    "loss/total": "policy loss + kl_coef * KL - ent_coef * entropy, mean over SGD steps",
    "loss/policy": "the policy_loss, aggregated by loss_aggregation",
    "policy/entropy": "mean per-step entropy of the policy on the valid steps",
    "policy/kl_ref": "KL(pi || initial policy) per step (kl_estimator), mean",
    "policy/approx_kl": "KL(behaviour || pi) per step, (r - 1) - log r, mean",
    "policy/clip_low": "lower ratio bound used (bapo: chosen per minibatch; topr 0; apa 0)",
    "policy/clip_high": "upper ratio bound used (topr: 1, the negatives' cap; apa: 0)",
    "policy/clip_frac_low": "share of valid steps with A < 0 whose ratio fell below the bound",
    "policy/clip_frac_high": "share of valid steps with A > 0 whose ratio rose above the bound",
    "policy/rho": "BAPO's positive-contribution share at the bounds used",
    "policy/ratio": "mean importance ratio pi / behaviour over valid steps",
    "policy/grad_norm": "global gradient norm before clipping",
    "rollout/episode_return": "undiscounted return of the members' first episodes, mean",
    "rollout/episode_length": "length of the members' first episodes, mean",
    "rollout/group_return_std": "standard deviation of the return within a group, mean",
    "rollout/effective_groups": "share of groups with signal (not all outcomes equal)",
    "rollout/terminated": "share of first episodes that terminated (not truncated or cut)",
    "rollout/valid_steps": "env steps inside first episodes (the rest are masked out)",
    **EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    return Config(**PRESETS.get(env_id.split("/", 1)[0], {}))


@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    history: Any  # [staleness, ...] earlier params, oldest first (None when staleness = 0)
    reference: Any  # the initial policy: the KL reference and APA's anchor
    key: jax.Array
    iteration: jax.Array
    config: Config


@struct.dataclass
class Trajectory:
    """One rollout, ``[num_groups * group_size, max_episode_steps, ...]``, members adjacent."""

    obs: Any
    action: jax.Array
    log_prob: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array  # terminated | truncated


@struct.dataclass
class Batch:
    """What the loss reads; shuffled into minibatches over episodes."""

    obs: Any
    action: jax.Array
    mask: jax.Array  # [N, T] steps of the first episode (of informative groups)
    advantages: jax.Array  # [N], one per member
    behaviour_log_probs: jax.Array  # [N, T]
    reference_log_probs: jax.Array  # [N, T]


def check_config(config: Config) -> None:
    """Refuse configs that cannot run, naming the numbers that disagree."""
    if config.advantage == "bnpo":
        raise ValueError(
            "advantage='bnpo' normalises success rates in [0, 1] with a Beta density; "
            "episodic returns are not success rates. Use grpo, dr_grpo or rloo."
        )
    gp.check_choices(
        config,
        {
            "advantage": ADVANTAGES,
            "policy_loss": obj.POLICY_LOSSES,
            "loss_aggregation": obj.LOSS_AGGREGATIONS,
            "kl_estimator": obj.KL_ESTIMATORS,
            "bapo_ordering": obj.BAPO_ORDERINGS,
            "bapo_share": obj.BAPO_SHARES,
        },
    )
    hparams.check_positive(config, "learning_rate", "max_grad_norm", "reward_scale")
    hparams.check_within(config, "gamma", 0.0, 1.0, low_open=True)
    hparams.check_layer_sizes(config, "hidden_sizes")
    if config.group_size < 2:
        raise ValueError(
            f"group_size = {config.group_size}: group-relative advantages need G >= 2."
        )
    for name in ("num_groups", "num_epochs", "num_minibatches", "num_eval_episodes"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.staleness < 0 or config.max_episode_steps < 0:
        raise ValueError(
            f"staleness and max_episode_steps must be >= 0, got {config.staleness}, "
            f"{config.max_episode_steps}"
        )
    episodes = config.num_groups * config.group_size
    if episodes % config.num_minibatches:
        raise ValueError(
            f"num_groups x group_size = {episodes} episodes do not split into "
            f"num_minibatches = {config.num_minibatches}."
        )
    obj.check_bapo_settings(gp.bapo_settings(config))


def rollout_length(config: Config, env: Environment, env_params: Any) -> int:
    """``max_episode_steps``, or the env's own time limit when it is 0."""
    if config.max_episode_steps:
        return config.max_episode_steps
    limit = episode_limit(env, env_params)
    if limit == DEFAULT_MAX_EPISODE_STEPS:
        raise ValueError(
            f"{getattr(env, 'id', env)} declares no time limit; set max_episode_steps."
        )
    return limit


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))


# ----------------------------------------------------------------------------- algorithm


def rollout(
    network: Policy, group_env: VectorEnv, env_params: Any, num_steps: int, params, key
) -> Trajectory:
    """Reset ``num_groups`` groups of G members and step each member ``num_steps`` times.

    ``group_env`` is ``VectorEnv(GroupReset(env, G), num_groups)``: observations are
    ``[num_groups, G, ...]``; the result is flattened to ``[num_groups * G, num_steps]``.
    """
    reset_key, key = jax.random.split(key)
    obs, env_state = group_env.reset(reset_key, env_params)

    def env_step(carry, _):
        env_state, obs, key = carry
        key, act_key, step_key = jax.random.split(key, 3)
        action, log_prob = network.apply(params, obs).sample_and_log_prob(seed=act_key)
        next_obs, env_state, reward, terminated, truncated, _ = group_env.step(
            step_key, env_state, action, env_params
        )
        step = Trajectory(obs, action, log_prob, reward, terminated, terminated | truncated)
        return (env_state, next_obs, key), step

    _, steps = jax.lax.scan(env_step, (env_state, obs, key), None, num_steps)

    def members_first(x):  # [T, groups, G, ...] -> [groups * G, T, ...]
        x = jnp.moveaxis(x, 0, 2)
        return x.reshape((x.shape[0] * x.shape[1], *x.shape[2:]))

    return jax.tree.map(members_first, steps)


def learning_batch(
    network: Policy, cfg: Config, trajectory: Trajectory, reference: Any
) -> tuple[Batch, dict[str, jax.Array]]:
    """First-episode masks, outcomes, group-relative advantages and the loss's batch."""
    num_groups, group_size = cfg.num_groups, cfg.group_size
    mask = gp.first_episode_mask(trajectory.done)
    outcomes = gp.episode_outcomes(trajectory.reward, mask, cfg.gamma) * cfg.reward_scale
    grouped = outcomes.reshape(num_groups, group_size)
    advantages = ga.group_advantages(grouped, cfg.advantage).reshape(-1)
    informative = ga.informative_groups(grouped)
    learn_mask = mask
    if cfg.dynamic_sampling:
        learn_mask = mask & jnp.repeat(informative, group_size)[:, None]
    reference_log_probs = network.apply(reference, trajectory.obs).log_prob(trajectory.action)
    batch = Batch(
        obs=trajectory.obs,
        action=trajectory.action,
        mask=learn_mask,
        advantages=advantages,
        behaviour_log_probs=trajectory.log_prob,
        reference_log_probs=jax.lax.stop_gradient(reference_log_probs),
    )
    returns = gp.episode_outcomes(trajectory.reward, mask).reshape(num_groups, group_size)
    stats = {
        "rollout/episode_return": returns.mean(),
        "rollout/episode_length": mask.sum(-1).astype(jnp.float32).mean(),
        "rollout/group_return_std": returns.std(axis=1).mean(),
        "rollout/effective_groups": informative.mean(),
        "rollout/terminated": jnp.any(trajectory.terminated & mask, axis=-1).mean(),
        "rollout/valid_steps": mask.sum().astype(jnp.float32),
    }
    return batch, stats


def compute_loss(params, network: Policy, cfg: Config, batch: Batch):
    """The GRPO-family loss on a minibatch of episodes (``rlzoo.core.group_policy``)."""
    policy = network.apply(params, batch.obs)
    return gp.group_policy_loss(
        cfg,
        policy.log_prob(batch.action),
        policy.entropy(),
        batch.behaviour_log_probs,
        batch.reference_log_probs,
        batch.advantages,
        batch.mask,
    )


def update(
    network: Policy,
    group_env: VectorEnv,
    env_params: Any,
    num_steps: int,
    state: TrainState,
    data: Any = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One iteration: roll out groups, score first episodes, epochs of minibatch SGD."""
    del data
    cfg = state.config
    key, rollout_key = jax.random.split(state.key)

    # ROLL OUT GROUPS with the behaviour policy (``staleness`` updates old)
    behaviour = gp.behaviour_params(state.params, state.history)
    trajectory = rollout(network, group_env, env_params, num_steps, behaviour, rollout_key)

    # OUTCOMES AND GROUP-RELATIVE ADVANTAGES
    batch, stats = learning_batch(network, cfg, trajectory, state.reference)

    # EPOCHS OF MINIBATCH SGD over whole episodes
    params, opt_state, key, metrics = gp.minibatch_epochs(
        lambda p, minibatch: compute_loss(p, network, cfg, minibatch),
        make_optimizer(cfg),
        state.params,
        state.opt_state,
        key,
        batch,
        cfg.num_epochs,
        cfg.num_minibatches,
    )
    metrics.update(stats)
    state = state.replace(
        params=params,
        opt_state=opt_state,
        history=gp.push_history(state.history, state.params),
        key=key,
        iteration=state.iteration + 1,
    )
    return state, metrics


def act(network: Policy, params: Any, obs: jax.Array, key: jax.Array, deterministic: bool):
    policy = network.apply(params, obs)
    return policy.mode() if deterministic else policy.sample(seed=key)


def policy_params(state: TrainState) -> Any:
    return state.params


# ----------------------------------------------------------------------------- binding


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """GRPO-on-control's ``init``, ``update``, ``evaluate`` and ``act`` for ``env``."""
    check_config(config)
    env_params = env.default_params if env_params is None else env_params
    spaces = policy_spaces(
        env.action_space(env_params), env.observation_space(env_params), "grpo_control"
    )
    discrete = spaces["discrete"]
    network = Policy(
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        log_std_init=config.log_std_init,
        **spaces,
    )
    # Gaussian actions are clipped by the env; the unclipped sample is what gets trained on.
    acting_env = env if discrete else ClipAction(env)
    group_env = VectorEnv(GroupReset(acting_env, config.group_size), config.num_groups)
    num_steps = rollout_length(config, env, env_params)
    steps_per_iteration = config.num_groups * config.group_size * num_steps
    if config.total_steps < steps_per_iteration:
        raise ValueError(
            f"total_steps = {config.total_steps} is less than one iteration: num_groups x "
            f"group_size x max_episode_steps = {config.num_groups} x {config.group_size} x "
            f"{num_steps} = {steps_per_iteration} env steps."
        )
    bound_act = functools.partial(act, network)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        del data
        key, net_key, obs_key = jax.random.split(key, 3)
        obs, _ = acting_env.reset(obs_key, env_params)
        params = network.init(net_key, obs)
        return TrainState(
            params=params,
            opt_state=make_optimizer(cfg).init(params),
            history=gp.init_history(params, cfg.staleness),
            reference=params,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    return Agent(
        init=init,
        update=functools.partial(update, network, group_env, env_params, num_steps),
        evaluate=episode_evaluator(
            bound_act, policy_params, acting_env, env_params, config.num_eval_episodes
        ),
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
    """``train(key, config=config, data=None) -> (final_state, per-iteration metrics)``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
