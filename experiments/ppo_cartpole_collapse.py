"""When the CartPole-v1 preset's rare failures happen: late collapses, or never learning.

Runs ``python -m rlzoo.sweep --agent=ppo --env=gymnax/CartPole-v1 --num_seeds=N --seed=S``
(the main command's preset and budget, 5e5 env steps per seed; ``--sweep`` and ``--set``
change traced and static fields) into ``--run_dir`` and reads every evaluation of every
run from its metrics files. For each candidate: at each evaluation, the runs whose
deterministic and sampling-policy returns are below 475; and for each run that ends below
475, its best deterministic return before the end and the first evaluation at which it was
>= 475 (a run that had solved the task and lost it collapsed; one that never got there did
not learn).

    python experiments/ppo_cartpole_collapse.py [--seed=4] [--num_seeds=128] \
        [--sweep=ent_coef=0.0,0.003] [--set=normalize_advantages=false] \
        [--run_dir=runs/cartpole-collapse] [--record_name=ppo_cartpole_collapse]

A ``--run_dir`` holding the finished sweep of the same command is read, not run again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import PYTHON, record, timed_process
from ppo_cartpole_candidates import candidate_name, sweep_flags
from ppo_cartpole_robust import TARGET


def sweep_command(args: argparse.Namespace) -> list[str]:
    command = [
        PYTHON, "-m", "rlzoo.sweep", "--agent=ppo", "--env=gymnax/CartPole-v1",
        f"--num_seeds={args.num_seeds}", f"--seed={args.seed}", f"--run_dir={args.run_dir}",
        "--tensorboard=false", "--progress=false", *sweep_flags(args.sweep),
    ]  # fmt: skip
    command += [f"--config.{item}" for item in filter(None, args.set.split(","))]
    return command


def evaluations(group: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iterations ``[E]`` and deterministic / sampling returns ``[E, agents]``."""
    files = sorted((group / "metrics").glob("eval-*.npz"))
    if not files:
        raise SystemExit(f"no evaluations under {group}; is the sweep finished?")
    iterations = np.array([int(f.stem.split("-")[1]) for f in files])
    loaded = [np.load(f) for f in files]
    deterministic = np.stack([d["eval/deterministic_return"] for d in loaded])
    stochastic = np.stack([d["eval/stochastic_return"] for d in loaded])
    return iterations, deterministic, stochastic


def candidate_rows(iterations, deterministic, stochastic) -> dict:
    """One candidate's runs ``[E, seeds]``: failures per evaluation, and each final one."""

    def below(returns):
        return [int((r < TARGET).sum()) for r in returns]

    final = deterministic[-1]
    failures = []
    for run in np.flatnonzero(final < TARGET):
        solved = np.flatnonzero(deterministic[:-1, run] >= TARGET)
        failures.append(
            {
                "run": int(run),
                "final": float(final[run]),
                "final_stochastic": float(stochastic[-1, run]),
                "best_before": float(deterministic[:-1, run].max()),
                "first_solved_iteration": int(iterations[solved[0]]) if solved.size else None,
            }
        )
    return {
        "iterations": iterations.tolist(),
        "deterministic_below_475": below(deterministic),
        "stochastic_below_475": below(stochastic),
        "final_failures": failures,
        "collapsed": sum(f["first_solved_iteration"] is not None for f in failures),
    }


def describe(failure: dict) -> str:
    first = failure["first_solved_iteration"]
    when = f"first >= 475 at iteration {first}" if first is not None else "never >= 475"
    return f"{failure['final']:.0f} (best before {failure['best_before']:.0f}, {when})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--num_seeds", type=int, default=128)
    parser.add_argument("--sweep", default="learning_rate=1e-3")
    parser.add_argument("--set", default="", help="static fields: field=value,...")
    parser.add_argument("--run_dir", default="runs/cartpole-collapse")
    parser.add_argument("--record_name", default="ppo_cartpole_collapse")
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    wall = None
    if not (run_dir / "results.json").exists():
        wall = timed_process(sweep_command(args), timeout=4 * 3600)["wall_seconds"]
    sweep = json.loads((run_dir / "results.json").read_text())
    points = json.loads((run_dir / "sweep.json").read_text())["points"]
    group = run_dir / sweep["rows"][0]["run_dir"]
    iterations, deterministic, stochastic = evaluations(group)
    results, lines = {}, []
    for c, point in enumerate(points):  # agent a: seed a % num_seeds of point a // num_seeds
        runs = slice(c * args.num_seeds, (c + 1) * args.num_seeds)
        name = candidate_name(point) + (f" ({args.set})" if args.set else "")
        row = candidate_rows(iterations, deterministic[:, runs], stochastic[:, runs])
        results[name] = row
        described = "; ".join(describe(f) for f in row["final_failures"])
        lines.append(
            f"| {name} | {args.num_seeds} | "
            f"{', '.join(map(str, row['deterministic_below_475']))} | "
            f"{', '.join(map(str, row['stochastic_below_475']))} | "
            f"{row['collapsed']} of {len(row['final_failures'])} | {described or 'none'} |"
        )
    table = (
        f"Base seed {args.seed}, {args.num_seeds} seeds per candidate, 5e5 env steps per "
        f"seed, evaluations at iterations {', '.join(map(str, iterations))} (of "
        f"{iterations[-1]}); 32 episodes per evaluation and policy mode.\n\n"
        "| candidate | runs | deterministic runs < 475, per evaluation | sampling-policy "
        "runs < 475, per evaluation | final failures that had been >= 475 | final "
        "failures |\n|---|---|---|---|---|---|\n" + "\n".join(lines)
    )
    print(table)
    record(
        args.record_name,
        {"args": vars(args), "results": results, "sweep_wall_seconds": wall, "table": table},
    )


if __name__ == "__main__":
    main()
