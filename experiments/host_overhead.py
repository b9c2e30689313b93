"""Where a many-seed run spends its training phase, and what writing metrics costs the host.

1. PPO on gymnax CartPole-v1 with ``--num_seeds`` agents in one program, through the
   runner (``rlzoo.launch.runner.run``): the training phase (``train_seconds_after_compile``)
   next to its parts from ``summary.json``: the training chunks on the device (dispatch to
   metrics on the host, ``chunk_seconds``), evaluation, checkpoints and writing the metrics
   (``log_seconds``).
2. The same run's metrics arrays written two ways in this process: as ``metrics/`` files
   (what the runner does: one ``.npz`` per chunk) and as the JSON lines of run-directory
   format 2 (one ``json.dumps`` per iteration and agent, the writer the runner had before).

    python experiments/host_overhead.py [--num_seeds=1024] [--total_steps=20000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import CLASSIC_PRESET_BEFORE_2026_12_06, record


def format2_lines(metrics: dict[str, np.ndarray], first: int, per_iteration: int, n: int) -> str:
    """The format-2 writer: a dict per (iteration, agent), one ``json.dumps`` each."""
    columns = {name: v.tolist() for name, v in metrics.items()}
    num_agents, length = next(iter(metrics.values())).shape
    rows = [
        {
            "iteration": first + k,
            "seed": a % n,
            "config": a // n,
            "step": (first + k) * per_iteration,
        }
        | {name: column[a][k] for name, column in columns.items()}
        for k in range(length)
        for a in range(num_agents)
    ]
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def time_writers(run_dir: Path, num_seeds: int, per_iteration: int) -> dict:
    from rlzoo.analysis.logs import MetricsLog

    chunks = [
        (int(path.stem.split("-")[1]), dict(np.load(path)))
        for path in sorted((run_dir / "metrics").glob("train-*.npz"))
    ]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        log = MetricsLog(Path(tmp) / "metrics")
        start = time.perf_counter()
        for first, arrays in chunks:
            arrays.pop("iteration")
            log.append_train(first, arrays)
        out["arrays_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        with open(Path(tmp) / "metrics.jsonl", "a") as f:
            for first, arrays in chunks:
                f.write(format2_lines(arrays, first, per_iteration, num_seeds))
                f.flush()
        out["format2_jsonl_seconds"] = time.perf_counter() - start
    out["chunks"] = len(chunks)
    out["rows"] = sum(next(iter(a.values())).size for _, a in chunks)
    return out


def table(runs: list[dict], num_seeds: int) -> str:
    lines = [
        "| repeat | training phase (s) | training chunks (s) | evaluation (s) | writing metrics "
        "(s) | phase / (chunks + evaluation) | evaluation / chunks | format-2 rows would take (s) "
        "| env steps/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs):
        w = r["writers"]
        lines.append(
            f"| {i} | {r['train_seconds_after_compile']:.1f} | {r['chunk_seconds']:.1f} | "
            f"{r['eval_seconds']:.1f} | {r['log_seconds']:.3f} | "
            f"{r['training_phase_over_device_work']:.3f} | {r['eval_share_of_training']:.2f} | "
            f"{w['format2_jsonl_seconds']:.2f} ({w['format2_over_arrays']:.0f}x the arrays) | "
            f"{r['env_steps_per_second']:,.0f} |"
        )
    return f"PPO, gymnax CartPole-v1, {num_seeds} seeds in one program.\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_seeds", type=int, default=1024)
    parser.add_argument("--total_steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=4, help="and checkpoints, per run")
    args = parser.parse_args()

    from rlzoo.launch import devices

    devices.request_cpu_devices(os.cpu_count() or 1)  # as the command line does
    from rlzoo.launch.runner import RunSpec, run

    runs = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            spec = RunSpec(
                num_seeds=args.num_seeds,
                seed=repeat,
                overrides={"total_steps": args.total_steps, **CLASSIC_PRESET_BEFORE_2026_12_06},
                run_dir=str(Path(tmp) / "run"),
                eval_every=args.total_steps // args.evaluations,
            )
            summary = run(spec, callbacks=[])
            config = json.loads((Path(tmp) / "run" / "config.json").read_text())
            per_iteration = config["agent"]["steps_per_iteration"]
            keys = (
                "compile_seconds", "train_seconds_after_compile", "chunk_seconds",
                "eval_seconds", "checkpoint_seconds", "log_seconds",
            )  # fmt: skip
            entry = {k: summary[k] for k in keys}
            train = entry["train_seconds_after_compile"]
            entry["training_phase_over_device_work"] = train / (
                entry["chunk_seconds"] + entry["eval_seconds"]
            )
            entry["eval_share_of_training"] = entry["eval_seconds"] / entry["chunk_seconds"]
            entry["log_share_of_training_phase"] = entry["log_seconds"] / train
            entry["env_steps_per_second"] = (
                args.num_seeds * summary["steps_per_seed"] / entry["chunk_seconds"]
            )
            entry["final_return_mean"] = summary["final_eval"]["eval/deterministic_return"]["mean"]
            entry["writers"] = time_writers(Path(tmp) / "run", args.num_seeds, per_iteration)
            w = entry["writers"]
            w["format2_over_arrays"] = w["format2_jsonl_seconds"] / w["arrays_seconds"]
            w["format2_share_of_training_phase"] = w["format2_jsonl_seconds"] / train
            print(json.dumps(entry, indent=1))
            runs.append(entry)
    record(
        f"host_overhead_seeds{args.num_seeds}",
        {
            "env": "gymnax/CartPole-v1",
            "agent": "ppo",
            "num_seeds": args.num_seeds,
            "total_steps_per_seed": args.total_steps,
            "evaluations": args.evaluations,
            "runs": runs,
            "table": table(runs, args.num_seeds),
        },
    )


if __name__ == "__main__":
    main()
