"""Peer benchmark: rejax PPO on gymnax CartPole-v1, vmapped over seeds.

Run with the separate rejax venv (see setup_rejax_venv.sh), e.g.

    .venv-rejax/bin/python experiments/peers/rejax_ppo_cartpole.py \
        --num_seeds 1,8,32 --fresh_process

For every seed count the whole training run (all seeds) is one jitted program,
``jax.jit(jax.vmap(algo.train))(keys)``, as rejax documents. Measured per seed count:

* ``lower_s`` / ``compile_s``: tracing+lowering and XLA compilation of that program;
* ``run_s``: wall time of each call of the compiled program, up to
  ``block_until_ready`` (the first call and, with ``--repeats`` > 1, calls with new keys);
* with ``--fresh_process``: each seed count runs in a new Python process and the parent
  records the process wall time from spawn to exit, and from spawn to the moment the
  first training result is ready (imports + setup + compile + one run).

rejax's periodic evaluation is made as rare as it can be: ``eval_freq = total_timesteps``
and ``skip_initial_evaluation=True`` leave exactly one evaluation (128 episodes, sampled
actions) at the end of training. Its mean return is reported as the final return. That
evaluation is part of the compiled program and therefore of ``run_s``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time

_T_IMPORT0 = time.time()

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "experiments", "results", "peers", "rejax_ppo_cartpole.json")

# PureJaxRL-style CartPole settings.
HPARAMS = {
    "env": "CartPole-v1",
    "num_envs": 4,
    "num_steps": 128,
    "num_epochs": 4,
    "num_minibatches": 4,
    "total_timesteps": 500_000,
    "learning_rate": 2.5e-4,
    "anneal_lr": True,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_eps": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "hidden_layer_sizes": [64, 64],
    "activation": "tanh",
}


def machine_info() -> dict:
    """The machine description shared by every experiment script (stdlib only)."""
    sys.path.insert(0, os.path.join(REPO_ROOT, "experiments"))
    from common import machine

    return machine()


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("rejax", "gymnax", "jax", "jaxlib", "flax", "optax", "distrax", "chex"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def make_lr(hp: dict):
    """Learning rate for rejax.

    rejax 0.1.3 has no option for annealing; it hands ``learning_rate`` straight to
    ``optax.adam``. A callable therefore works as an optax schedule. We use the
    PureJaxRL form: constant within an update round, decreasing linearly per round
    (one round = num_epochs * num_minibatches Adam steps) to zero.
    rejax keeps separate actor and critic TrainStates with the same optimizer, each
    stepped once per minibatch, so the Adam count means the same for both.
    """
    if not hp["anneal_lr"]:
        return hp["learning_rate"]
    import math

    import jax.numpy as jnp

    per_round = hp["num_epochs"] * hp["num_minibatches"]
    batch = hp["num_envs"] * hp["num_steps"]
    # rejax runs ceil(total_timesteps / batch) update rounds.
    num_rounds = math.ceil(hp["total_timesteps"] / batch)
    lr0 = hp["learning_rate"]

    def schedule(count):
        frac = 1.0 - (count // per_round) / num_rounds
        return lr0 * jnp.maximum(frac, 0.0)

    return schedule


def build_algo(hp: dict):
    from rejax import PPO

    return PPO.create(
        env=hp["env"],
        num_envs=hp["num_envs"],
        num_steps=hp["num_steps"],
        num_epochs=hp["num_epochs"],
        num_minibatches=hp["num_minibatches"],
        total_timesteps=hp["total_timesteps"],
        eval_freq=hp["total_timesteps"],
        skip_initial_evaluation=True,
        learning_rate=make_lr(hp),
        gamma=hp["gamma"],
        gae_lambda=hp["gae_lambda"],
        clip_eps=hp["clip_eps"],
        ent_coef=hp["ent_coef"],
        vf_coef=hp["vf_coef"],
        max_grad_norm=hp["max_grad_norm"],
        normalize_observations=False,
        normalize_rewards=False,
        agent_kwargs={
            "activation": hp["activation"],
            "hidden_layer_sizes": tuple(hp["hidden_layer_sizes"]),
        },
    )


def bench_one(num_seeds: int, repeats: int, seed: int, hp: dict) -> dict:
    """Compile and run the vmapped training program for ``num_seeds`` seeds."""
    import jax
    import numpy as np

    t_import_done = time.time()
    rec: dict = {"num_seeds": num_seeds, "import_s": t_import_done - _T_IMPORT0}
    # 1-min load average: other processes on the machine slow the run down.
    rec["loadavg_1m_start"] = os.getloadavg()[0]

    t0 = time.perf_counter()
    algo = build_algo(hp)
    train = jax.jit(jax.vmap(algo.train))
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    rec["setup_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lowered = train.lower(keys)
    rec["lower_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    rec["compile_s"] = time.perf_counter() - t0
    rec["lower_plus_compile_s"] = rec["lower_s"] + rec["compile_s"]

    run_s = []
    final_returns = []
    env_steps = None
    for r in range(repeats):
        k = keys if r == 0 else jax.random.split(jax.random.PRNGKey(seed + 1000 * r), num_seeds)
        t0 = time.perf_counter()
        ts, evaluation = compiled(k)
        jax.block_until_ready((ts, evaluation))
        run_s.append(time.perf_counter() - t0)
        if r == 0:
            rec["t_first_result_unix"] = time.time()
        # evaluation = (lengths, returns), shape (num_seeds, num_evals=1, 128 episodes)
        returns = np.asarray(evaluation[1])
        final_returns.append(returns[:, -1, :].mean(axis=-1).tolist())
        env_steps = np.asarray(ts.global_step).tolist()

    rec["run_s"] = run_s
    rec["loadavg_1m_end"] = os.getloadavg()[0]
    rec["run_first_s"] = run_s[0]
    if repeats > 1:
        rec["run_steady_s"] = float(np.median(run_s[1:]))
    rec["env_steps_per_seed"] = env_steps[0] if isinstance(env_steps, list) else env_steps
    steps = rec["env_steps_per_seed"] * num_seeds
    rec["env_steps_per_s_first_run"] = steps / run_s[0]
    # Per repeat: per-seed mean eval return (128 episodes each) at the end of training.
    rec["final_return_per_seed"] = final_returns
    flat = [x for rep in final_returns for x in rep]
    rec["final_return_mean"] = float(np.mean(flat))
    rec["final_return_min"] = float(np.min(flat))
    rec["jax_devices"] = [str(d) for d in jax.devices()]
    return rec


def run_fresh(num_seeds: int, args) -> dict:
    """Run one seed count in a new Python process and time it from spawn to exit."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_child",
        "--num_seeds",
        str(num_seeds),
        "--repeats",
        str(args.repeats),
        "--seed",
        str(args.seed),
        "--total_timesteps",
        str(HPARAMS["total_timesteps"]),
    ]
    if not HPARAMS["anneal_lr"]:
        cmd.append("--no_anneal_lr")
    t_spawn = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.child_timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"child for num_seeds={num_seeds} failed ({proc.returncode})")
    marker = "@@RESULT@@"
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith(marker)][-1]
    rec = json.loads(line[len(marker) :])
    rec["process_wall_s"] = wall
    rec["process_wall_to_first_result_s"] = rec.pop("t_first_result_unix") - t_spawn
    rec["child_command"] = " ".join(cmd)
    return rec


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--num_seeds", default="1,8,32", help="comma list of seed counts")
    p.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="calls of the compiled program per seed count (first + steady)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total_timesteps", type=int, default=HPARAMS["total_timesteps"])
    p.add_argument("--no_anneal_lr", action="store_true", help="constant learning rate")
    p.add_argument(
        "--fresh_process",
        action="store_true",
        help="run each seed count in a new process and record its wall time",
    )
    p.add_argument("--child_timeout", type=float, default=1800.0)
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()

    HPARAMS["total_timesteps"] = args.total_timesteps
    if args.no_anneal_lr:
        HPARAMS["anneal_lr"] = False
    seed_counts = [int(s) for s in args.num_seeds.split(",") if s]

    if args._child:
        rec = bench_one(seed_counts[0], args.repeats, args.seed, HPARAMS)
        print("@@RESULT@@" + json.dumps(rec), flush=True)
        return

    t_start = time.perf_counter()
    results = []
    for n in seed_counts:
        if args.fresh_process:
            rec = run_fresh(n, args)
        else:
            rec = bench_one(n, args.repeats, args.seed, HPARAMS)
            rec.pop("t_first_result_unix", None)
        results.append(rec)
        msg = (
            f"num_seeds={n:3d} compile={rec['lower_plus_compile_s']:.1f}s "
            f"run={', '.join(f'{x:.1f}' for x in rec['run_s'])}s "
            f"return={rec['final_return_mean']:.1f}"
        )
        if "process_wall_s" in rec:
            msg += (
                f" process_wall={rec['process_wall_s']:.1f}s"
                f" (to first result {rec['process_wall_to_first_result_s']:.1f}s)"
            )
        print(msg, flush=True)

    out = {
        "benchmark": "rejax PPO, gymnax CartPole-v1, jit(vmap(train)) over seeds",
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
        "hparams": HPARAMS,
        "notes": [
            "Learning rate: rejax 0.1.3 has no annealing option; a PureJaxRL-style linear "
            "schedule is passed as a callable through rejax's learning_rate into optax.adam.",
            "rejax runs ceil(total_timesteps / (num_envs*num_steps)) update rounds, so "
            "env_steps_per_seed may exceed total_timesteps slightly (PureJaxRL floors).",
            "rejax differences from PureJaxRL PPO: separate actor and critic Adam "
            "optimizers; max_grad_norm is element-wise optax.clip, not global-norm "
            "clipping; default flax Dense init (not orthogonal).",
            "Evaluation: eval_freq=total_timesteps and skip_initial_evaluation=True give "
            "one evaluation (128 episodes, sampled actions) at the end, included in run_s. "
            "final_return_* are means of that evaluation.",
            "All seeds of one seed count are a single jitted program on one CPU device.",
        ],
        "wall_s_all": time.perf_counter() - t_start,
        "results": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
