"""An offline suite end to end: make the D4RL-style levels with SAC, then score every offline
agent on them (normalised score, mean and 95% bootstrap interval over seeds).

    python experiments/offline_suite.py --env=gymnax/Pendulum-v1 --expert_steps=30000 \\
        --transitions=20000 --offline_steps=20000 --seeds=5 --out=runs/offline_suite

Levels (D4RL's recipe): ``random`` (uniform actions), ``medium`` (the SAC policy at the
first evaluation reaching a third of the way from random to ``--expert_reference``, by
default the expert's return), ``expert`` (the SAC policy of the best evaluation, or the
final one with ``--expert_policy=final``; its return is measured again), ``medium-replay``
(SAC's replay buffer at that moment: everything it had trained on, up to its capacity),
``medium-expert`` (medium + expert).
Each is written as a Minari dataset under ``--out/minari`` with the random and expert
reference returns measured here. Then the ``--agents`` (default BC, TD3+BC, IQL, PRDC,
A2PR, Diffusion-QL, IDQL, FQL) train on each of the ``--levels`` (``--seeds`` seeds in one
program per agent and level), and TD3+BC and IQL also with trajectory weighting
(``sampler=return``) on the mixed levels. Each agent is scored by its own ``score_key``
(the paper's evaluation rule: Diffusion-QL and FQL sample, the others act deterministically).
The diffusion agents get a denoiser of one residual block of ``--width`` and critics of
two ``--width`` layers; FQL runs with ``normalize_q_loss`` and ``alpha = --fql_alpha``
(its README's advice for a new environment). Prints a Markdown table and writes
``results.json``. Small networks and budgets by default, so that it runs on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import numpy as np
from common import record

from rlzoo import agents, envs
from rlzoo.analysis.stats import mean_interval
from rlzoo.core.evaluation import evaluate_policy
from rlzoo.data import collect_transitions, load_dataset, normalized_score, write_minari
from rlzoo.launch.configs import resolve_config

OFFLINE = ("bc", "td3_bc", "iql", "prdc", "a2pr", "diffusion_ql", "idql", "fql")
DIFFUSION = ("diffusion_ql", "idql", "fql")  # a residual denoiser of width --width
WEIGHTED = ("td3_bc", "iql")
MIXED = ("medium-replay", "medium-expert")


def score_table(rows: list[dict], seeds: int, random_return: float, expert_return: float) -> str:
    """Markdown: one row per level and agent (``+RW``: trajectory-weighted sampling)."""
    lines = [
        f"| level | agent | normalised score, mean [95% CI] over {seeds} seeds | min | "
        "wall incl. compile (s) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['level']} | {row['agent']} | {row['mean']:.1f} [{row['low']:.1f}, "
            f"{row['high']:.1f}] | {min(row['scores']):.1f} | {row['seconds']:.0f} |"
        )
    lines.append(
        f"\nScore 100 (R - R_random) / (R_expert - R_random), R_random = {random_return:.1f}, "
        f"R_expert = {expert_return:.1f}."
    )
    return "\n".join(lines)


def random_act(space):
    def act(_, obs, key, deterministic):
        return jax.vmap(space.sample)(jax.random.split(key, obs.shape[0]))

    return act


def train_behaviour(env, params, args):
    """SAC with an evaluation per chunk; the medium snapshot is policy + replay buffer."""
    module = agents.get("sac")
    config = module.Config(
        total_steps=args.expert_steps, num_steps=200, learning_starts=1_000,
        buffer_size=args.expert_steps, hidden_sizes=(args.width, args.width), batch_size=128,
        num_eval_episodes=16,
    )  # fmt: skip
    agent = module.make_agent(config, env, params)
    state = jax.jit(agent.init)(jax.random.PRNGKey(args.seed), config, None)
    chunk = max(1, agent.num_iterations // 20)
    run_chunk = jax.jit(lambda s: jax.lax.scan(lambda c, _: agent.update(c, None), s, None, chunk))
    evaluate = jax.jit(agent.evaluate)
    random_return = float(
        evaluate_policy(random_act(env.action_space(params)), None, jax.random.PRNGKey(1), env,
                        params, 32)["eval/deterministic_return"]
    )  # fmt: skip
    snapshots = []  # (state, score) after every chunk: medium is chosen once expert is known
    for i in range(agent.num_iterations // chunk):
        state, _ = run_chunk(state)
        score = float(evaluate(state, jax.random.PRNGKey(100 + i))[agent.score_key])
        print(f"  sac chunk {i}: {score:.1f}", flush=True)
        snapshots.append((jax.device_get(state), score))
    if args.expert_policy == "best":  # SAC's returns swing between chunks on Brax
        state = max(snapshots, key=lambda snap: snap[1])[0]
    expert_return = float(evaluate(state, jax.random.PRNGKey(7))[agent.score_key])
    reference = expert_return if args.expert_reference is None else args.expert_reference
    target = random_return + (reference - random_return) / 3.0
    medium = next((snap for snap in snapshots if snap[1] >= target), None)
    if medium is None:
        raise SystemExit(
            f"SAC never reached the medium level ({target:.1f}); raise --expert_steps or "
            "lower --expert_reference"
        )
    return agent, jax.device_get(state), medium, random_return, expert_return


def make_levels(env, params, args, out):
    from rlzoo.collect import replay_dataset

    agent, expert_state, (medium_state, medium_score), random_return, expert_return = (
        train_behaviour(env, params, args)
    )
    num_envs = 10
    steps = args.transitions // num_envs

    def roll(act, policy, key):
        fn = jax.jit(lambda k: collect_transitions(k, env, params, act, policy, num_envs, steps)[0])
        return jax.device_get(fn(jax.random.PRNGKey(key)))

    space = env.action_space(params)
    levels = {
        "random": (roll(random_act(space), None, 10), num_envs),
        "medium": (roll(agent.act, agent.policy_params(medium_state), 11), num_envs),
        "expert": (roll(agent.act, agent.policy_params(expert_state), 12), num_envs),
        "medium-replay": replay_dataset(medium_state, env, params),
    }
    medium, expert = levels["medium"][0], levels["expert"][0]
    levels["medium-expert"] = ({k: np.concatenate([medium[k], expert[k]]) for k in medium},
                               2 * num_envs)  # fmt: skip
    os.environ["MINARI_DATASETS_PATH"] = str(out / "minari")
    name = args.env.split("/")[-1].lower()
    ids = {}
    for level, (data, blocks) in levels.items():
        dataset_id = f"rlzoo/{name}/{level}-v0"
        if not (out / "minari" / dataset_id).exists():
            write_minari(dataset_id, data, args.env, policy=f"sac {level}", num_envs=blocks,
                         random_return=random_return, expert_return=expert_return)  # fmt: skip
        ids[level] = dataset_id
    print(f"random {random_return:.1f}, medium {medium_score:.1f}, expert {expert_return:.1f}")
    return ids, random_return, expert_return


_PROGRAMS: dict = {}  # (agent, sampler) -> (agent, jitted train, jitted evaluate)


def score_agent(name, env_id, env, params, data, args, sampler="uniform"):
    """Train ``args.seeds`` seeds in one program; levels of equal size reuse its compile."""
    if (name, sampler) not in _PROGRAMS:
        _PROGRAMS[name, sampler] = build_program(name, env_id, env, params, args, sampler)
    agent, train, evaluate = _PROGRAMS[name, sampler]
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
    state, _ = train(keys, data)
    results = evaluate(state, jax.random.split(jax.random.PRNGKey(99), args.seeds), data)
    return np.asarray(results[agent.score_key])


def build_program(name, env_id, env, params, args, sampler):
    module = agents.get(name)
    overrides = dict(
        total_steps=args.offline_steps, updates_per_iteration=args.offline_steps // 4,
        num_eval_episodes=16,
    )  # fmt: skip
    if name in DIFFUSION:
        overrides.update(hidden_size=args.width, num_blocks=1,
                         critic_hidden_sizes=(args.width, args.width))  # fmt: skip
    else:
        overrides["hidden_sizes"] = (args.width, args.width)
    if name == "fql":
        overrides.update(normalize_q_loss=True, alpha=args.fql_alpha)
    if name != "bc":
        overrides["sampler"] = sampler
    if name == "a2pr":
        overrides["vae_hidden_sizes"] = (2 * args.width, 2 * args.width)
    config = resolve_config(module, env_id, overrides)
    agent = module.make_agent(config, env, params)
    run = jax.vmap(module.make_train(config, env, params), in_axes=(0, None, None))
    train = jax.jit(lambda keys, data: run(keys, config, data))
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, 0, None)))
    return agent, train, evaluate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="gymnax/Pendulum-v1")
    parser.add_argument(
        "--expert_reference", type=float, default=None,
        help="return that defines medium (a third of the way from random); default: the "
        "final SAC policy's own return",
    )  # fmt: skip
    parser.add_argument("--expert_steps", type=int, default=30_000)
    parser.add_argument(
        "--expert_policy", choices=("best", "final"), default="best",
        help="expert level: the best-evaluated SAC chunk or the final one",
    )  # fmt: skip
    parser.add_argument("--transitions", type=int, default=20_000)
    parser.add_argument("--offline_steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agents", default=",".join(OFFLINE), help="comma-separated")
    parser.add_argument("--levels", default="random,medium,expert,medium-replay,medium-expert")
    parser.add_argument("--record_name", default="offline_suite")
    parser.add_argument("--fql_alpha", type=float, default=0.3)
    parser.add_argument("--out", default="runs/offline_suite")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env, params = envs.make(args.env)
    start = time.perf_counter()
    ids, random_return, expert_return = make_levels(env, params, args, out)
    rows = []
    names = args.agents.split(",")
    for level in args.levels.split(","):
        data = load_dataset(f"minari:{ids[level]}")
        runs = [(name, "uniform") for name in names]
        if level in MIXED:
            runs += [(name, "return") for name in WEIGHTED if name in names]
        for name, sampler in runs:
            run_start = time.perf_counter()
            returns = score_agent(name, args.env, env, params, data, args, sampler)
            seconds = time.perf_counter() - run_start
            scores = normalized_score(returns, random_return, expert_return)
            interval = mean_interval(scores)
            label = name if sampler == "uniform" else f"{name}+RW"
            rows.append(
                dict(level=level, agent=label, mean=interval.estimate, low=interval.low,
                     high=interval.high, scores=scores.tolist(), seconds=seconds)
            )  # fmt: skip
            print(f"  {level:14s} {label:10s} {interval.estimate:6.1f} "
                  f"[{interval.low:6.1f}, {interval.high:6.1f}]", flush=True)  # fmt: skip
    table = score_table(rows, args.seeds, random_return, expert_return)
    print(table)
    summary = dict(vars(args), random_return=random_return, expert_return=expert_return,
                   wall_seconds=time.perf_counter() - start, rows=rows, table=table)  # fmt: skip
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    record(args.record_name, summary)


if __name__ == "__main__":
    main()
