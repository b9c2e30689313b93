"""GRPO and its family on token tasks: group-relative advantages, no critic.

    env, params = envs.make("tokens/reverse-4")
    agent = grpo.make_agent(grpo.Config(policy_loss="bapo"), env, params)
    train = jax.jit(jax.vmap(grpo.make_train(config, env, params), in_axes=(0, None, None)))
    state, metrics = train(keys, config, grpo.data_from_params(base_params))

One iteration: ``num_prompts`` training prompts, ``group_size`` completions each, sampled
with the key-value cache by the behaviour policy (the current one, or the one from
``staleness`` updates ago); the task's verifier scores them; group-relative advantages
(``advantage``); then ``num_epochs`` x ``num_minibatches`` steps of the chosen
``policy_loss`` (later minibatches are off-policy), aggregated by ``loss_aggregation``,
plus ``kl_coef`` x KL to the reference policy and minus ``ent_coef`` x entropy. The
objectives are shared pure functions (``rlzoo.core.objectives``,
``rlzoo.core.group_advantages``).

``data`` (kind ``pytree``) is ``{"params": base}``: the frozen base policy, which is both the
starting point and the KL reference; :func:`data_from_params` builds it from an SFT run's
``params``. With ``data=None`` GRPO starts from a random init and the reference is that
init (kept in the state); this is for tests and for tasks easy enough to learn from
scratch.

DAPO dynamic sampling keeps shapes fixed: groups whose rewards are all equal are masked out
of the loss, and ``rollout/effective_groups`` reports the share that remained.

Partial rollouts (``partial_rollout_tokens = K > 0``; Kimi k1.5's "partial rollouts", one
of the off-policy settings BAPO targets): the ``num_prompts x group_size`` completion slots live in
the state (:class:`PartialRollouts`: prompt, tokens so far, position, per-token behaviour
log-probs; slot ``i`` belongs to group ``i // group_size``). Each iteration (1) refills
with fresh prompts the groups that entered the loss last iteration, (2) writes at most
``K`` new tokens into every unfinished slot with the behaviour policy of this iteration
(:func:`continue_completions`; a slot that ended waits for its group), storing for each
new token the log-prob of the policy that sampled it, so one completion's tokens come from
several policies and the ratio of each token is to its own sampler; (3) a slot is complete
at ``EOS`` or at the completion budget, and a group enters the loss (verifier,
group-relative advantages over its G completions) only once all G are complete; the
others are masked out and carried on. It composes with ``staleness`` (each piece is
sampled by the policy from ``staleness`` updates ago), not with ``advantage="bnpo"`` (its
normaliser spans every group of the batch, finished or not). Unlike Kimi k1.5, which keeps
unfinished trajectories in a replay buffer fed by asynchronous workers and may leave earlier
segments out of the loss, here the slots stay in place (static shapes, one synchronous
program; a finished slot idles until its group is complete) and every token of a finished
group enters the loss, weighted by the ratio to the policy that sampled it.
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
from rlzoo.core import objectives as obj
from rlzoo.core.agent import Agent
from rlzoo.core.agent import make_train as make_train_from_agent
from rlzoo.core.hparams import static, traced
from rlzoo.core.reductions import masked_mean
from rlzoo.core.token_eval import (
    TOKEN_EVAL_METRICS,
    evaluate_heldout,
    make_token_model,
    next_token,
)
from rlzoo.envs import Environment
from rlzoo.envs.tokens import EOS, PAD, TokenTask, completion_lengths, completion_mask, token_task
from rlzoo.nets.transformer import Transformer, check_context, completion_log_probs, sample


@struct.dataclass
class Config:
    """GRPO-family hyperparameters."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(3e-4, "Adam step size.")
    max_grad_norm: float = traced(1.0, "Global gradient-norm clip.")
    temperature: float = traced(1.0, "Sampling temperature (also of the trained policy).")
    clip_eps: float = traced(0.2, "ppo_clip / dual_clip: ratio within [1 - eps, 1 + eps].")
    clip_eps_low: float = traced(0.2, "clip_higher: lower epsilon (DAPO 0.2).")
    clip_eps_high: float = traced(0.28, "clip_higher: upper epsilon (DAPO 0.28).")
    dual_clip_c: float = traced(3.0, "dual_clip: loss of A < 0 tokens capped at -c A.")
    apa_lambda: float = traced(
        1.0, "apa: advantage scale, target log pi - log pi_ref = A / lambda."
    )
    bapo_c_low_start: float = traced(0.6, "bapo: lower ratio bound at the start of a search.")
    bapo_c_high_start: float = traced(1.2, "bapo: upper ratio bound at the start of a search.")
    bapo_c_low_max: float = traced(0.9, "bapo: the lower bound rises at most to this.")
    bapo_c_high_max: float = traced(3.0, "bapo: the upper bound rises at most to this.")
    bapo_d_low: float = traced(0.02, "bapo: step of the lower bound.")
    bapo_d_high: float = traced(0.05, "bapo: step of the upper bound.")
    bapo_rho0: float = traced(0.4, "bapo: target positive share (authors: pos/neg ratio).")
    kl_coef: float = traced(0.0, "Weight of the KL(pi || reference) penalty in the loss.")
    ent_coef: float = traced(0.0, "Weight of the entropy bonus.")
    # Static: compiled into the program.
    advantage: str = static("grpo", "grpo, dr_grpo, rloo or bnpo (rlzoo.core.group_advantages).")
    policy_loss: str = static(
        "ppo_clip", "ppo_clip, clip_higher, dual_clip, bapo, topr or apa (core.objectives)."
    )
    loss_aggregation: str = static("token_mean", "token_mean, sequence_mean or sequence_sum.")
    bapo_ordering: str = static("paper", "bapo bound search: paper (default) or authors.")
    bapo_share: str = static(
        "signed",
        "bapo rho's denominator: signed (|sum of terms|, as the paper writes it) or absolute "
        "(sum of |terms|, a share in [0, 1]).",
    )
    kl_estimator: str = static("k3", "k1 or k3 estimator of the KL to the reference.")
    dynamic_sampling: bool = static(False, "DAPO: mask groups whose rewards are all equal.")
    overlong_penalty: bool = static(False, "DAPO soft overlong penalty added to rewards.")
    overlong_cache: int = static(
        2, "Overlong ramp over the budget's last tokens (needs the env's extra_length >= it)."
    )
    staleness: int = static(0, "Sample with the policy from this many updates ago.")
    partial_rollout_tokens: int = static(
        0,
        "Partial rollouts: at most this many new tokens per completion per iteration (0: off, "
        "whole completions; else below the completion length). Unfinished completions are "
        "carried to the next iteration and continued by the then-current behaviour policy; a "
        "group enters the loss once all its G completions have ended (EOS or max length), "
        "and its slots then get fresh prompts.",
    )
    total_steps: int = static(4_096, "Budget per seed, in sampled completions.")
    num_prompts: int = static(16, "Prompts per iteration.")
    group_size: int = static(8, "Completions per prompt (G).")
    num_epochs: int = static(2, "Passes over each batch of completions.")
    num_minibatches: int = static(2, "Minibatches per epoch (split over completions).")
    d_model: int = static(64, "Transformer width (must match the base policy).")
    num_layers: int = static(2, "Transformer blocks (must match the base policy).")
    num_heads: int = static(4, "Attention heads per block (must match the base policy).")
    num_eval_episodes: int = static(64, "Held-out prompts per evaluation.")
    eval_k: int = static(4, "Samples per held-out prompt for pass@k.")


PRESETS: dict[str, dict[str, Any]] = {}

STEP_UNIT = "samples"
SCORE_KEY = "eval/pass@1"
DATA_KIND = "pytree"  # {"params": base policy} or None (random init, reference = init)
METRICS = {
    "loss/total": "policy loss + kl_coef * KL - ent_coef * entropy, mean over SGD steps",
    "loss/policy": "the policy_loss, aggregated by loss_aggregation",
    "policy/entropy": "mean per-token entropy of the policy on the completions",
    "policy/kl_ref": "KL(pi || reference) per token (kl_estimator), mean",
    "policy/approx_kl": "KL(behaviour || pi) per token, (r - 1) - log r, mean",
    "policy/clip_low": "lower ratio bound used (bapo: chosen per minibatch; topr 0; apa 0)",
    "policy/clip_high": "upper ratio bound used (topr: 1, the negatives' cap; apa: 0)",
    "policy/clip_frac_low": "share of tokens with A < 0 whose ratio fell below the bound",
    "policy/clip_frac_high": "share of tokens with A > 0 whose ratio rose above the bound",
    "policy/rho": "BAPO's positive-contribution share at the bounds used",
    "policy/ratio": "mean importance ratio pi / behaviour over tokens",
    "policy/grad_norm": "global gradient norm before clipping",
    "rollout/reward": "mean reward of the sampled completions (partial: complete groups)",
    "rollout/solved": "share of sampled training completions that are exactly right",
    "rollout/response_length": "mean completion length in tokens (EOS included)",
    "rollout/effective_groups": "share of groups with signal (not all rewards equal)",
    "rollout/complete_groups": "partial rollouts: share of groups complete, in the loss",
    "rollout/carried_tokens": "partial rollouts: share of loss tokens from earlier iterations",
    **TOKEN_EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


def data_from_params(params: Any) -> dict[str, Any]:
    """GRPO's ``data`` from a base policy's parameters (e.g. an SFT state's ``params``)."""
    return {"params": params}


def data_from_sft_state(sft_state: Any, seed: int | None = None) -> dict[str, Any]:
    """GRPO's ``data`` from an ``sft`` ``TrainState`` (one seed of a batch if ``seed``)."""
    params = sft_state.params
    if seed is not None:
        params = jax.tree.map(lambda x: x[seed], params)
    return data_from_params(params)


def from_base(base_agent: str, base_config: Any, base_state: Any) -> tuple[dict, dict]:
    """``--base``: an ``sft`` run's policy becomes GRPO's start and KL reference.

    Returns ``(data, config overrides)``; the overrides give GRPO the base's network shape.
    """
    if base_agent != "sft":
        raise ValueError(f"grpo starts from an sft run, but the --base run is {base_agent!r}.")
    shape = {name: getattr(base_config, name) for name in ("d_model", "num_layers", "num_heads")}
    return data_from_sft_state(base_state), shape


@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    history: Any  # [staleness, ...] earlier params, oldest first (None when staleness = 0)
    reference: Any  # the KL reference when no base policy is given as data, else None
    partial: Any  # PartialRollouts carried between iterations (None when partial rollouts off)
    key: jax.Array
    iteration: jax.Array
    config: Config


@struct.dataclass
class PartialRollouts:
    """The completion slots of partial rollouts, ``[B = num_prompts x group_size]`` first."""

    prompts: jax.Array  # [B, P] the slot's prompt (group members adjacent)
    completions: jax.Array  # [B, N] tokens so far, PAD from ``position`` on
    behaviour_log_probs: jax.Array  # [B, N] log-prob under the policy that sampled it
    position: jax.Array  # [B] int32 tokens written so far (where the next piece starts)


@struct.dataclass
class Batch:
    """What the loss reads; shuffled into minibatches over completions."""

    prompts: jax.Array
    completions: jax.Array
    mask: jax.Array  # [N, T] tokens that count (up to EOS, informative groups)
    advantages: jax.Array  # [N]
    behaviour_log_probs: jax.Array  # [N, T]
    reference_log_probs: jax.Array  # [N, T]


def check_config(config: Config) -> None:
    gp.check_choices(
        config,
        {
            "advantage": ga.ADVANTAGES,
            "policy_loss": obj.POLICY_LOSSES,
            "loss_aggregation": obj.LOSS_AGGREGATIONS,
            "kl_estimator": obj.KL_ESTIMATORS,
            "bapo_ordering": obj.BAPO_ORDERINGS,
            "bapo_share": obj.BAPO_SHARES,
        },
    )
    if config.group_size < 2:
        raise ValueError(
            f"group_size = {config.group_size}: group-relative advantages need G >= 2."
        )
    for name in ("num_prompts", "num_epochs", "num_minibatches", "num_eval_episodes", "eval_k"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.staleness < 0:
        raise ValueError(f"staleness must be >= 0, got {config.staleness}")
    if config.partial_rollout_tokens < 0:
        raise ValueError(
            f"partial_rollout_tokens must be >= 0, got {config.partial_rollout_tokens}; "
            "use 0 to turn partial rollouts off, or a per-iteration budget of new tokens."
        )
    if config.partial_rollout_tokens and config.advantage == "bnpo":
        raise ValueError(
            "advantage='bnpo' fits its Beta normaliser over every group of the batch, and with "
            "partial_rollout_tokens > 0 the batch holds unfinished groups; use grpo, dr_grpo "
            "or rloo with partial rollouts, or partial_rollout_tokens=0 with bnpo."
        )
    batch = config.num_prompts * config.group_size
    if batch % config.num_minibatches:
        raise ValueError(
            f"num_prompts x group_size = {batch} completions do not split into "
            f"num_minibatches = {config.num_minibatches}."
        )
    if config.total_steps < batch:
        raise ValueError(f"total_steps = {config.total_steps} is less than one batch ({batch}).")
    obj.check_bapo_settings(gp.bapo_settings(config))


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))


def compute_loss(params, model: Transformer, cfg: Config, batch: Batch):
    """The chosen objective on a minibatch of completions, with KL and entropy terms
    (``rlzoo.core.group_policy.group_policy_loss``)."""
    log_probs, entropy = completion_log_probs(
        model, params, batch.prompts, batch.completions, cfg.temperature
    )
    return gp.group_policy_loss(
        cfg, log_probs, entropy, batch.behaviour_log_probs, batch.reference_log_probs,
        batch.advantages, batch.mask,
    )  # fmt: skip


def score_batch(task: TokenTask, cfg: Config, prompts, completions, behaviour, ref, ready=None):
    """Score completions and build the learning batch (advantages, masks, log-probs).

    ``ready [num_prompts]`` (partial rollouts): the groups whose G completions are all
    complete; only they enter the loss and the rollout statistics. ``None``: every group.
    """
    n = task.completion_length
    rewards = task.score(prompts, completions)
    lengths = completion_lengths(completions)
    if cfg.overlong_penalty:
        rewards = rewards + obj.overlong_penalty(lengths, n, cfg.overlong_cache)
    grouped = rewards.reshape(cfg.num_prompts, cfg.group_size)
    advantages = ga.group_advantages(grouped, cfg.advantage).reshape(-1)
    informative = ga.informative_groups(grouped)
    keep = jnp.repeat(informative, cfg.group_size) if cfg.dynamic_sampling else True
    if ready is not None:
        keep = keep & jnp.repeat(ready, cfg.group_size)
    mask = completion_mask(completions) & jnp.reshape(keep, (-1, 1))
    batch = Batch(
        prompts,
        completions,
        mask,
        advantages,
        jax.lax.stop_gradient(behaviour),
        jax.lax.stop_gradient(ref),
    )
    solved = task.solved(prompts, completions)
    if ready is None:
        return batch, {
            "rollout/reward": rewards.mean(),
            "rollout/solved": solved.mean(),
            "rollout/response_length": lengths.mean().astype(jnp.float32),
            "rollout/effective_groups": informative.mean(),
        }
    members = jnp.repeat(ready, cfg.group_size)
    return batch, {
        "rollout/reward": masked_mean(rewards, members),
        "rollout/solved": masked_mean(solved, members),
        "rollout/response_length": masked_mean(lengths.astype(jnp.float32), members),
        "rollout/effective_groups": masked_mean(informative, ready),
        "rollout/complete_groups": ready.mean(),
    }


def rollout(model: Transformer, task: TokenTask, cfg: Config, params, reference, key):
    """Sample whole completions, score them and build the learning batch."""
    prompt_key, sample_key = jax.random.split(key)
    prompts = task.prompts(prompt_key, cfg.num_prompts, "train")
    prompts = jnp.repeat(prompts, cfg.group_size, axis=0)  # group members adjacent
    n = task.completion_length
    completions, _ = sample(model, params, prompts, sample_key, n, cfg.temperature, EOS, PAD)
    # Behaviour log-probs from the same full forward pass that training uses.
    behaviour, _ = completion_log_probs(model, params, prompts, completions, cfg.temperature)
    ref, _ = completion_log_probs(model, reference, prompts, completions, cfg.temperature)
    return score_batch(task, cfg, prompts, completions, behaviour, ref)


# ------------------------------------------------------------------ partial rollouts


def continue_completions(
    model: Transformer, params, prompts, completions, start, stop, key, temperature=1.0
):
    """Write tokens ``start <= t < stop`` of each of ``completions [B, N]``, with the KV cache.

    The cache takes the prompt in one call, then a scan over the N completion positions
    feeds the stored token outside ``[start, stop)`` (the carried prefix, or PAD) and a
    sampled one inside it (PAD after an ``EOS``). Step ``t`` draws with the ``t``-th key of
    ``split(key, N)`` for the whole batch, as :func:`rlzoo.nets.transformer.sample` does:
    with the same params and key, a completion written in pieces equals the one ``sample``
    writes in one go. Returns ``(completions, written [B, N] bool)``.
    """
    b, n = completions.shape
    check_context(model, prompts.shape[1], n)
    logits, cache = model.apply(params, prompts, model.empty_cache(b), 0)
    steps = jnp.arange(n)
    written = (steps >= start[:, None]) & (steps < stop[:, None])

    def step(carry, inputs):
        logits, cache, finished = carry
        key, position, stored, fresh = inputs
        drawn = jax.random.categorical(key, jax.nn.log_softmax(logits / temperature, axis=-1))
        token = jnp.where(fresh, jnp.where(finished, PAD, drawn), stored)
        next_logits, cache = model.apply(params, token[:, None], cache, position)
        return (next_logits[:, 0], cache, finished | (token == EOS)), token

    carry = (logits[:, -1], cache, jnp.zeros((b,), bool))
    inputs = (jax.random.split(key, n), prompts.shape[1] + steps, completions.T, written.T)
    _, tokens = jax.lax.scan(step, carry, inputs)
    return tokens.T.astype(completions.dtype), written


def empty_partial_rollouts(task: TokenTask, cfg: Config) -> PartialRollouts:
    """Every slot marked complete (at the budget), so the first iteration refills them all."""
    b, n = cfg.num_prompts * cfg.group_size, task.completion_length
    return PartialRollouts(
        prompts=jnp.full((b, task.prompt_length), PAD, jnp.int32),
        completions=jnp.full((b, n), PAD, jnp.int32),
        behaviour_log_probs=jnp.zeros((b, n), jnp.float32),
        position=jnp.full((b,), n, jnp.int32),
    )


def complete_groups(pool: PartialRollouts, cfg: Config) -> jax.Array:
    """``[num_prompts]`` bool: every member ended (an ``EOS`` written, or the budget reached)."""
    done = jnp.any(pool.completions == EOS, axis=-1) | (pool.position >= pool.completions.shape[1])
    return jnp.all(done.reshape(cfg.num_prompts, cfg.group_size), axis=-1)


def partial_rollout(model: Transformer, task: TokenTask, cfg: Config, params, reference, pool, key):
    """Refill finished groups, write at most ``partial_rollout_tokens`` new tokens into every
    unfinished slot, and build the batch of the groups that are now complete."""
    prompt_key, sample_key = jax.random.split(key)
    g, n = cfg.group_size, task.completion_length

    # REFILL the groups that entered the loss last iteration with fresh prompts
    refill = jnp.repeat(complete_groups(pool, cfg), g)
    fresh = jnp.repeat(task.prompts(prompt_key, cfg.num_prompts, "train"), g, axis=0)
    prompts = jnp.where(refill[:, None], fresh, pool.prompts)
    carried = jnp.where(refill[:, None], PAD, pool.completions)
    old_log_probs = jnp.where(refill[:, None], 0.0, pool.behaviour_log_probs)
    start = jnp.where(refill, 0, pool.position)

    # CONTINUE the unfinished slots (a slot that ended waits for the rest of its group)
    ended = jnp.any(carried == EOS, axis=-1) | (start >= n)
    stop = jnp.where(ended, start, jnp.minimum(start + cfg.partial_rollout_tokens, n))
    completions, written = continue_completions(
        model, params, prompts, carried, start, stop, sample_key, cfg.temperature
    )
    # Each new token keeps the log-prob of the policy that sampled it (the same full forward
    # pass that training uses); carried tokens keep their older policies' log-probs.
    new_log_probs, _ = completion_log_probs(model, params, prompts, completions, cfg.temperature)
    behaviour = jnp.where(written, new_log_probs, old_log_probs)
    pool = PartialRollouts(prompts, completions, behaviour, stop)

    # SCORE the groups whose G completions are all complete
    ready = complete_groups(pool, cfg)
    ref, _ = completion_log_probs(model, reference, prompts, completions, cfg.temperature)
    batch, stats = score_batch(task, cfg, prompts, completions, behaviour, ref, ready)
    earlier = jnp.arange(n) < start[:, None]  # sampled in an earlier iteration
    stats["rollout/carried_tokens"] = masked_mean(earlier, batch.mask)
    return batch, pool, stats


def update(model: Transformer, task: TokenTask, state: TrainState, data: Any = None):
    """One GRPO iteration: sample groups, score, advantages, epochs of minibatch SGD."""
    cfg = state.config
    reference = state.reference if data is None else data["params"]
    key, rollout_key = jax.random.split(state.key)

    # SAMPLE with the behaviour policy (``staleness`` updates old) AND SCORE
    behaviour = gp.behaviour_params(state.params, state.history)
    if cfg.partial_rollout_tokens:
        batch, partial, stats = partial_rollout(
            model, task, cfg, behaviour, reference, state.partial, rollout_key
        )
    else:
        batch, stats = rollout(model, task, cfg, behaviour, reference, rollout_key)
        partial = None

    # EPOCHS OF MINIBATCH SGD
    params, opt_state, key, metrics = gp.minibatch_epochs(
        lambda p, minibatch: compute_loss(p, model, cfg, minibatch),
        make_optimizer(cfg), state.params, state.opt_state, key, batch,
        cfg.num_epochs, cfg.num_minibatches,
    )  # fmt: skip
    history = gp.push_history(state.history, state.params)
    metrics.update(stats)
    state = state.replace(
        params=params,
        opt_state=opt_state,
        history=history,
        partial=partial,
        key=key,
        iteration=state.iteration + 1,
    )
    return state, metrics


def act(model, prompt_length, params, obs, key, deterministic):
    """Next token for step-interface observations (prompt, completion so far, padding)."""
    logits = next_token(model, params, obs, prompt_length)
    return jnp.argmax(logits, -1) if deterministic else jax.random.categorical(key, logits)


def policy_params(state: TrainState) -> Any:
    return state.params


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """GRPO's ``init``, ``update``, ``evaluate`` and ``act`` for a token task."""
    check_config(config)
    task = token_task(env)
    if config.overlong_penalty and task.extra_length < config.overlong_cache:
        raise ValueError(
            f"overlong_penalty ramps over the last overlong_cache = {config.overlong_cache} "
            f"tokens of the completion budget, but {env.id} has extra_length = "
            f"{task.extra_length} tokens beyond its answer, so right answers would be "
            "penalised; make the env with extra_length >= overlong_cache."
        )
    n = task.completion_length
    if config.partial_rollout_tokens >= n:
        raise ValueError(
            f"partial_rollout_tokens = {config.partial_rollout_tokens} is not partial: "
            f"completions of {env.id} are at most {n} tokens long; use 1 to {n - 1} new tokens "
            "per iteration, or 0 to turn partial rollouts off."
        )
    model = make_token_model(config, task)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        key, net_key = jax.random.split(key)
        if data is None:
            params = model.init(net_key, jnp.zeros((1, model.max_length), jnp.int32))
            reference = params
        else:
            params, reference = data["params"], None
            expected = jax.eval_shape(
                model.init, net_key, jnp.zeros((1, model.max_length), jnp.int32)
            )
            if jax.tree.structure(expected) != jax.tree.structure(params) or any(
                a.shape != b.shape
                for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(params), strict=True)
            ):
                raise ValueError(
                    "the base policy's parameters do not fit this model; use the same "
                    "d_model, num_layers, num_heads and task as the SFT run."
                )
        history = gp.init_history(params, cfg.staleness)
        return TrainState(
            params=params,
            opt_state=make_optimizer(cfg).init(params),
            history=history,
            reference=reference,
            partial=empty_partial_rollouts(task, cfg) if cfg.partial_rollout_tokens else None,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    def evaluate(state: TrainState, key: jax.Array, data: Any = None) -> dict[str, jax.Array]:
        return evaluate_heldout(
            model, state.params, task, key, config.num_eval_episodes, config.eval_k
        )

    batch = config.num_prompts * config.group_size
    return Agent(
        init=init,
        update=functools.partial(update, model, task),
        evaluate=evaluate,
        act=functools.partial(act, model, task.prompt_length),
        policy_params=policy_params,
        num_iterations=config.total_steps // batch,
        steps_per_iteration=batch,
        step_unit=STEP_UNIT,
        score_key=SCORE_KEY,
        metrics=METRICS,
        data_kind=DATA_KIND,
    )


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config, data=None or data_from_params(base))``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
