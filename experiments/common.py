"""Helpers shared by the experiment scripts: machine description and result files."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
PYTHON = sys.executable
# PPO's classic-control preset until 2026-12-06 (ppo.PRESETS["gymnax"] is now 8 envs at
# lr 2e-3). Scripts whose recorded results were made with it pin it, so they rerun as they
# were recorded.
CLASSIC_PRESET_BEFORE_2026_12_06 = {"num_envs": 4, "learning_rate": 1e-3}
CLASSIC_PRESET_FLAGS = [f"--config.{k}={v}" for k, v in CLASSIC_PRESET_BEFORE_2026_12_06.items()]


def machine() -> dict:
    def first(path: str, prefix: str) -> str | None:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            return None
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), None)

    cpu = first("/proc/cpuinfo", "model name") or "unknown"
    mem_kib = first("/proc/meminfo", "MemTotal")
    mem = round(int(mem_kib.split()[0]) / 2**20, 1) if mem_kib else None
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("jax", "jaxlib", "flax", "optax", "gymnax", "brax"):
        try:  # read from the installed metadata: importing brax takes seconds
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # a missing optional package is recorded
            out[name] = None
    return out


def script_path() -> str:
    path = Path(sys.argv[0]).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def record(name: str, data: dict) -> Path:
    """Write ``experiments/results/<name>.json`` with the command, machine and date."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        # The script as seen from the repository root, wherever it was started from.
        "command": shlex.join(["python", script_path(), *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        **data,
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def timed_process(args: list[str], env: dict | None = None, timeout: float = 3600) -> dict:
    """Run a command to completion; wall time from spawn to exit, and its output tail."""
    start = time.perf_counter()
    proc = subprocess.run(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(
            f"{shlex.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return {"wall_seconds": wall, "stdout_tail": proc.stdout[-500:]}


def train_cli(run_dir: Path, *flags: str, timeout: float = 3600) -> tuple[dict, float]:
    """``python -m rlzoo.train`` in a fresh process; returns (summary.json, process wall time)."""
    args = [PYTHON, "-m", "rlzoo.train", "--progress=false", f"--run_dir={run_dir}", *flags]
    result = timed_process(args, timeout=timeout)
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    return summary, result["wall_seconds"]


def random_action_ceiling(env_id: str, num_envs: int, steps: int, num_seeds: int) -> dict:
    """Random-action env steps per second of ``num_seeds x num_envs`` envs, ``steps`` each.

    The vmapped shape of a training program, sharded over the same devices, in one jitted
    scan; the second call is timed. Actions are drawn from the env's action space (discrete
    or box).
    """
    import jax

    from rlzoo import envs
    from rlzoo.launch.devices import seed_mesh, seed_sharding

    env, params = envs.make(env_id)
    venv = envs.VectorEnv(envs.EpisodeStatistics(env), num_envs)
    space = env.action_space(params)

    def rollout(key):
        _, state = venv.reset(key, params)

        def step(carry, _):
            state, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            action = jax.vmap(space.sample)(jax.random.split(act_key, num_envs))
            _, state, reward, *_ = venv.step(step_key, state, action, params)
            return (state, key), reward.sum()

        return jax.lax.scan(step, (state, key), None, steps)[1].sum()

    mesh, _ = seed_mesh(num_seeds)
    keys = jax.device_put(jax.random.split(jax.random.PRNGKey(0), num_seeds), seed_sharding(mesh))
    compiled = jax.jit(jax.vmap(rollout)).lower(keys).compile()
    jax.block_until_ready(compiled(keys))
    start = time.perf_counter()
    jax.block_until_ready(compiled(keys))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "env_steps_per_second": num_seeds * num_envs * steps / seconds}


def eval_curve(run_dir: Path, key: str) -> list[dict]:
    """Mean and per-seed evaluation at each evaluation the run wrote."""
    curve = []
    for path in sorted((run_dir / "metrics").glob("eval-*.npz")):
        with np.load(path, allow_pickle=False) as f:
            scores = f[key].tolist()
        curve.append({"iteration": int(path.stem.split("-")[1]), "per_seed": scores})
    return curve
