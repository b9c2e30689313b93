"""PPO on Brax envs: rlzoo alone (inverted_pendulum) or next to Brax's own PPO trainer.

    # target: mean evaluation return >= 950 within 1e6 env steps
    python experiments/ppo_brax.py --env=inverted_pendulum --num_seeds=4
    # same env, env steps and hyperparameters as brax.training.agents.ppo, back to back
    python experiments/ppo_brax.py --env=hopper --num_seeds=3 --peer

With ``--peer`` the hyperparameters come from ``experiments/peers/brax_ppo_hparams.json``
(also read by ``experiments/peers/brax_ppo.py``) and are translated field by field into
rlzoo's PPO config (``brax_to_rlzoo``). rlzoo trains all seeds in one program; Brax's
trainer runs the seeds one after another. Both evaluate the stochastic policy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from common import PYTHON, ROOT, record, timed_process, train_cli

HPARAMS = ROOT / "experiments" / "peers" / "brax_ppo_hparams.json"


def brax_to_rlzoo(h: dict) -> dict:
    """Brax ``ppo.train`` arguments -> rlzoo ``ppo.Config`` fields.

    Brax collects ``batch_size * num_minibatches / num_envs`` unrolls of ``unroll_length``
    steps per update; rlzoo collects the same env steps as one rollout of ``num_steps``.
    """
    unrolls = h["batch_size"] * h["num_minibatches"] // h["num_envs"]
    return {
        "num_envs": h["num_envs"],
        "num_steps": h["unroll_length"] * unrolls,
        "num_minibatches": h["num_minibatches"],
        "num_epochs": h["num_updates_per_batch"],
        "learning_rate": h["learning_rate"],
        "anneal_lr": False,
        "ent_coef": h["entropy_cost"],
        "gamma": h["discounting"],
        "gae_lambda": h["gae_lambda"],
        "clip_eps": h["clipping_epsilon"],
        "vf_coef": h["vf_loss_coefficient"],
        "max_grad_norm": 1e9 if h["max_grad_norm"] is None else h["max_grad_norm"],
        "reward_scale": h["reward_scaling"],
        "normalize_observations": h["normalize_observations"],
        "normalize_advantages": h["normalize_advantage"],
        "hidden_sizes": tuple(h["policy_hidden_layer_sizes"]),
        "value_hidden_sizes": tuple(h["value_hidden_layer_sizes"]),
        "activation": {"swish": "silu"}.get(h["activation"], h["activation"]),
        "num_eval_episodes": h["num_eval_envs"],
        "total_steps": h["num_timesteps"],
    }


def config_flags(config: dict) -> list[str]:
    def fmt(v):
        return f"({','.join(map(str, v))},)" if isinstance(v, tuple) else str(v)

    return [f"--config.{k}={fmt(v)}" for k, v in config.items()]


def table(result: dict) -> str:
    lines = [
        "| env | trainer | seeds | env steps / seed | eval return (stochastic) per seed | mean "
        "| wall, all seeds (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("rlzoo", "brax_trainer"):
        if name not in result:
            continue
        r = result[name]
        per_seed = ", ".join(f"{x:.0f}" for x in r["stochastic_return_per_seed"])
        lines.append(
            f"| {result['env']} | {name} | {len(r['stochastic_return_per_seed'])} | "
            f"{r['env_steps_per_seed']:,} | {per_seed} | {r['stochastic_return_mean']:.1f} | "
            f"{r['process_wall_seconds_all_seeds']:.0f} |"
        )
    if "target" in result:
        det = result["rlzoo"]["deterministic_return_mean"]
        lines.append(
            f"\nDeterministic policy: mean {det:.1f}. Target: {result['target']}: "
            f"{'met' if result['met'] else 'NOT met'}."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="inverted_pendulum")
    parser.add_argument("--num_seeds", type=int, default=4)
    parser.add_argument("--total_steps", type=int, default=1_000_000)
    parser.add_argument("--peer", action="store_true", help="also run Brax's PPO trainer")
    parser.add_argument("--backend", default="positional")
    args = parser.parse_args()

    flags = [f"--env=brax/{args.env}", f"--num_seeds={args.num_seeds}", "--tensorboard=false"]
    result: dict = {"env": f"brax/{args.env}", "backend": args.backend}
    if args.peer:
        h = json.loads(HPARAMS.read_text())[args.env]
        config = brax_to_rlzoo(h)
        evals = max(2, h["num_evals"] - 1)
        flags += [
            f"--env_kwargs=backend={h['backend']},episode_length={h['episode_length']}",
            f"--eval_every={h['num_timesteps'] // evals}",
            *config_flags(config),
        ]
        result["brax_hparams"] = h
    else:
        flags += [
            f"--env_kwargs=backend={args.backend}",
            f"--total_steps={args.total_steps}",
        ]
    with tempfile.TemporaryDirectory() as tmp:
        summary, wall = train_cli(Path(tmp) / "run", *flags)
    stochastic = summary["final_eval_per_seed"]["eval/stochastic_return"]
    deterministic = summary["final_eval_per_seed"]["eval/deterministic_return"]
    result["rlzoo"] = {
        "command": "python -m rlzoo.train " + " ".join(flags),
        "env_steps_per_seed": summary["steps_per_seed"],
        "stochastic_return_per_seed": stochastic,
        "deterministic_return_per_seed": deterministic,
        "stochastic_return_mean": float(np.mean(stochastic)),
        "deterministic_return_mean": float(np.mean(deterministic)),
        "process_wall_seconds_all_seeds": wall,
        "compile_seconds": summary["compile_seconds"],
        "train_seconds_after_compile": summary["train_seconds_after_compile"],
    }
    if args.peer:
        seeds = ",".join(str(s) for s in range(args.num_seeds))
        out = Path(tempfile.mkdtemp()) / "brax.json"
        peer_cmd = [
            PYTHON,
            "experiments/peers/brax_ppo.py",
            f"--env={args.env}",
            f"--seeds={seeds}",
            f"--out={out}",
        ]
        peer_wall = timed_process(peer_cmd, timeout=7200)["wall_seconds"]
        peer = json.loads(out.read_text())
        returns = [r["final_eval_episode_reward"] for r in peer["runs"]]
        result["brax_trainer"] = {
            "command": " ".join(["python", *peer_cmd[1:]]),
            "env_steps_per_seed": peer["runs"][0]["env_steps"],
            "stochastic_return_per_seed": returns,
            "stochastic_return_mean": float(np.mean(returns)),
            "train_wall_seconds_per_seed": [r["train_wall_s"] for r in peer["runs"]],
            "process_wall_seconds_all_seeds": peer_wall,
        }
    else:
        result["target"] = "mean evaluation return >= 950 within 1e6 env steps"
        result["met"] = bool(np.mean(deterministic) >= 950 and np.mean(stochastic) >= 950)
    result["table"] = table(result)
    record(f"ppo_brax_{args.env}", result)
    print(json.dumps({k: v for k, v in result.items() if k != "brax_hparams"}, indent=1))


if __name__ == "__main__":
    main()
