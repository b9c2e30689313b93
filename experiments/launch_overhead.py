"""What one launch of the README's main command costs besides training, whole process.

1. Import: ``import rlzoo.train`` in a fresh interpreter (median of 5).
2. The compile cache: the main command (8-seed PPO, CartPole-v1, 5e5 env steps per seed)
   launched with an empty ``--compile_cache_dir`` and then again with the same one, in
   pairs; whole-process wall (spawn to exit), compile and training seconds from
   ``summary.json``, and what is left outside import, compile and training, split into
   building the env (which imports its library, gymnax), making the initial state (the
   init program's compile, or its load from the cache, and its run) and the rest
   (interpreter start, flags, the run directory's files, exit).
3. Seeds: 8 seeds vs 1 seed, whole process, compile cache off, in pairs.

    python experiments/launch_overhead.py [--pairs=2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import PYTHON, ROOT, record, timed_process

MAIN = [
    "-m", "rlzoo.train", "--agent=ppo", "--env=gymnax/CartPole-v1", "--progress=false",
    "--tensorboard=false",
]  # fmt: skip


def import_seconds() -> float:
    code = (
        "import time; t = time.perf_counter(); import rlzoo.train; print(time.perf_counter() - t)"
    )
    times = [
        float(subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()[-1])
        for _ in range(5)
    ]  # fmt: skip
    return statistics.median(times)


def launch(run_dir: Path, *flags: str) -> dict:
    result = timed_process([PYTHON, *MAIN, f"--run_dir={run_dir}", *flags])
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "wall_seconds": result["wall_seconds"],
        "compile_seconds": summary["compile_seconds"],
        "build_seconds": summary.get("build_seconds"),  # env and agent (a backend's import)
        "init_seconds": summary.get("init_seconds"),  # compiling and running init
        "train_seconds_after_compile": summary["train_seconds_after_compile"],
        "eval_seconds": summary["eval_seconds"],
        "final_eval_per_seed": summary["final_eval_per_seed"]["eval/deterministic_return"],
    }


def split(entry: dict) -> str:
    """Three cells: env build, initial state, and the rest of the time outside."""
    build, init = entry["build_seconds"], entry["init_seconds"]
    rest = entry["outside_import_compile_training"] - build - init
    return f"{build:.1f} | {init:.1f} | {rest:.1f}"


def table(imported: float, cache_pairs: list[dict], seed_pairs: list[dict]) -> str:
    lines = [
        "| launch | whole process (s) | compile (s) | training (s) | outside import, compile "
        "and training (s) | of which: env build (s) | initial state (s) | the rest (s) | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, pair in enumerate(cache_pairs):
        for name in ("first", "second"):
            e = pair[name]
            ratio = (
                f"{pair['second_over_first_wall']:.2f} (second / first)" if name == "second" else ""
            )
            lines.append(
                f"| pair {i}, {name} launch, 8 seeds | {e['wall_seconds']:.1f} | "
                f"{e['compile_seconds']:.1f} | {e['train_seconds_after_compile']:.1f} | "
                f"{e['outside_import_compile_training']:.1f} | {split(e)} | {ratio} |"
            )
    for i, pair in enumerate(seed_pairs):
        for name, label in (("one_seed", "1 seed"), ("eight_seeds", "8 seeds")):
            e = pair[name]
            outside = (
                e["wall_seconds"] - imported - e["compile_seconds"]
                - e["train_seconds_after_compile"]
            )  # fmt: skip
            ratio = (
                f"{pair['eight_over_one_wall']:.2f} (8 / 1 seeds)" if name == "eight_seeds" else ""
            )
            lines.append(
                f"| pair {i}, {label}, no compile cache | {e['wall_seconds']:.1f} | "
                f"{e['compile_seconds']:.1f} | {e['train_seconds_after_compile']:.1f} | "
                f"{outside:.1f} | {split(dict(e, outside_import_compile_training=outside))} "
                f"| {ratio} |"
            )
    return (
        f"`import rlzoo.train`: {imported:.2f} s (median of 5). The job: PPO on gymnax "
        "CartPole-v1, 5e5 env steps per seed.\n\n" + "\n".join(lines)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    imported = import_seconds()
    cache_pairs, seed_pairs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for p in range(args.pairs):
            cache = tmp / f"cache{p}"
            first = launch(
                tmp / f"first{p}",
                "--num_seeds=8",
                "--compile_cache=on",
                f"--compile_cache_dir={cache}",
            )
            second = launch(
                tmp / f"second{p}",
                "--num_seeds=8",
                "--compile_cache=on",
                f"--compile_cache_dir={cache}",
            )
            for entry in (first, second):
                entry["outside_import_compile_training"] = (
                    entry["wall_seconds"]
                    - imported
                    - entry["compile_seconds"]
                    - entry["train_seconds_after_compile"]
                )
            cache_pairs.append(
                {
                    "first": first,
                    "second": second,
                    "second_over_first_wall": second["wall_seconds"] / first["wall_seconds"],
                    "same_results": first["final_eval_per_seed"] == second["final_eval_per_seed"],
                }
            )
            print(json.dumps(cache_pairs[-1], indent=1), flush=True)
        for p in range(args.pairs):
            eight = launch(tmp / f"eight{p}", "--num_seeds=8", "--compile_cache=off")
            one = launch(tmp / f"one{p}", "--num_seeds=1", "--compile_cache=off")
            seed_pairs.append(
                {
                    "eight_seeds": eight,
                    "one_seed": one,
                    "eight_over_one_wall": eight["wall_seconds"] / one["wall_seconds"],
                }
            )
            print(json.dumps(seed_pairs[-1], indent=1), flush=True)
    record(
        "launch_overhead",
        {
            "job": "python -m rlzoo.train --agent=ppo --env=gymnax/CartPole-v1 --num_seeds=8",
            "import_rlzoo_train_seconds_median_of_5": imported,
            "compile_cache": cache_pairs,
            "seeds": seed_pairs,
            "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "table": table(imported, cache_pairs, seed_pairs),
        },
    )


if __name__ == "__main__":
    main()
