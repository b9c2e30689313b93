"""Diffusion-QL's Q weight eta on one offline dataset: score and the critic's estimate.

    python experiments/diffusion_ql_eta.py --dataset=minari:rlzoo/pendulum-v1/medium-v0 \\
        --minari_path=runs/offline_suite/minari --etas=0,0.1,1 --seeds=4 --steps=10000

The dataset is one of ``experiments/offline_suite.py``'s levels (run that first; its
``--out``/minari holds them). For each eta, ``--seeds`` seeds of ``diffusion_ql`` in one
program with the suite's sizes (width 64), then both evaluation modes. The critic's mean Q
of the dataset actions (``value/q``) per logged iteration shows whether it stays in the
range the rewards allow: on Pendulum every reward is <= 0, so a positive Q has diverged.
"""

from __future__ import annotations

import argparse
import os

import jax
import numpy as np
from common import record

from rlzoo import envs
from rlzoo.agents import diffusion_ql
from rlzoo.analysis.stats import mean_interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="gymnax/Pendulum-v1")
    parser.add_argument("--dataset", default="minari:rlzoo/pendulum-v1/medium-v0")
    parser.add_argument("--minari_path", default="runs/offline_suite/minari")
    parser.add_argument("--etas", default="0,0.1,1")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()
    os.environ["MINARI_DATASETS_PATH"] = args.minari_path
    from rlzoo.data import load_dataset  # after the path is set

    env, params = envs.make(args.env)
    data = load_dataset(args.dataset)
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    rows, lines = (
        [],
        [
            "| eta | stochastic return (score), mean [95% CI] | deterministic return | "
            "critic's mean Q of dataset actions per fifth of training (mean over seeds) |",
            "|---|---|---|---|",
        ],
    )
    for eta in (float(x) for x in args.etas.split(",")):
        cfg = diffusion_ql.Config(
            total_steps=args.steps, updates_per_iteration=args.steps // 5, eta=eta,
            hidden_size=args.width, critic_hidden_sizes=(args.width, args.width),
        )  # fmt: skip
        agent = diffusion_ql.make_agent(cfg, env, params)
        train = jax.jit(
            jax.vmap(diffusion_ql.make_train(cfg, env, params), in_axes=(0, None, None))
        )
        state, metrics = train(keys, cfg, data)
        scores = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, 0, None)))(state, keys, data)
        stochastic = np.asarray(scores["eval/stochastic_return"])
        deterministic = np.asarray(scores["eval/deterministic_return"])
        q = np.asarray(metrics["value/q"]).mean(axis=0)
        ci = mean_interval(stochastic)
        rows.append(
            {"eta": eta, "stochastic": stochastic.tolist(),
             "deterministic": deterministic.tolist(), "q_per_iteration": q.tolist()}
        )  # fmt: skip
        lines.append(
            f"| {eta:g} | {ci.estimate:.1f} [{ci.low:.1f}, {ci.high:.1f}] | "
            f"{deterministic.mean():.1f} | {', '.join(f'{v:.1f}' for v in q)} |"
        )
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    record("diffusion_ql_eta", {"args": vars(args), "rows": rows, "table": table})


if __name__ == "__main__":
    main()
