"""SAC and TD3 on Brax locomotion: returns over seeds at a step budget, with the wall time.

For each agent and env: ``python -m rlzoo.train --agent=<sac|td3> --env=brax/<env>
--num_seeds=5 --total_steps=N --config.hidden_sizes=(W,W)`` with the shipped Brax preset
otherwise (8 envs per seed, 16 steps per iteration, 8,192 warm-up steps, one gradient step
per env step, batch 256). All seeds train in one program. Recorded per row: the final
deterministic evaluation per seed (mean, IQM with its 95% bootstrap interval over seeds,
minimum), the evaluation curve, the process wall time with its compile and training parts,
and two ceilings measured in this script:

- the env's random-action env steps/s at the training program's vmapped shape, next to
  training env steps/s;
- the learner's compute rate: XLA's FLOP count of one iteration of one env step and its
  gradient step (scans unrolled for the count) times training env steps/s, next to a
  jitted ``[batch, W] @ [W, W]`` matmul.

    python experiments/offpolicy_brax.py [--agents=sac,td3] [--envs=hopper,halfcheetah]
        [--total_steps=100000] [--width=64] [--seeds=5] [--seed=0]

Rows are recorded as they finish; a rerun with the same arguments skips finished rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from common import PYTHON, RESULTS, ROOT, eval_curve, record, train_cli

from rlzoo.analysis.stats import aggregate_intervals

RUN_ARGS = ("total_steps", "width", "seeds", "seed")


def fresh_process_json(code: str) -> dict:
    """Run ``code`` in a new process (one host device per core, like the runs)."""
    prelude = (
        "import os, json\nfrom rlzoo.launch.devices import request_cpu_devices\n"
        "request_cpu_devices(os.cpu_count() or 1)\n"
    )
    out = subprocess.run(
        [PYTHON, "-c", prelude + code],
        cwd=ROOT / "experiments", capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def ceiling(env_id: str, num_envs: int, num_seeds: int) -> float:
    code = (
        "from common import random_action_ceiling\n"
        f"print(json.dumps(random_action_ceiling({env_id!r}, {num_envs}, 1024, {num_seeds})))"
    )
    return fresh_process_json(code)["env_steps_per_second"]


def compute_probe(agent: str, env_id: str, width: int) -> dict:
    """FLOPs of one env step and its gradient step, and the matmul rate of one layer."""
    code = f"""
import jax
from diffusion_offline_speed import matmul_gflops, unrolled_scans
from rlzoo import agents, envs
from rlzoo.core.hparams import override
module = agents.get({agent!r})
env, params = envs.make({env_id!r})
config = override(module.default_config({env_id!r}), num_envs=1, num_steps=1,
                  hidden_sizes=({width}, {width}))
step = module.make_agent(config, env, params)
state = jax.jit(step.init)(jax.random.PRNGKey(0), config, None)
with unrolled_scans():
    cost = jax.jit(step.update).lower(state, None).compile().cost_analysis()
cost = cost[0] if isinstance(cost, list) else cost
print(json.dumps({{"flops_per_env_step": float(cost.get("flops", float("nan"))),
                  "matmul_gflops": matmul_gflops({width}, batch=config.batch_size)}}))
"""
    return fresh_process_json(code)


def run_row(agent: str, env: str, args) -> dict:
    env_id = f"brax/{env}"
    flags = [
        f"--agent={agent}", f"--env={env_id}", f"--num_seeds={args.seeds}", f"--seed={args.seed}",
        f"--total_steps={args.total_steps}", f"--eval_every={args.total_steps // 4}",
        f"--config.hidden_sizes=({args.width},{args.width})", "--tensorboard=false",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        summary, wall = train_cli(Path(tmp) / "run", *flags, timeout=4 * 3600)
        curve = eval_curve(Path(tmp) / "run", summary["score_key"])
    scores = summary["final_eval_per_seed"]["eval/deterministic_return"]
    iqm = aggregate_intervals([scores], threshold=None)["iqm"]
    steps = summary["steps_per_seed"]
    train_sps = args.seeds * steps / summary["chunk_seconds"]
    from rlzoo import agents

    preset = agents.get(agent).default_config(env_id)
    probe = compute_probe(agent, env_id, args.width)
    row = {
        "agent": agent,
        "env": env_id,
        "command": "python -m rlzoo.train " + " ".join(flags),
        "env_steps_per_seed": steps,
        "per_seed": scores,
        "stochastic_per_seed": summary["final_eval_per_seed"]["eval/stochastic_return"],
        "mean": float(np.mean(scores)),
        "iqm": iqm.estimate,
        "iqm_ci95": [iqm.low, iqm.high],
        "min": float(np.min(scores)),
        "best_eval_mean": max(float(np.mean(c["per_seed"])) for c in curve),
        "curve": curve,
        "process_wall_seconds": wall,
        "compile_seconds": summary["compile_seconds"],
        "train_seconds_after_compile": summary["train_seconds_after_compile"],
        "eval_seconds": summary["eval_seconds"],
        "train_env_steps_per_second": train_sps,
        "ceiling_env_steps_per_second": ceiling(env_id, preset.num_envs, args.seeds),
        **probe,
        "train_gflops": probe["flops_per_env_step"] * train_sps / 1e9,
    }
    print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
    return row


def table(rows: list[dict], args) -> str:
    lines = [
        "| agent | env | env steps / seed | final return: mean | IQM [95% CI] | min | best "
        "evaluation (mean) | wall, all seeds (s) | compile (s) | training env steps/s | "
        "random-action env steps/s | learner GFLOP/s | matmul GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['agent']} | {r['env']} | {r['env_steps_per_seed']:,} | {r['mean']:.1f} | "
            f"{r['iqm']:.1f} [{r['iqm_ci95'][0]:.1f}, {r['iqm_ci95'][1]:.1f}] | "
            f"{r['min']:.1f} | {r['best_eval_mean']:.1f} | {r['process_wall_seconds']:.0f} | "
            f"{r['compile_seconds']:.0f} | {r['train_env_steps_per_second']:,.0f} | "
            f"{r['ceiling_env_steps_per_second']:,.0f} | {r['train_gflops']:.1f} | "
            f"{r['matmul_gflops']:.0f} |"
        )
    return (
        f"{args.seeds} seeds per row in one program, hidden layers ({args.width}, "
        f"{args.width}), deterministic evaluation (16 episodes per seed, 1,000 steps each); "
        "the Brax preset otherwise.\n\n" + "\n".join(lines) + "\n\nLearner GFLOP/s: XLA's "
        "FLOP count of one env step with its gradient step, times training env steps/s. Matmul: "
        f"a jitted [batch, {args.width}] @ [{args.width}, {args.width}] loop at the same batch."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", default="sac,td3")
    parser.add_argument("--envs", default="hopper,halfcheetah")
    parser.add_argument("--total_steps", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record_name", default="offpolicy_brax")
    args = parser.parse_args()
    if args.seeds < 1 or args.total_steps < 4 or args.width < 1:
        parser.error("--seeds and --width must be at least 1 and --total_steps at least 4")
    settings = {k: getattr(args, k) for k in RUN_ARGS}
    previous = RESULTS / f"{args.record_name}.json"
    rows = []
    if previous.exists():
        old = json.loads(previous.read_text())
        if old.get("settings") == settings:
            rows = old["rows"]
    done = {(r["agent"], r["env"]) for r in rows}
    for agent in args.agents.split(","):
        for env in args.envs.split(","):
            if (agent, f"brax/{env}") in done:
                print(f"{agent} on brax/{env}: recorded, skipped")
                continue
            rows.append(run_row(agent, env, args))
            record(args.record_name, {"settings": settings, "rows": rows,
                                      "table": table(rows, args)})  # fmt: skip
    print(table(rows, args))


if __name__ == "__main__":
    main()
