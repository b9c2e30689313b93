"""Symmetric clipping vs DAPO clip-higher vs BAPO under off-policy data, on a token task.

Per base seed (``--base_seeds``, 4 by default), one SFT base policy (noisy demonstrations, so
pass@1 is far from perfect) is the starting point and KL reference of the GRPO runs. From each
base, each clipping rule trains ``--num_seeds`` seeds in one program (``jit(vmap(...))`` over
keys, the base shared as ``data``; compiled once per rule) with stale rollouts (the policy
from ``--staleness`` updates ago samples) and ``--num_epochs`` x ``--num_minibatches`` SGD
steps per batch. Every ``--eval_every`` iterations all seeds are evaluated on held-out
prompts.

Recorded per rule, over all bases x seeds: final held-out pass@1 (mean, IQM with its 95%
interval, minimum, mean per base), held-out pass@1 and policy entropy over training (mean
and a 95% bootstrap interval over runs), the BAPO bounds chosen, clip fractions, and the spread of
final accuracies (training stability). The BAPO paper claims fixed clipping drives entropy
down under off-policy data and BAPO keeps it up; this script reports what it finds.

    python experiments/grpo_clipping.py [--task=tokens/reverse-4] [--num_seeds=8] \
        [--base_seeds=0,1,2,3] [--rules=ppo_clip,clip_higher,bapo,bapo_absolute] \
        [--record_name=grpo_clipping_<task>]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from common import RESULTS, record

from rlzoo import envs
from rlzoo.agents import grpo, sft
from rlzoo.analysis import stats

# Arm name -> grpo config fields. ``bapo`` reads rho as the paper writes it (a signed sum in
# the denominator, so rho passes 1 once positives outweigh half the negatives);
# ``bapo_absolute`` sums magnitudes, a share in [0, 1] that moves the bounds more often.
RULES = {
    "ppo_clip": dict(policy_loss="ppo_clip"),
    "clip_higher": dict(policy_loss="clip_higher"),
    "bapo": dict(policy_loss="bapo"),
    "bapo_absolute": dict(policy_loss="bapo", bapo_share="absolute"),
}


def bootstrap_mean(values: np.ndarray, reps: int = 2000, seed: int = 0) -> list[float]:
    """Mean over seeds (last axis) with a 95% percentile bootstrap interval."""
    rng = np.random.default_rng(seed)
    values = np.asarray(values, np.float64)
    idx = rng.integers(0, values.shape[-1], (reps, values.shape[-1]))
    means = values[..., idx].mean(-1)
    return [
        float(values.mean()),
        float(np.percentile(means, 2.5)),
        float(np.percentile(means, 97.5)),
    ]


def train_base(env, params, args, seed: int):
    cfg = sft.Config(
        total_steps=args.sft_steps,
        updates_per_iteration=args.sft_steps,
        batch_size=64,
        demo_noise=args.demo_noise,
        d_model=args.d_model,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        num_eval_episodes=args.eval_prompts,
    )
    agent = sft.make_agent(cfg, env, params)
    state, _ = jax.jit(sft.make_train(cfg, env, params))(jax.random.PRNGKey(seed))
    evaluation = jax.jit(agent.evaluate)(state, jax.random.PRNGKey(12345), None)
    return grpo.data_from_sft_state(state), {k: float(v) for k, v in evaluation.items()}


_PROGRAMS: dict = {}


def rule_programs(rule: str, env, params, args):
    """The config and compiled programs of one rule, built once and shared by every base."""
    if rule in _PROGRAMS:
        return _PROGRAMS[rule]
    cfg = grpo.Config(
        **RULES[rule],
        total_steps=args.iterations * args.num_prompts * args.group_size,
        num_prompts=args.num_prompts,
        group_size=args.group_size,
        num_epochs=args.num_epochs,
        num_minibatches=args.num_minibatches,
        staleness=args.staleness,
        learning_rate=args.learning_rate,
        kl_coef=args.kl_coef,
        d_model=args.d_model,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        num_eval_episodes=args.eval_prompts,
    )
    agent = grpo.make_agent(cfg, env, params)
    init = jax.jit(jax.vmap(agent.init, in_axes=(0, None, None)))
    chunk = jax.jit(
        jax.vmap(
            lambda s, d: jax.lax.scan(lambda c, _: agent.update(c, d), s, None, args.eval_every),
            in_axes=(0, None),
        )
    )
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, None, None)))
    _PROGRAMS[rule] = cfg, init, chunk, evaluate
    return _PROGRAMS[rule]


def run_rule(rule, env, params, data, args, seed: int):
    """``--num_seeds`` GRPO runs of one rule from one base, in one program."""
    cfg, init, chunk, evaluate = rule_programs(rule, env, params, args)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), args.num_seeds)
    state = init(keys, cfg, data)
    curves = {"eval/pass@1": [], "eval/pass@k": []}
    metrics_all = []
    start = time.perf_counter()
    eval_key = jax.random.PRNGKey(777)
    first = evaluate(state, eval_key, data)
    for name in curves:
        curves[name].append(np.asarray(first[name]))
    for _ in range(args.iterations // args.eval_every):
        state, metrics = chunk(state, data)
        metrics_all.append(jax.device_get(metrics))
        evaluation = evaluate(state, eval_key, data)
        for name in curves:
            curves[name].append(np.asarray(evaluation[name]))
    seconds = time.perf_counter() - start
    metrics = {k: np.concatenate([m[k] for m in metrics_all], axis=1) for k in metrics_all[0]}
    return curves, metrics, seconds


def summarise(curves, metrics, eval_every, num_bases: int):
    entropy = metrics["policy/entropy"]  # [runs, iterations], runs = bases x seeds
    pass1 = np.stack(curves["eval/pass@1"], axis=1)  # [runs, evaluations]
    final = pass1[:, -1]
    return {
        "final_pass@1": {
            "mean": float(final.mean()),
            "iqm": stats.aggregate_intervals(final[:, None], threshold=None)["iqm"].to_dict(),
            "min": float(final.min()),
            "mean_per_base": final.reshape(num_bases, -1).mean(1).round(4).tolist(),
        },
        "eval_iterations": [i * eval_every for i in range(pass1.shape[1])],
        "heldout_pass@1": [bootstrap_mean(pass1[:, j]) for j in range(pass1.shape[1])],
        "heldout_pass@k_final": bootstrap_mean(np.stack(curves["eval/pass@k"], 1)[:, -1]),
        "entropy": [bootstrap_mean(entropy[:, i]) for i in range(entropy.shape[1])],
        # Training prompts' solve rate per iteration (rollout/solved), mean over runs.
        "train_solved": metrics["rollout/solved"].mean(0).round(4).tolist(),
        "final_pass@1_per_seed": pass1[:, -1].round(4).tolist(),
        "final_pass@1_std_over_seeds": float(pass1[:, -1].std()),
        "worst_drop_from_peak": float(np.max(pass1.max(1) - pass1[:, -1])),
        "clip_low_mean": float(metrics["policy/clip_low"].mean()),
        "clip_high_mean": float(metrics["policy/clip_high"].mean()),
        "clip_frac_low_mean": float(metrics["policy/clip_frac_low"].mean()),
        "clip_frac_high_mean": float(metrics["policy/clip_frac_high"].mean()),
        "rho_mean": float(metrics["policy/rho"].mean()),
        "grad_norm_max": float(metrics["policy/grad_norm"].max()),
    }


def table(results: dict, bases: list[dict], args) -> str:
    runs = len(bases) * args.num_seeds
    lines = [
        f"| rule | final held-out pass@1, mean over {runs} runs | IQM [95% CI] | min run "
        "| mean per base | worst drop of a run from its peak | final entropy, mean [95% CI] "
        "| mean clip_low / clip_high | mean rho |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rule, r in results.items():
        final = r["final_pass@1"]
        iqm = final["iqm"]
        ent, ent_low, ent_high = r["entropy"][-1]
        per_base = ", ".join(f"{x:.2f}" for x in final["mean_per_base"])
        lines.append(
            f"| `{rule}` | {final['mean']:.3f} | {iqm['estimate']:.3f} "
            f"[{iqm['low']:.3f}, {iqm['high']:.3f}] | {final['min']:.3f} | {per_base} | "
            f"{r['worst_drop_from_peak']:.3f} | {ent:.3f} [{ent_low:.3f}, {ent_high:.3f}] | "
            f"{r['clip_low_mean']:.2f} / {r['clip_high_mean']:.2f} | {r['rho_mean']:.2f} |"
        )
    base_pass = ", ".join(f"{b['eval/pass@1']:.2f}" for b in bases)
    return "\n".join(lines) + (
        f"\n\n`{args.task}` (vocab {args.vocab}); {len(bases)} SFT bases (base seeds "
        f"{args.base_seeds}; {args.sft_steps} SFT steps on demonstrations with noise "
        f"{args.demo_noise}; held-out pass@1 {base_pass}) x {args.num_seeds} GRPO seeds in one "
        f"program per rule and base; {args.iterations} GRPO iterations of {args.num_prompts} "
        f"prompts x {args.group_size} completions, staleness {args.staleness}, "
        f"{args.num_epochs} epochs x {args.num_minibatches} minibatches; {args.eval_prompts} "
        "held-out prompts. Intervals: IQM, stratified bootstrap (rliable); entropy, "
        "percentile bootstrap of the mean over runs."
    )


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_ent) = plt.subplots(1, 2, figsize=(10, 4))
    for rule, res in results.items():
        x = res["eval_iterations"]
        mean, low, high = np.array(res["heldout_pass@1"]).T
        ax_acc.plot(x, mean, label=rule)
        ax_acc.fill_between(x, low, high, alpha=0.2)
        mean, low, high = np.array(res["entropy"]).T
        ax_ent.plot(np.arange(1, len(mean) + 1), mean, label=rule)
        ax_ent.fill_between(np.arange(1, len(mean) + 1), low, high, alpha=0.2)
    ax_acc.set(xlabel="GRPO iteration", ylabel="held-out pass@1", title="accuracy (95% CI)")
    ax_ent.set(xlabel="GRPO iteration", ylabel="token entropy (nats)", title="entropy (95% CI)")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="tokens/reverse-4")
    parser.add_argument("--vocab", type=int, default=6)
    parser.add_argument("--num_seeds", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--eval_every", type=int, default=10)
    parser.add_argument("--num_prompts", type=int, default=16)
    parser.add_argument("--group_size", type=int, default=8)
    parser.add_argument("--num_epochs", type=int, default=4)
    parser.add_argument("--num_minibatches", type=int, default=4)
    parser.add_argument("--staleness", type=int, default=2)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--kl_coef", type=float, default=0.0)
    parser.add_argument("--sft_steps", type=int, default=300)
    parser.add_argument("--demo_noise", type=float, default=0.3)
    parser.add_argument("--d_model", type=int, default=32)
    parser.add_argument("--num_layers", type=int, default=2)
    parser.add_argument("--num_heads", type=int, default=2)
    parser.add_argument("--eval_prompts", type=int, default=64)
    parser.add_argument("--base_seeds", default="0,1,2,3", help="one SFT base per seed")
    parser.add_argument("--rules", default=",".join(RULES), help=f"of {', '.join(RULES)}")
    parser.add_argument("--record_name", default="", help="default grpo_clipping_<task>")
    args = parser.parse_args()
    rules = args.rules.split(",")
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        parser.error(f"unknown rule(s) {unknown}; known: {', '.join(RULES)}")

    base_seeds = [int(x) for x in args.base_seeds.split(",")]
    env, params = envs.make(args.task, vocab=args.vocab)
    bases, by_rule, timings = [], {rule: [] for rule in rules}, {rule: 0.0 for rule in rules}
    for seed in base_seeds:
        data, base_eval = train_base(env, params, args, seed)
        bases.append(base_eval)
        print("base", seed, base_eval, flush=True)
        for rule in rules:
            curves, metrics, seconds = run_rule(rule, env, params, data, args, seed)
            by_rule[rule].append((curves, metrics))
            timings[rule] += seconds
            print(seed, rule, curves["eval/pass@1"][-1].mean().round(3), flush=True)
    results = {}
    for rule, runs in by_rule.items():  # runs ordered base by base, seeds within a base
        curves = {
            name: [
                np.concatenate([c[name][j] for c, _ in runs]) for j in range(len(runs[0][0][name]))
            ]
            for name in runs[0][0]
        }
        metrics = {k: np.concatenate([m[k] for _, m in runs]) for k in runs[0][1]}
        results[rule] = summarise(curves, metrics, args.eval_every, len(base_seeds))
    name = args.record_name or f"grpo_clipping_{args.task.split('/', 1)[1]}"
    plot(results, RESULTS / f"{name}.png")
    text = table(results, bases, args)
    print(text)
    record(
        name,
        {
            "args": vars(args),
            "bases": bases,
            "results": results,
            "seconds": timings,
            "table": text,
        },
    )


if __name__ == "__main__":
    main()
