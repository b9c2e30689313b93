"""Behaviour cloning from a PPO expert on gymnax CartPole-v1, through the data channel.

For each base seed: train one PPO expert in memory (shipped CartPole preset, 1e5 env
steps), roll its sampling policy into a dataset (8 envs x 500 steps = 4000 transitions),
then train BC on it with ``rlzoo.launch.runner.run`` (8 seeds in one program, 2000
gradient steps) and evaluate both policies for 32 episodes per seed.
Target: BC's mean deterministic return >= 80% of the expert's, every BC seed >= 50%.

    python experiments/bc_cartpole.py [--base_seeds=4] [--num_seeds=8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import jax
import numpy as np
from common import CLASSIC_PRESET_BEFORE_2026_12_06, record

from rlzoo import envs
from rlzoo.agents import ppo
from rlzoo.analysis.stats import aggregate_intervals
from rlzoo.data import collect_transitions
from rlzoo.launch.configs import resolve_config
from rlzoo.launch.runner import RunSpec, run

BC_STEPS = 2000


def expert_dataset(seed: int) -> tuple[dict, float]:
    env, params = envs.make("gymnax/CartPole-v1")
    overrides = {"total_steps": 100_352, **CLASSIC_PRESET_BEFORE_2026_12_06}
    config = resolve_config(ppo, "gymnax/CartPole-v1", overrides)
    agent = ppo.make_agent(config, env, params)
    state, _ = jax.jit(ppo.make_train(config, env, params))(jax.random.PRNGKey(seed))
    expert_return = agent.evaluate(state, jax.random.PRNGKey(seed + 10_000))
    collect = jax.jit(lambda key, p: collect_transitions(key, env, params, agent.act, p, 8, 500)[0])
    data = collect(jax.random.PRNGKey(seed + 20_000), agent.policy_params(state))
    return jax.device_get(data), float(expert_return["eval/deterministic_return"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base_seeds", type=int, default=4)
    parser.add_argument("--num_seeds", type=int, default=8)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for base in range(args.base_seeds):
            data, expert = expert_dataset(base)
            spec = RunSpec(
                agent="bc",
                num_seeds=args.num_seeds,
                seed=base,
                overrides={"total_steps": BC_STEPS, "updates_per_iteration": 250},
                run_dir=str(Path(tmp) / f"bc-{base}"),
            )
            summary = run(spec, data=data, callbacks=[])
            bc = summary["final_eval_per_seed"]["eval/deterministic_return"]
            rows.append({"base_seed": base, "expert_return": expert, "bc_returns": bc})
            print(f"base seed {base}: expert {expert:.1f}, BC {np.round(bc, 1).tolist()}")
    fractions = np.array([np.asarray(r["bc_returns"]) / r["expert_return"] for r in rows])
    intervals = aggregate_intervals(fractions.reshape(-1, 1), threshold=None)
    passed = bool(fractions.mean() >= 0.8 and fractions.min() >= 0.5)
    experts = [r["expert_return"] for r in rows]
    table = (
        "| runs (base seeds x seeds) | BC gradient steps | dataset | expert return per base seed "
        "| BC / expert: mean | IQM [95% CI] | min | target | met |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        f"| {fractions.size} ({len(rows)} x {args.num_seeds}) | {BC_STEPS:,} | 4000 transitions "
        f"of the PPO expert | {', '.join(f'{e:.0f}' for e in experts)} | "
        f"{fractions.mean():.3f} | {intervals['iqm'].estimate:.3f} "
        f"[{intervals['iqm'].low:.3f}, {intervals['iqm'].high:.3f}] | {fractions.min():.3f} "
        f"| mean >= 0.8, min >= 0.5 | {'yes' if passed else 'no'} |"
    )
    record("bc_cartpole", {"rows": rows, "passed": passed, "table": table})
    print(table)


if __name__ == "__main__":
    main()
