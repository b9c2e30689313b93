"""An offline suite end to end: make the D4RL-style levels with SAC, then score every offline
agent on them (normalised score, mean and 95% bootstrap interval over seeds).

    python experiments/offline_suite.py --env=gymnax/Pendulum-v1 --expert_steps=30000 \\
        --transitions=20000 --offline_steps=20000 --seeds=5 --out=runs/offline_suite

Levels (D4RL's recipe): ``random`` (uniform actions), ``medium`` (the SAC policy at the
first of ``--sac_evaluations`` evenly spaced evaluations that reaches a third of the way
from random to ``--expert_reference``, by default the expert's return; with
``--medium=closest``, the evaluation before the expert's that is closest to that return),
``expert`` (the SAC policy of the best evaluation, or the final one with
``--expert_policy=final``; its return is measured again), ``medium-replay``
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
``results.json`` and the record after every agent-level run; a rerun with the same ``--out``
and arguments reuses the levels (``levels.json``) and the finished runs and goes on with the
rest. Small networks and budgets by default, so that it runs on a CPU.
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
    chunk = max(1, agent.num_iterations // args.sac_evaluations)
    run_chunk = jax.jit(lambda s: jax.lax.scan(lambda c, _: agent.update(c, None), s, None, chunk))
    evaluate = jax.jit(agent.evaluate)
    random_return = float(
        evaluate_policy(random_act(env.action_space(params)), None, jax.random.PRNGKey(1), env,
                        params, 32)["eval/deterministic_return"]
    )  # fmt: skip
    # Scores after every chunk; medium is chosen once the expert is known. The first chunk
    # above any threshold beats every chunk before it, so with --medium=first only those
    # states can become medium (or the best expert) and only they are kept on the host.
    scores, kept = [], {}
    for i in range(agent.num_iterations // chunk):
        state, _ = run_chunk(state)
        scores.append(float(evaluate(state, jax.random.PRNGKey(100 + i))[agent.score_key]))
        print(f"  sac chunk {i}: {scores[-1]:.1f}", flush=True)
        if args.medium == "closest" or scores[-1] > max(scores[:-1], default=-np.inf):
            kept[i] = jax.device_get(state)
    expert_index = len(scores) - 1
    if args.expert_policy == "best":  # SAC's returns swing between chunks on Brax
        expert_index = int(np.argmax(scores))
        state = kept[expert_index]
    expert_return = float(evaluate(state, jax.random.PRNGKey(7))[agent.score_key])
    reference = expert_return if args.expert_reference is None else args.expert_reference
    target = random_return + (reference - random_return) / 3.0
    if args.medium == "first":
        medium = next((i for i, score in enumerate(scores) if score >= target), None)
    else:  # a jump past the target in one chunk would make the first one the expert itself
        before = np.asarray(scores[:expert_index])
        medium = int(np.argmin(np.abs(before - target))) if before.size else None
    if medium is None:
        raise SystemExit(
            f"SAC never reached the medium level ({target:.1f}); raise --expert_steps or "
            "lower --expert_reference"
        )
    return (
        agent,
        jax.device_get(state),
        (kept[medium], scores[medium]),
        random_return,
        expert_return,
    )


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


def label(name: str, sampler: str) -> str:
    return name if sampler == "uniform" else f"{name}+RW"


def agent_runs(names: list[str], level: str) -> list[tuple[str, str]]:
    """(agent, sampler) pairs on a level: trajectory weighting too on the mixed ones."""
    runs = [(name, "uniform") for name in names]
    if level in MIXED:
        runs += [(name, "return") for name in WEIGHTED if name in names]
    return runs


# What the levels and the scores depend on: a rerun with the same values resumes.
LEVEL_ARGS = ("env", "expert_reference", "expert_steps", "expert_policy", "sac_evaluations",
              "medium", "transitions", "width", "seed")  # fmt: skip
# Levels saved before these flags existed were made with these values.
LEVEL_DEFAULTS = {"sac_evaluations": 20, "medium": "first"}
SCORE_ARGS = (*LEVEL_ARGS, "offline_steps", "seeds", "fql_alpha")


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def cached_levels(env, params, args, out: Path) -> tuple[dict, float, float]:
    """The levels of ``out`` if they were made with the same arguments, else new ones."""
    path = out / "levels.json"
    wanted = {key: getattr(args, key) for key in LEVEL_ARGS}
    if path.exists():
        saved = json.loads(path.read_text())
        if {**LEVEL_DEFAULTS, **saved["args"]} == wanted and all(
            (out / "minari" / i).exists() for i in saved["ids"].values()
        ):
            os.environ["MINARI_DATASETS_PATH"] = str(out / "minari")
            print(f"levels from {path} (random {saved['random_return']:.1f}, "
                  f"expert {saved['expert_return']:.1f})")  # fmt: skip
            return saved["ids"], saved["random_return"], saved["expert_return"]
        raise SystemExit(f"{out} holds levels made with other arguments ({saved['args']}); "
                         "pass another --out or delete it")  # fmt: skip
    ids, random_return, expert_return = make_levels(env, params, args, out)
    saved = dict(args=wanted, ids=ids, random_return=random_return, expert_return=expert_return)
    atomic_write(path, json.dumps(saved, indent=1))
    return ids, random_return, expert_return


def finished_rows(args, out: Path, random_return: float, expert_return: float) -> list[dict]:
    """Rows of an earlier run of the same suite in ``out``.

    None if its arguments differ or if its levels scored otherwise: remade levels (a fresh
    ``out`` holding only ``results.json``) must be the same datasets for old rows to count.
    """
    path = out / "results.json"
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    if any(saved.get(key, LEVEL_DEFAULTS.get(key)) != getattr(args, key) for key in SCORE_ARGS):
        return []
    if (saved["random_return"], saved["expert_return"]) != (random_return, expert_return):
        print(f"{path} was scored on other levels: its rows are not reused")
        return []
    return saved["rows"]


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
    parser.add_argument(
        "--sac_evaluations", type=int, default=LEVEL_DEFAULTS["sac_evaluations"],
        help="evaluations over SAC's run; medium and expert are chosen among them, so more "
        "of them find a medium policy where SAC's return jumps",
    )  # fmt: skip
    parser.add_argument(
        "--medium", choices=("first", "closest"), default=LEVEL_DEFAULTS["medium"],
        help="medium level: the first evaluation at or past a third of the way to the expert, "
        "or the one closest to that among the evaluations before the expert's",
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
    if args.sac_evaluations < 1:
        parser.error(f"--sac_evaluations={args.sac_evaluations}: SAC needs at least 1 evaluation")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env, params = envs.make(args.env)
    start = time.perf_counter()
    ids, random_return, expert_return = cached_levels(env, params, args, out)
    plan = [
        (level, label(name, sampler), name, sampler)
        for level in args.levels.split(",")
        for name, sampler in agent_runs(args.agents.split(","), level)
    ]
    order = {(level, run): i for i, (level, run, _, _) in enumerate(plan)}
    rows = [
        row
        for row in finished_rows(args, out, random_return, expert_return)
        if (row["level"], row["agent"]) in order
    ]
    done = {(row["level"], row["agent"]) for row in rows}

    def write() -> str:
        # After every run, so that a crash keeps what finished and a rerun resumes there.
        rows.sort(key=lambda row: order[row["level"], row["agent"]])
        table = score_table(rows, args.seeds, random_return, expert_return)
        if len(rows) < len(plan):
            table += f"\n\nPartial: {len(rows)} of {len(plan)} agent-level runs finished."
        summary = dict(
            vars(args), random_return=random_return, expert_return=expert_return, rows=rows,
            table=table, wall_seconds_this_process=time.perf_counter() - start,
        )  # fmt: skip
        atomic_write(out / "results.json", json.dumps(summary, indent=1))
        record(args.record_name, summary)
        return table

    datasets: dict = {}
    for level, run, name, sampler in plan:
        if (level, run) in done:
            print(f"  {level:14s} {run:10s} finished before: kept", flush=True)
            continue
        if level not in datasets:
            datasets = {level: load_dataset(f"minari:{ids[level]}")}  # one level in memory
        run_start = time.perf_counter()
        returns = score_agent(name, args.env, env, params, datasets[level], args, sampler)
        seconds = time.perf_counter() - run_start
        scores = normalized_score(returns, random_return, expert_return)
        interval = mean_interval(scores)
        rows.append(
            dict(level=level, agent=run, mean=interval.estimate, low=interval.low,
                 high=interval.high, scores=scores.tolist(), seconds=seconds)
        )  # fmt: skip
        print(f"  {level:14s} {run:10s} {interval.estimate:6.1f} "
              f"[{interval.low:6.1f}, {interval.high:6.1f}]", flush=True)  # fmt: skip
        write()
    print(write())


if __name__ == "__main__":
    main()
