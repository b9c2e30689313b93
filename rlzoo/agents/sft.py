"""Supervised fine-tuning (warm start) of a small transformer on imperfect demonstrations.

    env, params = envs.make("tokens/reverse-8")
    train = jax.jit(jax.vmap(sft.make_train(sft.Config(), env, params)))
    state, metrics = train(jax.random.split(key, 8))

Demonstrations are the token task's own answers on training prompts, corrupted: each answer
token is replaced by a uniformly random symbol with probability ``demo_noise``, so the
warm-started policy is imperfect by construction (a moderate pass@1 for GRPO to improve).
They are drawn inside the jitted update from the task's seeded generator, so SFT takes no
``data``. The loss is the next-token cross-entropy on the completion (answer and ``EOS``).
The final ``params`` are the base policy a ``grpo`` run starts from (``grpo.data_from_sft``).
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
from rlzoo.core.hparams import static, traced
from rlzoo.core.token_eval import (
    TOKEN_EVAL_METRICS,
    evaluate_heldout,
    make_token_model,
    next_token,
)
from rlzoo.envs import Environment
from rlzoo.envs.tokens import NUM_SPECIAL, TokenTask, completion_mask, token_task
from rlzoo.nets.transformer import Transformer, completion_log_probs


@struct.dataclass
class Config:
    """SFT hyperparameters."""

    # Traced: may be batched for a sweep.
    learning_rate: float = traced(1e-3, "Adam step size.")
    max_grad_norm: float = traced(1.0, "Global gradient-norm clip.")
    demo_noise: float = traced(0.1, "Chance that a demonstration answer token is random.")
    # Static: compiled into the program.
    total_steps: int = static(2_000, "Budget per seed, in gradient steps.")
    updates_per_iteration: int = static(100, "Gradient steps per logged iteration.")
    batch_size: int = static(64, "Demonstrations per gradient step.")
    d_model: int = static(64, "Transformer width.")
    num_layers: int = static(2, "Transformer blocks.")
    num_heads: int = static(4, "Attention heads per block.")
    num_eval_episodes: int = static(64, "Held-out prompts per evaluation.")
    eval_k: int = static(4, "Samples per held-out prompt for pass@k.")


PRESETS: dict[str, dict[str, Any]] = {}

STEP_UNIT = "gradient_steps"
SCORE_KEY = "eval/pass@1"
DATA_KIND = None  # demonstrations come from the task's generator inside the program
METRICS = {
    "loss/nll": "cross-entropy of the demonstration completions, mean over the iteration",
    "policy/token_accuracy": "share of demonstration tokens equal to the policy's argmax",
    **TOKEN_EVAL_METRICS,
}


def default_config(env_id: str) -> Config:
    del env_id
    return Config()


@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    key: jax.Array
    iteration: jax.Array
    config: Config


def check_config(config: Config) -> None:
    for name in ("updates_per_iteration", "batch_size", "num_eval_episodes", "eval_k"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.total_steps < config.updates_per_iteration:
        raise ValueError(
            f"total_steps = {config.total_steps} is less than one iteration's "
            f"updates_per_iteration = {config.updates_per_iteration}."
        )


def demonstrations(task: TokenTask, key: jax.Array, n: int, noise: jax.Array):
    """``(prompts, completions)``: right answers with each answer token random w.p. noise."""
    prompt_key, flip_key, symbol_key = jax.random.split(key, 3)
    prompts = task.prompts(prompt_key, n, "train")
    targets = task.targets(prompts)
    answer = jnp.arange(task.completion_length) < task.answer_length
    flip = (jax.random.uniform(flip_key, targets.shape) < noise) & answer
    noise_tokens = NUM_SPECIAL + jax.random.randint(symbol_key, targets.shape, 0, task.num_symbols)
    return prompts, jnp.where(flip, noise_tokens, targets)


def compute_loss(params, model, prompts, completions):
    log_probs, _ = completion_log_probs(model, params, prompts, completions)
    mask = completion_mask(completions)
    nll = -jnp.sum(log_probs * mask) / mask.sum()
    logits = model.apply(params, jnp.concatenate([prompts, completions], 1)[:, :-1])
    guess = jnp.argmax(logits[:, prompts.shape[1] - 1 :], -1)
    accuracy = jnp.sum((guess == completions) * mask) / mask.sum()
    return nll, {"loss/nll": nll, "policy/token_accuracy": accuracy}


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))


def update(model: Transformer, task: TokenTask, state: TrainState, data: Any = None):
    """``updates_per_iteration`` gradient steps on fresh noisy demonstrations."""
    del data
    cfg = state.config
    tx = make_optimizer(cfg)

    def sgd_step(carry, _):
        params, opt_state, key = carry
        key, demo_key = jax.random.split(key)
        prompts, completions = demonstrations(task, demo_key, cfg.batch_size, cfg.demo_noise)
        grads, metrics = jax.grad(compute_loss, has_aux=True)(params, model, prompts, completions)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), metrics

    (params, opt_state, key), metrics = jax.lax.scan(
        sgd_step, (state.params, state.opt_state, state.key), None, cfg.updates_per_iteration
    )
    state = state.replace(
        params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1
    )
    return state, jax.tree.map(jnp.mean, metrics)


def act(model, prompt_length, params, obs, key, deterministic):
    """Next token for step-interface observations (prompt, completion so far, padding)."""
    logits = next_token(model, params, obs, prompt_length)
    return jnp.argmax(logits, -1) if deterministic else jax.random.categorical(key, logits)


def policy_params(state: TrainState) -> Any:
    return state.params


def make_agent(config: Config, env: Environment, env_params: Any = None) -> Agent:
    """SFT's ``init``, ``update``, ``evaluate`` and ``act`` for a token task."""
    check_config(config)
    task = token_task(env)
    model = make_token_model(config, task)

    def init(key: jax.Array, cfg: Config = config, data: Any = None) -> TrainState:
        key, net_key = jax.random.split(key)
        params = model.init(net_key, jnp.zeros((1, model.max_length), jnp.int32))
        return TrainState(
            params=params,
            opt_state=make_optimizer(cfg).init(params),
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            config=cfg,
        )

    def evaluate(state: TrainState, key: jax.Array, data: Any = None) -> dict[str, jax.Array]:
        return evaluate_heldout(
            model, state.params, task, key, config.num_eval_episodes, config.eval_k
        )

    return Agent(
        init=init,
        update=functools.partial(update, model, task),
        evaluate=evaluate,
        act=functools.partial(act, model, task.prompt_length),
        policy_params=policy_params,
        num_iterations=config.total_steps // config.updates_per_iteration,
        steps_per_iteration=config.updates_per_iteration,
        step_unit=STEP_UNIT,
        score_key=SCORE_KEY,
        metrics=METRICS,
        data_kind=DATA_KIND,
    )


def make_train(config: Config, env: Environment, env_params: Any = None):
    """``train(key, config=config) -> (final_state, per-iteration metrics)``."""
    return make_train_from_agent(make_agent(config, env, env_params), config)
