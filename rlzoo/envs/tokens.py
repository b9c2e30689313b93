"""Token tasks with verifiable rewards: a prompt of tokens, a completion, a verifier.

Env ids are ``tokens/<task>-<size>``: ``tokens/copy-4``, ``tokens/reverse-8``,
``tokens/sort-8``, ``tokens/add-3`` (3-digit addition), ``tokens/sum-6`` (the sum of six
digits mod 10, written after a scratchpad of running sums). Other parameters are keyword
arguments of ``envs.make`` (``vocab``, ``partial_credit``, ``format_penalty``, ...).

Two faces over one :class:`TokenTask`:

* batched, for group methods: ``task.prompts(key, n, split)`` -> ``[n, prompt_length]``
  int32 and ``task.score(prompts, completions)`` -> ``[n]`` float rewards, where a
  completion is ``[completion_length]`` tokens (the answer, then ``EOS``, then padding);
* the env layer's step interface (:class:`TokenEnv`): the observation is the whole
  sequence so far (prompt, then the completion written so far, then ``PAD``), the action
  the next token; the episode ends at ``EOS`` or at the completion budget with the
  verifier's reward (``terminated``: nothing to bootstrap).

Vocabulary: ``PAD 0, BOS 1, SEP 2, EOS 3, PLUS 4, ANS 5``, then ``vocab`` symbols from 6
(digits are symbols 0..9). A prompt is ``BOS x_1 .. x_n SEP``. The target completion is
the task's answer followed by ``EOS``.

Reward: 1 for an exact match of the graded positions and ``EOS`` in its place, else 0
(``partial_credit``: the share of graded positions right instead); ``format_penalty`` is
subtracted when the completion has no ``EOS`` right after the answer's length.

Held-out split: a prompt belongs to the evaluation split when a hash (FNV-1a) of its
tokens falls in the lowest ``eval_fraction`` of the hash range. ``prompts`` draws
``PROMPT_CANDIDATES`` candidates per prompt and keeps the first of the requested split,
so the two splits never share a prompt unless every candidate misses (probability
``(1 - eval_fraction) ** 128``, about 1e-6 for the default 0.1, per evaluation prompt).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlzoo.envs.core import Discrete, Environment, TokenSequence

PAD, BOS, SEP, EOS, PLUS, ANS = 0, 1, 2, 3, 4, 5
NUM_SPECIAL = 6
PROMPT_CANDIDATES = 128

TASKS = {
    "copy": "repeat the n symbols",
    "reverse": "the n symbols in reverse order",
    "sort": "the n symbols in ascending order",
    "add": "a + b for two n-digit numbers, n + 1 digits with leading zeros",
    "sum": "running sums mod 10 of n digits (a scratchpad), ANS, then the final sum",
}


def symbol(x):
    """Token id of symbol (or digit) ``x``."""
    return x + NUM_SPECIAL


@dataclasses.dataclass(frozen=True)
class TokenTask:
    """One task: its sizes fix every shape; all methods are pure and jittable."""

    task: str
    size: int
    vocab: int = 10  # symbols for copy / reverse / sort; digits are always base 10
    partial_credit: bool = False
    format_penalty: float = 0.0
    eval_fraction: float = 0.1
    extra_length: int = 0  # completion budget beyond the answer and its EOS

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(
                f"unknown token task {self.task!r}; known tasks: "
                + "; ".join(f"{k} ({v})" for k, v in TASKS.items())
            )
        if self.size < 1:
            raise ValueError(f"token task size must be >= 1, got {self.size}")
        if self.task in ("copy", "reverse", "sort") and self.vocab < 2:
            raise ValueError(f"vocab must be >= 2 symbols, got {self.vocab}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must lie in (0, 1), got {self.eval_fraction}")

    # ---------------------------------------------------------------- sizes

    @property
    def num_symbols(self) -> int:
        return self.vocab if self.task in ("copy", "reverse", "sort") else 10

    @property
    def vocab_size(self) -> int:
        return NUM_SPECIAL + self.num_symbols

    @property
    def prompt_length(self) -> int:
        body = 2 * self.size + 1 if self.task == "add" else self.size
        return body + 2  # BOS ... SEP

    @property
    def answer_length(self) -> int:
        return {"add": self.size + 1, "sum": self.size + 2}.get(self.task, self.size)

    @property
    def completion_length(self) -> int:
        return self.answer_length + 1 + self.extra_length

    @property
    def graded(self) -> np.ndarray:
        """Answer positions that the exact-match reward checks (the sum task: ANS, answer)."""
        graded = np.ones(self.answer_length, bool)
        if self.task == "sum":
            graded[: self.size] = False  # the scratchpad is the model's own business
        return graded

    # ---------------------------------------------------------------- prompts

    def _body(self, key: jax.Array) -> jax.Array:
        """One prompt body of symbol ids (no BOS / SEP)."""
        if self.task == "add":
            a, b = jax.random.randint(key, (2, self.size), 0, 10)
            return jnp.concatenate([symbol(a), jnp.array([PLUS]), symbol(b)])
        return symbol(jax.random.randint(key, (self.size,), 0, self.num_symbols))

    def in_eval_split(self, prompts: jax.Array) -> jax.Array:
        """``[...]`` bool: the prompt (last axis) belongs to the held-out split."""
        h = jnp.full(prompts.shape[:-1], 2166136261, jnp.uint32)
        for i in range(prompts.shape[-1]):
            h = (h ^ prompts[..., i].astype(jnp.uint32)) * jnp.uint32(16777619)
        return (h >> 8).astype(jnp.float32) < self.eval_fraction * 2.0**24

    def prompts(self, key: jax.Array, n: int, split: str = "train") -> jax.Array:
        """``[n, prompt_length]`` prompts of the ``train`` or ``eval`` split."""
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        keys = jax.random.split(key, n * PROMPT_CANDIDATES)
        bodies = jax.vmap(self._body)(keys).reshape(n, PROMPT_CANDIDATES, -1)
        ones = jnp.ones((n, PROMPT_CANDIDATES, 1), jnp.int32)
        candidates = jnp.concatenate([BOS * ones, bodies, SEP * ones], axis=-1)
        wanted = self.in_eval_split(candidates) == (split == "eval")
        first = jnp.argmax(wanted, axis=1)
        return jnp.take_along_axis(candidates, first[:, None, None], axis=1)[:, 0]

    # ---------------------------------------------------------------- verifier

    def answers(self, prompts: jax.Array) -> jax.Array:
        """``[n, answer_length]`` the correct answer of each prompt."""
        body = prompts[:, 1:-1] - NUM_SPECIAL
        if self.task == "copy":
            out = body
        elif self.task == "reverse":
            out = body[:, ::-1]
        elif self.task == "sort":
            out = jnp.sort(body, axis=1)
        elif self.task == "add":
            a, b = body[:, : self.size], body[:, self.size + 1 :]
            powers = 10 ** jnp.arange(self.size - 1, -1, -1)
            total = (a * powers).sum(1) + (b * powers).sum(1)
            out = (total[:, None] // 10 ** jnp.arange(self.size, -1, -1)) % 10
        else:  # sum
            running = jnp.cumsum(body, axis=1) % 10
            marker = jnp.full((body.shape[0], 1), ANS - NUM_SPECIAL)
            out = jnp.concatenate([running, marker, running[:, -1:]], axis=1)
        return symbol(out)

    def targets(self, prompts: jax.Array) -> jax.Array:
        """``[n, completion_length]``: the answer, ``EOS``, then padding."""
        n = prompts.shape[0]
        tail = jnp.full((n, self.completion_length - self.answer_length), PAD)
        return jnp.concatenate([self.answers(prompts), tail.at[:, 0].set(EOS)], axis=1)

    def score(self, prompts: jax.Array, completions: jax.Array) -> jax.Array:
        """``[n]`` rewards of ``completions [n, completion_length]`` for ``prompts``."""
        if completions.shape[-1] != self.completion_length:
            raise ValueError(
                f"completions have {completions.shape[-1]} tokens; this task's budget is "
                f"{self.completion_length}"
            )
        answer = completions[:, : self.answer_length]
        right = answer == self.answers(prompts)
        graded = jnp.asarray(self.graded)
        well_formed = completions[:, self.answer_length] == EOS
        exact = jnp.all(right | ~graded, axis=1) & well_formed
        if self.partial_credit:
            reward = (right & graded).sum(1) / graded.sum()
            reward = jnp.where(well_formed, reward, 0.5 * reward)
        else:
            reward = exact.astype(jnp.float32)
        return reward - self.format_penalty * (~well_formed)

    def solved(self, prompts: jax.Array, completions: jax.Array) -> jax.Array:
        """``[n]`` bool exact matches (what pass@k counts), whatever the reward shaping."""
        return (
            dataclasses.replace(self, partial_credit=False, format_penalty=0.0).score(
                prompts, completions
            )
            > 0.5
        )


def completion_mask(completions: jax.Array) -> jax.Array:
    """``[n, T]`` bool: tokens up to and including the first ``EOS`` (all if none)."""
    is_eos = completions == EOS
    before = jnp.cumsum(is_eos, axis=-1) - is_eos  # EOS tokens strictly before t
    return before == 0


def completion_lengths(completions: jax.Array) -> jax.Array:
    return completion_mask(completions).sum(-1)


# -------------------------------------------------------------------- step interface


class TokenEnv(Environment):
    """The step face: write the completion one token at a time; reward at the end."""

    def __init__(self, task: TokenTask, split: str = "train", env_id: str | None = None):
        self.task = task
        self.split = split
        self.id = env_id or f"tokens/{task.task}-{task.size}"

    @property
    def sequence_length(self) -> int:
        return self.task.prompt_length + self.task.completion_length

    def _obs(self, prompt, completion):
        return jnp.concatenate([prompt, completion])

    def reset(self, key, params=None):
        prompt = self.task.prompts(key, 1, self.split)[0]
        completion = jnp.full((self.task.completion_length,), PAD, jnp.int32)
        state = {"prompt": prompt, "completion": completion, "t": jnp.zeros((), jnp.int32)}
        return self._obs(prompt, completion), state

    def step(self, key, state, action, params=None):
        t = state["t"]
        completion = state["completion"].at[t].set(jnp.asarray(action, jnp.int32))
        done = (action == EOS) | (t + 1 >= self.task.completion_length)
        reward = self.task.score(state["prompt"][None], completion[None])[0]
        reward = jnp.where(done, reward, 0.0)
        final_obs = self._obs(state["prompt"], completion)
        stepped = {"prompt": state["prompt"], "completion": completion, "t": t + 1}
        reset_obs, reset_state = self.reset(key, params)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), reset_state, stepped)
        obs = jnp.where(done, reset_obs, final_obs)
        info = {"final_observation": final_obs}
        return obs, state, reward, done, jnp.zeros((), bool), info

    def observation_space(self, params=None) -> TokenSequence:
        return TokenSequence(self.task.vocab_size, self.sequence_length)

    def action_space(self, params=None) -> Discrete:
        return Discrete(self.task.vocab_size)


def token_task(env: Environment) -> TokenTask:
    """The :class:`TokenTask` under ``env`` and its wrappers (token agents need one)."""
    while not isinstance(env, TokenEnv):
        if not hasattr(env, "env"):
            raise ValueError(f"{env.id} is not a token task; use a tokens/<task>-<size> env")
        env = env.env
    return env.task


# -------------------------------------------------------------------- ids

_ID = re.compile(r"^(?P<task>[a-z]+)-(?P<size>\d+)$")


class _TokenNames(list):
    """Representative names that also *contain* every well-formed ``<task>-<size>``."""

    def __contains__(self, name: object) -> bool:
        try:
            parse_name(str(name))
        except ValueError:
            return False
        return True


def token_names() -> list[str]:
    """Representative ids; ``in`` accepts any ``<task>-<size>`` with a known task."""
    return _TokenNames(["copy-4", "reverse-4", "reverse-8", "sort-8", "add-3", "sum-6"])


def parse_name(name: str) -> tuple[str, int]:
    match = _ID.match(name)
    if not match:
        raise ValueError(
            f"malformed token task {name!r}; ids are tokens/<task>-<size> with task one of "
            f"{', '.join(TASKS)} and size a positive integer, e.g. tokens/reverse-8."
        )
    task, size = match["task"], int(match["size"])
    if task not in TASKS:
        raise ValueError(
            f"unknown token task {task!r} in {name!r}; known tasks: {', '.join(TASKS)} "
            "(e.g. tokens/reverse-8)."
        )
    return task, size


def make_token_env(name: str, **kwargs: Any) -> TokenEnv:
    """``tokens/<task>-<size>``; keyword arguments are :class:`TokenTask` fields and
    ``split`` (``train`` or ``eval``)."""
    task, size = parse_name(name)
    split = kwargs.pop("split", "train")
    fields = {f.name for f in dataclasses.fields(TokenTask)} - {"task", "size"}
    unknown = set(kwargs) - fields
    if unknown:
        raise ValueError(
            f"unknown token task parameter(s) {sorted(unknown)}; known: {sorted(fields)}"
        )
    return TokenEnv(TokenTask(task, size, **kwargs), split, f"tokens/{name}")


__all__ = [
    "ANS",
    "BOS",
    "EOS",
    "PAD",
    "SEP",
    "TASKS",
    "TokenEnv",
    "TokenTask",
    "completion_lengths",
    "completion_mask",
    "make_token_env",
    "parse_name",
    "token_names",
    "token_task",
]
