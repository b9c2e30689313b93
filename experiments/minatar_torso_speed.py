"""PPO training throughput on MinAtar: the CNN torso vs an MLP on flattened images.

For one MinAtar game, 8 seeds in one program with the shipped MinAtar preset (64 envs x
128 steps, 4 epochs x 8 minibatches), in this process on one host device per core:

* the env-only ceiling: the same vmapped env shape stepped with random actions;
* PPO with ``torso=cnn`` (the former preset: one 3x3 convolution, 16 channels, a 64-unit dense
  layer, shared by actor and critic) and with ``torso=flat_mlp`` (separate actor and
  critic MLPs on the flattened 10 x 10 x C image, ``--hidden_sizes``), alternating, each
  ``--repeats`` times. Throughput counts training chunks only (``chunk_seconds`` of
  ``summary.json``), not compile or evaluation.

This measures speed only; what each torso learns: ``experiments/ppo_minatar.py``.

    python experiments/minatar_torso_speed.py [--env=gymnax/Breakout-MinAtar]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import random_action_ceiling, record

NUM_ENVS, NUM_STEPS, NUM_SEEDS = 64, 128, 8


def ceiling(env_id: str, iterations: int) -> float:
    """Random-action env steps per second at the training program's vmapped shape."""
    return random_action_ceiling(env_id, NUM_ENVS, NUM_STEPS * iterations, NUM_SEEDS)[
        "env_steps_per_second"
    ]


def train(env_id: str, torso: str, hidden: tuple[int, ...], iterations: int, seed: int) -> dict:
    from rlzoo.launch.runner import RunSpec, run

    total = NUM_ENVS * NUM_STEPS * iterations
    overrides = {"torso": torso, "total_steps": total, "num_eval_episodes": 4}
    if torso == "flat_mlp":
        overrides |= {"hidden_sizes": hidden, "activation": "tanh"}
    else:  # the CNN as the preset had it: one 64-unit dense layer after the convolution
        overrides |= {"hidden_sizes": (64,)}
    with tempfile.TemporaryDirectory() as tmp:
        summary = run(
            RunSpec(
                env=env_id,
                num_seeds=NUM_SEEDS,
                seed=seed,
                overrides=overrides,
                run_dir=str(Path(tmp) / "run"),
                eval_every=total,  # one evaluation, at the end
            ),
            callbacks=[],
        )
    return {
        "torso": torso,
        "compile_seconds": summary["compile_seconds"],
        "chunk_seconds": summary["chunk_seconds"],
        "env_steps_per_second": NUM_SEEDS * total / summary["chunk_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="gymnax/Breakout-MinAtar")
    parser.add_argument("--iterations", type=int, default=8, help="PPO iterations per run")
    parser.add_argument("--hidden_sizes", default="64,64", help="flat_mlp layer sizes")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from rlzoo.launch import devices

    devices.request_cpu_devices(os.cpu_count() or 1)  # as the command line does
    hidden = tuple(int(h) for h in args.hidden_sizes.split(","))
    runs = []
    for repeat in range(args.repeats):
        for torso in ("cnn", "flat_mlp"):
            runs.append(train(args.env, torso, hidden, args.iterations, repeat))
            print(runs[-1], flush=True)
    limit = ceiling(args.env, args.iterations)
    lines = [
        "| torso | repeat | training env steps/s (8 seeds) | ceiling / training | compile (s) |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs):
        r["ceiling_over_training"] = limit / r["env_steps_per_second"]
        lines.append(
            f"| {r['torso']} | {i // 2} | {r['env_steps_per_second']:,.0f} | "
            f"{r['ceiling_over_training']:.0f}x | {r['compile_seconds']:.1f} |"
        )
    table = (
        f"{args.env}, 8 seeds, {NUM_ENVS} envs x {NUM_STEPS} steps, {args.iterations} "
        f"iterations per run; flat_mlp: {hidden} tanh. Random-action ceiling in the same "
        f"script: {limit:,.0f} env steps/s.\n\n" + "\n".join(lines)
    )
    name = args.env.split("/")[-1].lower().replace("-minatar", "")
    record(
        f"minatar_torso_speed_{name}",
        {"env": args.env, "ceiling_env_steps_per_second": limit, "runs": runs, "table": table},
    )
    print(table)


if __name__ == "__main__":
    main()
