"""PPO on one env per optional suite, with the shipped presets (``ppo.PRESETS``), 5 seeds.

For each env: ``ppo.default_config(env_id)`` with the budget in ``BUDGETS``, the
seeds trained in one ``jit(vmap(make_train))`` program, then ``evaluate`` per seed (the
deterministic and the sampling policy, ``num_eval_episodes`` each). Reported: final
evaluation return (mean and min / max over seeds), the same evaluation of the untrained
policy (iteration 0), the last rollout's episode return, budget, compile and wall time.
Each env runs in a fresh process.

The budgets are those of a small shared CPU (2 cores), orders of magnitude below the
suites' own PPO results, which the table quotes with their budgets.

    python experiments/ppo_suites.py [--suites=navix,xminigrid,...] [--num_seeds=5]
        [--total_steps=N] [--record_name=ppo_suites]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import PYTHON, record, timed_process

ENV_IDS = {
    "navix": "navix/Navix-Empty-8x8-v0",
    "xminigrid": "xminigrid/MiniGrid-Empty-8x8",
    "jumanji": "jumanji/Snake-v1",
    "craftax": "craftax/Craftax-Classic-Symbolic-v1",
    "playground": "playground/CartpoleBalance",
}
# Env steps per seed on this 2-core CPU (the presets' total_steps where they fit); Craftax
# steps at a few hundred env steps/s here (experiments/suites_speed.py), so it gets least.
BUDGETS = {
    "navix": 200_000,
    "xminigrid": 200_000,
    "jumanji": 100_352,
    "craftax": 16_384,
    "playground": 49_152,
}
# Fewer evaluation episodes where episodes are long or steps are slow.
EVAL_EPISODES = {"craftax": 4}
# What the suites' authors publish for PPO (budget per run), where we found it.
PUBLISHED = {
    "craftax": (
        "Craftax paper (Matthews et al., ICML 2024, arXiv:2402.16801): PPO on Craftax-Classic, "
        "1e9 env steps (under an hour on one GPU), about 90% of the optimal reward"
    ),
    "xminigrid": (
        "XLand-MiniGrid (Nikulin et al., 2023, arXiv:2312.12044) ships recurrent-PPO "
        "single-task baselines; we found no per-env return for MiniGrid-Empty-8x8 in the "
        "material we could search"
    ),
    "playground": (
        "MuJoCo Playground's PPO config for CartpoleBalance: 6e7 env steps, 2048 envs "
        "(dm_control_suite_params.brax_ppo_config)"
    ),
}


def row_in_fresh_process(script: str, flags: list[str], timeout: float) -> dict:
    """Run ``script --_out=<file> *flags`` and read the JSON row it writes (a file: rows
    are longer than ``timed_process``'s output tail); adds ``process_wall_seconds``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        probe = timed_process([PYTHON, script, *flags, f"--_out={out}"], timeout=timeout)
        row = json.loads(out.read_text())
    return {**row, "process_wall_seconds": probe["wall_seconds"]}


def one_suite(suite: str, num_seeds: int, total_steps: int | None) -> dict:
    import dataclasses

    import jax
    import numpy as np

    from rlzoo import envs
    from rlzoo.agents import ppo

    env_id = ENV_IDS[suite]
    env, params = envs.make(env_id)
    cfg = ppo.default_config(env_id)
    cfg = dataclasses.replace(cfg, total_steps=total_steps or BUDGETS[suite])
    if suite in EVAL_EPISODES:
        cfg = dataclasses.replace(cfg, num_eval_episodes=EVAL_EPISODES[suite])
    agent = ppo.make_agent(cfg, env, params)
    keys = jax.random.split(jax.random.key(0), num_seeds)
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, None)))
    initial = evaluate(jax.jit(jax.vmap(agent.init))(keys), jax.random.key(7))

    start = time.perf_counter()
    train = jax.jit(jax.vmap(ppo.make_train(cfg, env, params))).lower(keys).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    state, metrics = jax.block_until_ready(train(keys))
    train_seconds = time.perf_counter() - start
    final = evaluate(state, jax.random.key(7))

    def summary(values) -> dict:
        v = np.asarray(values, np.float64)
        return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}

    steps = agent.num_iterations * agent.steps_per_iteration
    return {
        "env_id": env_id,
        "config": dataclasses.asdict(cfg),
        "num_seeds": num_seeds,
        "env_steps_per_seed": steps,
        "compile_seconds": compile_seconds,
        "train_seconds": train_seconds,
        "train_env_steps_per_second": num_seeds * steps / train_seconds,
        "initial_eval": {k: summary(v) for k, v in initial.items()},
        "final_eval": {k: summary(v) for k, v in final.items()},
        "final_eval_per_seed": {k: np.asarray(v).tolist() for k, v in final.items()},
        "last_rollout_episode_return": summary(metrics["rollout/episode_return"][:, -1]),
        "first_rollout_episode_return": summary(metrics["rollout/episode_return"][:, 0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suites", default=",".join(ENV_IDS))
    parser.add_argument("--num_seeds", type=int, default=5)
    parser.add_argument("--total_steps", type=int, default=0, help="0: BUDGETS per suite")
    parser.add_argument("--record_name", default="ppo_suites", help="results file name")
    parser.add_argument("--_suite", default="", help=argparse.SUPPRESS)
    parser.add_argument("--_out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._suite:  # the row goes to a file: it is longer than timed_process's output tail
        row = one_suite(args._suite, args.num_seeds, args.total_steps or None)
        Path(args._out).write_text(json.dumps(row))
        return

    rows = {}
    for suite in args.suites.split(","):
        flags = [f"--_suite={suite}", f"--num_seeds={args.num_seeds}"]
        flags.append(f"--total_steps={args.total_steps}")
        rows[suite] = row_in_fresh_process(__file__, flags, timeout=3600)
        print(suite, json.dumps({k: v for k, v in rows[suite].items() if k != "config"}))

    def cell(s: dict) -> str:
        return f"{s['mean']:.2f} [{s['min']:.2f}, {s['max']:.2f}]"

    lines = [
        "| env | seeds | env steps / seed | untrained eval return (det / stoch) | "
        "trained eval return, deterministic | trained eval return, stochastic | "
        "compile (s) | train (s) | process wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        i, f = r["initial_eval"], r["final_eval"]
        lines.append(
            f"| `{r['env_id']}` | {r['num_seeds']} | {r['env_steps_per_seed']:,} | "
            f"{i['eval/deterministic_return']['mean']:.2f} / "
            f"{i['eval/stochastic_return']['mean']:.2f} | "
            f"{cell(f['eval/deterministic_return'])} | {cell(f['eval/stochastic_return'])} | "
            f"{r['compile_seconds']:.0f} | {r['train_seconds']:.0f} | "
            f"{r['process_wall_seconds']:.0f} |"
        )
    notes = [f"- {suite}: {text}" for suite, text in PUBLISHED.items() if suite in rows]
    table = "\n".join(lines) + (
        "\n\nReturns: mean [min, max] over seeds of each seed's mean over its evaluation "
        "episodes. Shipped presets (`ppo.PRESETS`), small budgets for a 2-core CPU shared "
        "with other jobs.\n\nPublished PPO results, for scale:\n" + "\n".join(notes)
    )
    record(args.record_name, {"num_seeds": args.num_seeds, "rows": rows, "table": table})
    print(table)


if __name__ == "__main__":
    main()
