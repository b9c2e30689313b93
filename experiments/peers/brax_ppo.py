"""Peer benchmark: brax's own PPO trainer (brax.training.agents.ppo.train).

Runs in the main venv (jax 0.9.2; brax 0.14.2's trainer calls
``jax.device_put_replicated``, which jax 0.10 removed). Hyperparameters come from
``experiments/peers/brax_ppo_hparams.json`` (keyed by env), which rlzoo's own
benchmark reads too, so both sides train with identical settings.

    python experiments/peers/brax_ppo.py --env hopper --seeds 0,1,2
    python experiments/peers/brax_ppo.py --env halfcheetah --seeds 0
    python experiments/peers/brax_ppo.py --env hopper --env_speed 128,256,512   # env only

Per seed it records the wall time of the ``ppo.train`` call (compile included), the
time from the call to the first progress callback (the initial evaluation, taken before
any training), an estimate of the training-step compile time (first training epoch
minus the second, from brax's own ``training/walltime``), every progress callback
(step, wall time, ``eval/episode_reward``...), the final ``eval/episode_reward`` and
the number of env steps done.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import os
import sys
import time

_T_PROCESS0 = time.time()

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HPARAMS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "brax_ppo_hparams.json")
RESULTS_DIR = os.path.join(REPO_ROOT, "experiments", "results", "peers")

# Keys of an env's entry that are passed to ppo.train unchanged.
TRAIN_KEYS = (
    "num_envs",
    "batch_size",
    "num_minibatches",
    "unroll_length",
    "num_updates_per_batch",
    "learning_rate",
    "entropy_cost",
    "discounting",
    "reward_scaling",
    "normalize_observations",
    "episode_length",
    "action_repeat",
    "clipping_epsilon",
    "gae_lambda",
    "max_grad_norm",
    "vf_loss_coefficient",
    "normalize_advantage",
    "num_evals",
    "num_eval_envs",
    "deterministic_eval",
)
# Keys passed to ppo_networks.make_ppo_networks.
NETWORK_KEYS = ("policy_hidden_layer_sizes", "value_hidden_layer_sizes", "activation")
NOTES = [
    "Seeds run one after another in one process; each ppo.train call compiles afresh.",
    "With jax 0.9.2 on CPU (JAX_LOG_COMPILES=1, hopper): the training epoch compiles "
    "twice (first and second call, ~26 s and ~29 s) and so does the evaluation unroll "
    "(~27 s and ~21 s); reset and init add ~22 s. Compilation is most of the wall time "
    "of these short runs. train_compile_estimate_s counts the training part only.",
    "time_to_first_progress_s is the initial evaluation (eval compile + one evaluation), "
    "taken before any training step.",
    "eval/episode_reward: brax Evaluator, num_eval_envs episodes of episode_length steps, "
    "stochastic policy unless deterministic_eval.",
]
# Progress metrics worth keeping (the rest are loss terms etc.).
KEEP_METRICS = (
    "eval/episode_reward",
    "eval/episode_reward_std",
    "eval/avg_episode_length",
    "eval/epoch_eval_time",
    "eval/walltime",
    "eval/sps",
    "training/sps",
    "training/walltime",
)


def machine_info() -> dict:
    """The machine description shared by every experiment script (stdlib only)."""
    sys.path.insert(0, os.path.join(REPO_ROOT, "experiments"))
    from common import machine

    return machine()


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("brax", "jax", "jaxlib", "flax", "optax", "mujoco", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def load_hparams(env_name: str, path: str = HPARAMS_PATH) -> dict:
    with open(path) as f:
        table = json.load(f)
    if env_name not in table:
        raise KeyError(
            f"{env_name!r} not in {path}; have {[k for k in table if not k.startswith('_')]}"
        )
    return table[env_name]


def to_float(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def measure_env_speed(env_name: str, backend: str, num_envs_list, steps: int = 200) -> list:
    """Random-action throughput of the training-wrapped env (auto-reset, vmapped)."""
    import jax
    from brax import envs

    env = envs.training.wrap(
        envs.get_environment(env_name, backend=backend), episode_length=1000, action_repeat=1
    )
    out = []
    for n in num_envs_list:
        reset = jax.jit(env.reset)

        @jax.jit
        def rollout(state, key, n=n):
            def body(carry, _):
                s, k = carry
                k, ka = jax.random.split(k)
                a = jax.random.uniform(ka, (n, env.action_size), minval=-1.0, maxval=1.0)
                return (env.step(s, a), k), None

            (state, key), _ = jax.lax.scan(body, (state, key), None, length=steps)
            return state, key

        key = jax.random.PRNGKey(0)
        state = reset(jax.random.split(key, n))
        # The state returned by env.step differs in weak types from the reset state,
        # so the second call compiles again: time only from the third call on.
        warm = []
        for _ in range(2):
            t0 = time.perf_counter()
            state, key = rollout(state, key)
            jax.block_until_ready(state.obs)
            warm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        state, key = rollout(state, key)
        jax.block_until_ready(state.obs)
        dt = time.perf_counter() - t0
        rec = {
            "num_envs": n,
            "steps_per_env": steps,
            "warmup_calls_s": warm,
            "run_s": dt,
            "env_steps_per_s": n * steps / dt,
        }
        print(
            f"[env_speed] {env_name}/{backend} num_envs={n}: {rec['env_steps_per_s']:.0f} steps/s",
            flush=True,
        )
        out.append(rec)
    return out


def epoch_stats(progress: list) -> dict:
    """Per-epoch training times from brax's cumulative ``training/walltime``.

    Evaluations are not included. Each epoch does the same number of env steps, so the
    fastest epoch after the first is taken as steady state; whatever the other epochs
    take beyond it is counted as compilation. (brax's training epoch compiles on its
    first call and, on this setup, again on its second call.)
    """
    out: dict = {}
    tw = [p.get("training/walltime") for p in progress if p["step"] > 0]
    if not tw or any(t is None for t in tw):
        return out
    epochs = [b - a for a, b in zip([0.0, *tw[:-1]], tw, strict=False)]
    out["training_epoch_s"] = epochs
    if len(epochs) >= 3:
        steady = min(epochs[1:])
        out["steady_epoch_s"] = steady
        out["train_compile_estimate_s"] = sum(e - steady for e in epochs)
        out["steady_train_env_steps_per_s"] = (progress[-1]["step"] / len(epochs)) / steady
    if progress:
        out["eval_total_s"] = progress[-1].get("eval/walltime")
    return out


def train_one_seed(env_name: str, backend: str, hp: dict, num_timesteps: int, seed: int) -> dict:
    from brax import envs
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo
    from flax import linen

    net_kwargs = {k: hp[k] for k in NETWORK_KEYS if k in hp}
    if "activation" in net_kwargs:
        net_kwargs["activation"] = getattr(linen, net_kwargs["activation"])
    for k in ("policy_hidden_layer_sizes", "value_hidden_layer_sizes"):
        if k in net_kwargs:
            net_kwargs[k] = tuple(net_kwargs[k])
    train_kwargs = {k: hp[k] for k in TRAIN_KEYS if k in hp}

    t0 = time.perf_counter()
    env = envs.get_environment(env_name, backend=backend)
    env_create_s = time.perf_counter() - t0

    progress = []
    load_start = os.getloadavg()
    t_call = time.perf_counter()

    def progress_fn(step, metrics):
        rec = {"step": int(step), "wall_s": time.perf_counter() - t_call}
        for k in KEEP_METRICS:
            if k in metrics:
                rec[k] = to_float(metrics[k])
        progress.append(rec)
        print(
            f"  seed={seed} step={rec['step']:>9d} t={rec['wall_s']:7.1f}s "
            f"eval/episode_reward={rec.get('eval/episode_reward', float('nan')):.1f}",
            flush=True,
        )

    _, _, final_metrics = ppo.train(
        environment=env,
        num_timesteps=num_timesteps,
        network_factory=functools.partial(ppo_networks.make_ppo_networks, **net_kwargs),
        seed=seed,
        progress_fn=progress_fn,
        **train_kwargs,
    )
    train_wall = time.perf_counter() - t_call

    rec = {
        "seed": seed,
        # 1-min load average before/after: other processes on this 2-core machine
        # slow the run down; a value well above 1 at the start means contention.
        "loadavg_1m_start": load_start[0],
        "loadavg_1m_end": os.getloadavg()[0],
        "env_create_s": env_create_s,
        "train_wall_s": train_wall,
        "time_to_first_progress_s": progress[0]["wall_s"] if progress else None,
        "env_steps": progress[-1]["step"] if progress else None,
        "final_eval_episode_reward": to_float(final_metrics.get("eval/episode_reward")),
        "final_eval_episode_reward_std": to_float(final_metrics.get("eval/episode_reward_std")),
        "progress": progress,
    }
    rec.update(epoch_stats(progress))
    return rec


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", default="hopper", choices=["hopper", "halfcheetah"])
    p.add_argument("--backend", default=None, help="default: the env's hparams entry (positional)")
    p.add_argument(
        "--num_timesteps",
        type=int,
        default=None,
        help="default: num_timesteps of the env's entry in the hparams file",
    )
    p.add_argument("--seeds", default="0", help="comma list, run one after another")
    p.add_argument("--hparams", default=HPARAMS_PATH)
    p.add_argument(
        "--env_speed",
        default="",
        help="comma list of num_envs: only measure random-action env throughput",
    )
    p.add_argument("--out", default=None)
    args = p.parse_args()

    import jax

    t_imported = time.time()
    hp = load_hparams(args.env, args.hparams)
    args.backend = args.backend or hp.get("backend", "positional")
    base = {
        "command": " ".join(
            [
                os.path.relpath(sys.executable, REPO_ROOT)
                if sys.executable.startswith(REPO_ROOT)
                else sys.executable,
                os.path.relpath(os.path.abspath(__file__), REPO_ROOT),
                *sys.argv[1:],
            ]
        ),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": package_versions(),
        "env": args.env,
        "backend": args.backend,
        "jax_devices": [str(d) for d in jax.devices()],
        "import_s": t_imported - _T_PROCESS0,
        "notes": NOTES,
    }

    if args.env_speed:
        sizes = [int(s) for s in args.env_speed.split(",") if s]
        base["env_speed"] = measure_env_speed(args.env, args.backend, sizes)
        out = args.out or os.path.join(RESULTS_DIR, f"brax_env_speed_{args.env}.json")
    else:
        num_timesteps = args.num_timesteps or hp["num_timesteps"]
        seeds = [int(s) for s in args.seeds.split(",") if s]
        base["num_timesteps"] = num_timesteps
        base["hparams"] = hp
        runs = []
        for s in seeds:
            print(
                f"[brax_ppo] env={args.env} backend={args.backend} seed={s} "
                f"num_timesteps={num_timesteps}",
                flush=True,
            )
            rec = train_one_seed(args.env, args.backend, hp, num_timesteps, s)
            print(
                f"[brax_ppo] seed={s} "
                f"final eval/episode_reward={rec['final_eval_episode_reward']:.1f} "
                f"wall={rec['train_wall_s']:.1f}s "
                f"first_progress={rec['time_to_first_progress_s']:.1f}s "
                f"steps={rec['env_steps']}",
                flush=True,
            )
            runs.append(rec)
            base["runs"] = runs  # keep partial results if a later seed is cut off
            _write(base, args.out or os.path.join(RESULTS_DIR, f"brax_ppo_{args.env}.json"))
        rets = [r["final_eval_episode_reward"] for r in runs]
        base["summary"] = {
            "num_seeds": len(runs),
            "final_eval_episode_reward_mean": sum(rets) / len(rets),
            "final_eval_episode_reward_per_seed": rets,
            "train_wall_s_per_seed": [r["train_wall_s"] for r in runs],
        }
        out = args.out or os.path.join(RESULTS_DIR, f"brax_ppo_{args.env}.json")
    base["process_wall_s"] = time.time() - _T_PROCESS0
    _write(base, out)
    print(f"wrote {out}")


def _write(obj: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
