"""The runner as a library: ``run(spec) -> summary``, no absl, no flags.

    from rlzoo.launch.runner import RunSpec, run
    summary = run(RunSpec(agent="ppo", env="gymnax/CartPole-v1", num_seeds=8, run_dir="runs/cp"))

``run`` is a sequence of named steps: open the run directory, build (config, env, agent,
data), place the batch of ``configs x seeds`` agents on the device mesh, init or restore,
compile, train in chunks (evaluating, logging and checkpointing in between), finish. Agent
``a`` is seed ``a % num_seeds`` of sweep point ``a // num_seeds``; every point uses the
same seed keys (common random numbers make points easier to compare).

The run directory holds ``config.json`` (the spec and the resolved config, once),
``metrics/`` (arrays: one file per chunk of training metrics and per evaluation, read
with ``rlzoo.launch.files.MetricsLog``),
``checkpoints/`` (orbax, the batched training state; never the data) and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlzoo import agents, envs
from rlzoo.analysis.logs import MetricsLog
from rlzoo.analysis.stats import describe
from rlzoo.core import hparams
from rlzoo.core.agent import Agent, check_data, scan_updates
from rlzoo.data import data_fingerprint, load_dataset
from rlzoo.launch import devices as device_lib
from rlzoo.launch.base import load_base
from rlzoo.launch.callbacks import Callback, RunInfo, default_callbacks
from rlzoo.launch.checkpoints import Checkpointer
from rlzoo.launch.configs import resolve_config
from rlzoo.launch.files import RunDirInUse, RunLock, read_json, write_json

FORMAT = 3  # of the run directory; 2 logged metrics.jsonl, 1 was rlzoo 0.1.0's

# init runs once, so it is compiled with XLA's cheap CPU settings (about a third of the
# compile time on a CPU). Evaluation is not: there the slower code cost more than it saved.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@dataclasses.dataclass
class RunSpec:
    """Everything that defines a run; saved in ``config.json`` and reread on resume."""

    agent: str = "ppo"
    env: str = "gymnax/CartPole-v1"
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    dataset: str = ""  # path of the data the agent learns from ("" : none, or given in memory)
    base: str = ""  # run directory whose trained agent becomes this run's data (--base)
    base_seed: int = 0  # which agent of the base run: seed i % num_seeds of point i // num_seeds
    num_seeds: int = 8
    seed: int = 0
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # Config fields
    run_dir: str = ""
    eval_every: int = 0  # agent steps between evaluations; 0: ten times per run
    checkpoint_every: int = 0  # agent steps between checkpoints; 0: same as eval_every
    num_devices: int = 0  # 0: as many as divide the agents
    max_to_keep: int = 3
    memory_limit: int = 0  # bytes a program may use per device; 0: what the device has
    # Traced-hyperparameter points trained together in this one program (a sweep); each
    # point is a dict of Config fields. Empty: the single config.
    sweep: list[dict[str, float]] = dataclasses.field(default_factory=list)


class RunError(RuntimeError):
    """A run stopped for a reason the user must act on (the message says what)."""


class Interrupted(RunError):
    """SIGINT or SIGTERM arrived; the run checkpointed at a chunk boundary and stopped."""


class BatchTooLarge(RunError):
    """The compiled program of all agents needs more device memory than there is."""

    def __init__(self, needed: int, available: int, num_agents: int):
        self.needed, self.available, self.num_agents = needed, available, num_agents
        super().__init__(
            f"{num_agents} agents need about {needed / 2**30:.2f} GiB of device memory "
            f"(compiled estimate) but {available / 2**30:.2f} GiB is available; train fewer "
            "agents per program (rlzoo.sweep splits a sweep automatically)."
        )


@dataclasses.dataclass
class Setup:
    """What the run trains: the resolved config, the env, the agent and its data."""

    agent_module: ModuleType
    config: Any
    env: envs.Environment
    env_params: Any
    agent: Agent
    data: Any
    data_record: dict[str, Any] | None


@dataclasses.dataclass
class Placement:
    """The batch of agents on the mesh: seed keys, batched config, replicated data."""

    mesh: jax.sharding.Mesh
    sharding: jax.sharding.NamedSharding
    keys: jax.Array
    batched_config: Any
    data: Any
    num_agents: int
    note: str | None


@dataclasses.dataclass
class Schedule:
    """Iterations per compiled chunk, and evaluation / checkpoint intervals in chunks."""

    chunk: int
    eval_chunks: int
    checkpoint_chunks: int


# ----------------------------------------------------------------------------- the steps


# Spec fields that may change when a run is resumed: they do not change what is trained.
SAFE_ON_RESUME = ("eval_every", "checkpoint_every", "max_to_keep", "num_devices", "memory_limit")


def resume_spec(
    stored: dict[str, Any], run_dir: str, changes: dict[str, Any]
) -> tuple[RunSpec, dict[str, Any]]:
    """The stored spec and config record with the safe ``changes`` applied; refuse others.

    ``changes`` holds what the user asked for now: spec fields, and ``overrides`` (config
    fields, compared with the stored resolved config). A larger ``total_steps`` extends
    the run (``build`` refuses it for agents whose schedule spans the budget).
    """
    try:
        spec = dataclasses.replace(RunSpec(**stored["run"]), run_dir=run_dir)
    except TypeError as error:  # a hand-edited or foreign "run" entry
        raise RunError(f"--resume: the 'run' entry of {run_dir}/config.json: {error}") from error
    config = dict(stored["config"])
    differ = []
    for name, value in changes.items():
        if name == "overrides":
            for k, v in value.items():
                before = config.get(k)
                if hparams.to_dict_value(v) == before:
                    continue
                if k == "total_steps" and isinstance(v, int) and v > (before or 0):
                    config[k] = v  # extend the budget
                    spec = dataclasses.replace(spec, overrides={**spec.overrides, k: v})
                else:
                    differ.append(f"--config.{k}: {before!r} -> {v!r}")
        elif name in SAFE_ON_RESUME:
            spec = dataclasses.replace(spec, **{name: value})
        elif getattr(spec, name) != value:
            differ.append(f"--{name}: {getattr(spec, name)!r} -> {value!r}")
    if differ:
        raise RunError(
            f"--resume: these differ from the run in {run_dir}: {'; '.join(differ)}. Only "
            f"{', '.join(SAFE_ON_RESUME)}, logging and a larger --total_steps may change on "
            "resume; drop the others, or start a new --run_dir."
        )
    return spec, {**stored, "config": config, "run": dataclasses.asdict(spec)}


def open_run_dir(
    spec: RunSpec, resume: bool, changes: dict[str, Any] | None = None
) -> tuple[RunSpec, dict[str, Any] | None]:
    """The spec to run and, on resume, the stored ``config.json`` (see :func:`resume_spec`)."""
    run_dir = Path(spec.run_dir)
    stored_path = run_dir / "config.json"
    if not resume:
        if stored_path.exists():
            raise RunError(
                f"{run_dir} already holds a run; pass --resume to continue it or choose "
                "another --run_dir."
            )
        return spec, None
    if not stored_path.exists():
        raise RunError(
            f"--resume: {run_dir} has no config.json, so it is not an rlzoo run directory "
            "(or the run never started). Check --run_dir, or start a new run without --resume."
        )
    try:
        stored = read_json(stored_path)
        if not isinstance(stored, dict) or not {"run", "config", "agent"} <= stored.keys():
            raise ValueError("it lacks the 'run', 'config' or 'agent' entries")
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise RunError(
            f"--resume: {stored_path} cannot be read as an rlzoo config ({error}); restore it "
            "or start a new --run_dir."
        ) from error
    if stored.get("format") != FORMAT:
        raise RunError(
            f"--resume: {run_dir} was written by an older rlzoo (run-directory format "
            f"{stored.get('format', 1)}, this is {FORMAT}), which this rlzoo cannot "
            "continue. Start the run again in a new --run_dir."
        )
    return resume_spec(stored, spec.run_dir, changes or {})


def build(spec: RunSpec, stored: dict[str, Any] | None, data: Any) -> Setup:
    """Resolve the config (or reread it on resume), make the env, the agent and its data.

    Data comes from ``data`` (in memory), ``spec.dataset`` (a file) or ``spec.base`` (a run
    directory, turned into data by the agent module's ``from_base``).
    """
    agent_module = agents.get(spec.agent)
    base_overrides, source = {}, spec.dataset or "in memory"
    if data is None and spec.base:
        data, base_overrides = data_from_base(agent_module, spec)
        source = f"base run {spec.base}, agent {spec.base_seed}"
    if stored is None:
        config = resolve_config(agent_module, spec.env, {**base_overrides, **spec.overrides})
    else:  # the stored config wins: presets in the code may have changed since
        config = hparams.from_dict(agent_module.Config, stored["config"])
    env, env_params = envs.make(spec.env, **spec.env_kwargs)
    agent = agent_module.make_agent(config, env, env_params)
    if stored is not None and agent.num_iterations != stored["agent"]["num_iterations"]:
        check_extension(spec, agent, stored["agent"]["num_iterations"])
    if data is None and spec.dataset:
        check_data(spec.agent, agent.data_kind, spec.dataset)  # before reading the file
        data = load_dataset(spec.dataset)
    check_data(spec.agent, agent.data_kind, data)
    data_record = None if data is None else {"source": source, **data_fingerprint(data)}
    if stored is not None:
        before = stored.get("data") or {}
        if before.get("sha256") != (data_record or {}).get("sha256"):
            raise RunError(
                f"--resume: the data differs from the data this run started with "
                f"({before.get('source', 'no data')}, sha256 {before.get('sha256', '-')[:12]}; "
                f"now {source if data is not None else 'no data'}); resume with the same data."
            )
    return Setup(agent_module, config, env, env_params, agent, data, data_record)


def check_extension(spec: RunSpec, agent: Agent, stored_iterations: int) -> None:
    """Refuse a longer budget on resume where the agent's schedule spans the budget."""
    if agent.schedule_spans_budget:
        raise RunError(
            f"--resume: {spec.agent}'s schedule spans the whole budget of {stored_iterations} "
            "iterations (a learning-rate schedule such as PPO's anneal_lr), so --total_steps "
            "cannot grow on resume without changing the updates already made. Start a new "
            "--run_dir with the longer budget (or train with --config.anneal_lr=false to be "
            "able to extend it later)."
        )


def data_from_base(agent_module: ModuleType, spec: RunSpec) -> tuple[Any, dict[str, Any]]:
    """``(data, config overrides)`` from the base run ``spec.base`` (``--base``)."""
    if not hasattr(agent_module, "from_base"):
        raise ValueError(f"agent {spec.agent!r} takes no --base run; drop --base.")
    base_record, base_config, base_state = load_base(spec.base, spec.base_seed)
    base_run = base_record["run"]
    if (base_run["env"], base_run["env_kwargs"]) != (spec.env, spec.env_kwargs):
        raise ValueError(
            f"--base={spec.base} was trained on {base_run['env']} {base_run['env_kwargs']}, "
            f"not {spec.env} {spec.env_kwargs}; use the same --env and --env_kwargs."
        )
    return agent_module.from_base(base_run["agent"], base_config, base_state)


def place(spec: RunSpec, setup: Setup) -> Placement:
    """Seed keys and the batched config, sharded over the seed axis; data replicated."""
    points = spec.sweep or [{}]
    num_agents = len(points) * spec.num_seeds
    mesh, note = device_lib.seed_mesh(num_agents, spec.num_devices)
    sharding = device_lib.seed_sharding(mesh)
    seed_keys = jax.random.split(jax.random.PRNGKey(spec.seed), spec.num_seeds)
    keys = device_lib.global_array(np.tile(seed_keys, (len(points), 1)), sharding)
    batched_config = hparams.stack_points(setup.config, points, spec.num_seeds)
    replicated = device_lib.replicated_sharding(mesh)
    data = jax.tree.map(lambda x: device_lib.global_array(x, replicated), setup.data)
    return Placement(mesh, sharding, keys, batched_config, data, num_agents, note)


def schedule(agent: Agent, eval_every: int, checkpoint_every: int) -> Schedule:
    """Chunk length and intervals from the agent's steps (one program when defaults)."""
    iterations, per_iteration = agent.num_iterations, agent.steps_per_iteration
    eval_iters = math.ceil(eval_every / per_iteration) if eval_every else 0
    eval_iters = eval_iters or max(1, iterations // 10)
    ckpt_iters = math.ceil(checkpoint_every / per_iteration) if checkpoint_every else 0
    ckpt_iters = ckpt_iters or eval_iters
    chunk = max(1, min(eval_iters, ckpt_iters, iterations))
    if not eval_every and not checkpoint_every:
        # Default intervals: prefer a chunk length that divides the run, so that a single
        # program is compiled (a shorter last chunk would be a second one).
        near = range(max(1, chunk // 2), min(iterations, 2 * chunk) + 1)
        divisors = [d for d in near if iterations % d == 0]
        chunk = min(divisors, key=lambda d: abs(d - chunk)) if divisors else chunk
        eval_iters = ckpt_iters = chunk
    return Schedule(chunk, max(1, round(eval_iters / chunk)), max(1, round(ckpt_iters / chunk)))


def record(spec: RunSpec, setup: Setup, placement: Placement) -> dict[str, Any]:
    """What ``config.json`` holds: the spec, the resolved config (once), agent and data."""
    agent = setup.agent
    return {
        "format": FORMAT,
        "run": dataclasses.asdict(spec),
        "config": hparams.to_dict(setup.config),
        "agent": {
            "score_key": agent.score_key,
            "step_unit": agent.step_unit,
            "steps_per_iteration": agent.steps_per_iteration,
            "num_iterations": agent.num_iterations,
            "metrics": dict(agent.metrics),
        },
        "data": setup.data_record,
        "devices": [str(d) for d in placement.mesh.devices.ravel()],
        "jax_version": jax.__version__,
    }


def _all_finite(tree: Any) -> jax.Array:
    """One bool: every floating-point leaf of ``tree`` is finite."""
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.floating)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def init_state(
    agent: Agent, placement: Placement, checkpointer: Checkpointer, resume: bool
) -> tuple[Any, dict[str, Any]]:
    """A fresh batched state, or the latest checkpoint's, and its record (``iteration``,
    and ``diverged`` sweep points)."""
    config_axes = hparams.vmap_axes(placement.batched_config)
    init = jax.jit(
        jax.vmap(agent.init, in_axes=(0, config_axes, None)),
        out_shardings=placement.sharding,
        compiler_options=QUICK_COMPILE,
    )
    args = (placement.keys, placement.batched_config, placement.data)
    if not resume:
        return init(*args), {"iteration": 0}
    latest = checkpointer.latest_iteration()
    if latest is None:  # killed before its first checkpoint: start it again from the spec
        return init(*args), {"iteration": 0}
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=placement.sharding),
        jax.eval_shape(init, *args),
    )
    try:
        state, saved = checkpointer.restore(latest, abstract)
    except Exception as error:
        raise RunError(
            f"--resume: checkpoint {latest} in {checkpointer.directory} cannot be read "
            f"({type(error).__name__}: {error}). Delete that step folder to fall back to "
            "an earlier checkpoint."
        ) from error
    return state, saved


def compile_programs(
    agent: Agent, placement: Placement, state: Any, start: int, chunk: int
) -> tuple[dict[int, Any], Any]:
    """The chunk program(s) (state donated) and the evaluation program, compiled now."""

    def run_chunk(state, data, length):
        state, metrics = scan_updates(agent, state, data, length)
        return state, metrics, _all_finite(state)

    lengths = {
        min(chunk, agent.num_iterations - i) for i in range(start, agent.num_iterations, chunk)
    }
    chunk_fns = {
        n: jax.jit(
            jax.vmap(lambda s, d, n=n: run_chunk(s, d, n), in_axes=(0, None)), donate_argnums=0
        )
        .lower(state, placement.data)
        .compile()
        for n in sorted(lengths)
    }
    evaluate = (
        jax.jit(jax.vmap(agent.evaluate, in_axes=(0, 0, None)))
        .lower(state, placement.keys, placement.data)
        .compile()
    )
    return chunk_fns, evaluate


def check_memory(chunk_fns: dict[int, Any], placement: Placement, limit: int) -> int | None:
    """XLA's estimate of the chunk program's memory per device; too much is BatchTooLarge.

    The budget is ``limit`` bytes when set, else the device's own (allocator limit on
    GPU/TPU, 80% of RAM on CPU).
    """
    if not chunk_fns:  # a resumed run that had already finished trains nothing
        return None
    needed = device_lib.compiled_bytes(chunk_fns[max(chunk_fns)])
    local = [d for d in placement.mesh.devices.ravel() if d.process_index == jax.process_index()]
    available = limit or device_lib.device_memory_bytes(local[0])
    if needed is not None and needed > available:
        raise BatchTooLarge(needed, available, placement.num_agents)
    return needed


def first_bad(metrics: dict[str, np.ndarray], state_finite: np.ndarray) -> np.ndarray:
    """Per agent, the offset within the chunk of its first non-finite value, or -1.

    Metrics are ``[agents, iterations]``; a non-finite state with finite metrics is
    attributed to the chunk's last iteration.
    """
    shape = next(iter(metrics.values())).shape if metrics else (len(state_finite), 1)
    bad = np.zeros(shape, bool)
    for values in metrics.values():
        if np.issubdtype(values.dtype, np.floating):
            bad |= ~np.isfinite(values)
    offsets = np.where(bad.any(axis=1), bad.argmax(axis=1), -1)
    return np.where((offsets < 0) & ~state_finite, shape[1] - 1, offsets)


def summarize(
    spec: RunSpec,
    agent: Agent,
    results: dict[str, np.ndarray],
    timings: dict[str, float],
    diverged: dict[int, dict[str, int]],
) -> dict[str, Any]:
    """``summary.json``: the final evaluation per agent, per config and over all agents.

    A diverged sweep point is marked in its entry; the overall statistics leave it out.
    """
    final = {k: np.asarray(v).tolist() for k, v in results.items()}
    points = spec.sweep or [{}]
    n = spec.num_seeds
    kept = np.array([a // n not in diverged for a in range(len(points) * n)])
    return {
        "format": FORMAT,
        "agent": spec.agent,
        "env": spec.env,
        "score_key": agent.score_key,
        "step_unit": agent.step_unit,
        "steps_per_seed": agent.num_iterations * agent.steps_per_iteration,
        "num_seeds": n,
        "num_configs": len(points),
        "final_eval_per_seed": final,  # agent a: seed a % num_seeds of config a // num_seeds
        "final_eval_per_config": [
            {
                "config": point,
                "diverged": diverged.get(c),
                **{k: describe(v[c * n : (c + 1) * n]) for k, v in final.items()},
            }
            for c, point in enumerate(points)
        ],
        "final_eval": {k: describe(np.asarray(v)[kept]) for k, v in final.items()},
        "diverged": [{"config": points[c], **where} for c, where in sorted(diverged.items())],
        **timings,
        "backend": jax.default_backend(),
        "run_dir": spec.run_dir,
    }


# ----------------------------------------------------------------------------- run


def run(
    spec: RunSpec,
    resume: bool = False,
    data: Any = None,
    callbacks: list[Callback] | None = None,
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``num_seeds`` (x sweep points) agents in one program; returns the summary.

    ``data`` (an in-memory pytree) takes the place of ``spec.dataset``. ``callbacks``
    default to a progress bar and TensorBoard (``rlzoo.launch.callbacks``). The run
    directory is locked for the run (one writer); an unwritable one is a ``RunError``.
    On ``resume`` the stored spec is used; ``changes`` (what the caller asks for now) may
    alter only :data:`SAFE_ON_RESUME`, other differences are refused with a list.
    """
    run_dir = Path(spec.run_dir)
    lock = RunLock(run_dir)
    try:
        if not resume:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise RunError(
                    f"cannot create the run directory {run_dir} ({error}); choose a --run_dir "
                    "you can write to."
                ) from error
        if jax.process_index() == 0 and run_dir.is_dir():
            lock.acquire()
        return train_run(spec, resume, data, callbacks, changes)
    except RunDirInUse as error:
        raise RunError(str(error)) from error
    except PermissionError as error:
        raise RunError(
            f"cannot write to the run directory {run_dir} ({error}); choose a --run_dir "
            "you can write to."
        ) from error
    except OSError as error:  # e.g. a full disk: files are written atomically, so the
        # checkpoints and files already there are whole
        raise RunError(
            f"writing to {run_dir} failed ({error}); the checkpoints already written stay "
            "readable. Free space (or fix the file system) and continue with --resume."
        ) from error
    finally:
        lock.release()


def train_run(
    spec: RunSpec,
    resume: bool,
    data: Any,
    callbacks: list[Callback] | None,
    changes: dict[str, Any] | None,
) -> dict[str, Any]:
    """:func:`run` inside its lock: the named steps, one after another."""
    start_time = time.perf_counter()
    spec, stored = open_run_dir(spec, resume, changes)
    setup = build(spec, stored, data)
    build_seconds = time.perf_counter() - start_time  # env and agent; imports a backend
    agent = setup.agent
    placement = place(spec, setup)
    plan = schedule(agent, spec.eval_every, spec.checkpoint_every)
    run_dir = Path(spec.run_dir)
    primary = jax.process_index() == 0  # one process writes the run directory's files
    run_dir.mkdir(parents=True, exist_ok=True)
    extended = resume and agent.num_iterations != stored["agent"]["num_iterations"]
    if extended:  # a larger --total_steps: the record says the new budget from now on
        print(
            f"rlzoo: extending the budget from {stored['agent']['num_iterations']} to "
            f"{agent.num_iterations} iterations"
        )
        stored = {**stored, "agent": {**stored["agent"], "num_iterations": agent.num_iterations}}
    stored = stored or record(spec, setup, placement)
    if (extended or not resume) and primary:
        write_json(run_dir / "config.json", stored)
    print(
        f"rlzoo: {spec.agent} on {spec.env}, {spec.num_seeds} seed(s) x "
        f"{len(spec.sweep or [{}])} config(s) on {placement.mesh.devices.size} "
        f"{jax.default_backend()} device(s), {agent.num_iterations} iterations x "
        f"{agent.steps_per_iteration} {agent.step_unit}"
    )
    if placement.note:
        print(f"rlzoo: {placement.note}")

    checkpointer = Checkpointer(run_dir / "checkpoints", spec.max_to_keep)
    log = MetricsLog(run_dir / "metrics", writable=primary)
    t0 = time.perf_counter()
    state, saved = init_state(agent, placement, checkpointer, resume)
    init_seconds = time.perf_counter() - t0  # compiling init, or restoring a checkpoint
    iteration = int(saved["iteration"])
    # Sweep points that went non-finite: point index -> where (kept in checkpoint records).
    diverged = {int(c): where for c, where in saved.get("diverged", {}).items()}
    if resume:
        if iteration >= agent.num_iterations and (run_dir / "summary.json").exists():
            checkpointer.close()
            print(f"rlzoo: {run_dir} already finished ({iteration} iterations); nothing to do")
            return read_json(run_dir / "summary.json")
        log.truncate_after(iteration)
        print(f"rlzoo: resumed from iteration {iteration}")

    print("rlzoo: compiling ...", flush=True)
    compile_start = time.perf_counter()
    chunk_fns, evaluate = compile_programs(agent, placement, state, iteration, plan.chunk)
    compile_seconds = time.perf_counter() - compile_start
    needed_bytes = check_memory(chunk_fns, placement, spec.memory_limit)

    callbacks = default_callbacks() if callbacks is None else callbacks
    callbacks = callbacks if primary else []
    info = RunInfo(
        run_dir=run_dir,
        agent=spec.agent,
        env=spec.env,
        num_agents=placement.num_agents,
        num_iterations=agent.num_iterations,
        steps_per_iteration=agent.steps_per_iteration,
        step_unit=agent.step_unit,
        score_key=agent.score_key,
        start_iteration=iteration,
        resume=resume,
        config=stored,
    )
    try:
        for callback in callbacks:
            callback.on_start(info)
        with deferred_signals() as received:
            results, timings = train_chunks(
                spec, setup, placement, plan, state, iteration, chunk_fns, evaluate,
                checkpointer, log, callbacks, received, diverged,
            )  # fmt: skip
        timings = {
            "build_seconds": build_seconds,
            "init_seconds": init_seconds,
            "compile_seconds": compile_seconds,
            **timings,
            "wall_seconds": time.perf_counter() - start_time,
            "devices": int(placement.mesh.devices.size),
            "compiled_bytes_per_device": needed_bytes,
        }
        summary = summarize(spec, agent, results, timings, diverged)
        if primary:
            write_json(run_dir / "summary.json", summary)
        for callback in callbacks:
            callback.on_end(summary)
    finally:
        checkpointer.close()
        for callback in callbacks:
            callback.close()
    score = summary["final_eval"][agent.score_key]
    print(
        f"rlzoo: final {agent.score_key} mean {score['mean']:.1f} +- {score['std']:.1f} "
        f"(IQM {score['iqm']:.1f}, min {score['min']:.1f}) over {placement.num_agents} "
        f"agent(s); run directory {run_dir}"
    )
    return summary


def failpoint(name: str, iteration: int) -> None:
    """Kill this process with SIGKILL here when ``RLZOO_FAILPOINT=<name>@<iteration>``.

    A test hook for fault injection (``tests/test_launcher.py``): points are
    ``before_checkpoint``, ``checkpoint_in_flight`` and ``final_evaluation``.
    """
    if os.environ.get("RLZOO_FAILPOINT") == f"{name}@{iteration}":
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def deferred_signals():
    """Catch SIGINT and SIGTERM (preemption) and record them, so the loop can checkpoint.

    Yields a list that holds the names of the signals received. A second signal while the
    first is being handled is recorded too; the previous handlers come back on exit.
    Outside the main thread (where Python cannot install handlers) nothing is caught.
    """
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda number, frame: received.append(signal.Signals(number).name))
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train_chunks(
    spec: RunSpec,
    setup: Setup,
    placement: Placement,
    plan: Schedule,
    state: Any,
    iteration: int,
    chunk_fns: dict[int, Any],
    evaluate: Any,
    checkpointer: Checkpointer,
    log: MetricsLog,
    callbacks: list[Callback],
    received: list[str],
    diverged: dict[int, dict[str, int]],
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The training loop: chunks of updates; evaluate, log and checkpoint in between.

    ``received`` fills with signal names (``deferred_signals``): the loop then checkpoints
    at the end of the chunk and stops with :class:`Interrupted`. A non-finite value stops
    a single run; in a sweep it marks that point in ``diverged`` and the others go on
    (the run stops only when every point has diverged).
    """
    agent, n = setup.agent, spec.num_seeds
    eval_key = jax.random.fold_in(jax.random.PRNGKey(spec.seed), 1_000_003)
    repeats = placement.num_agents // n

    def run_evaluation(state, iteration):
        seed_keys = jax.random.split(jax.random.fold_in(eval_key, iteration), n)
        keys = device_lib.global_array(np.tile(seed_keys, (repeats, 1)), placement.sharding)
        results = device_lib.to_host(evaluate(state, keys, placement.data))
        log.append_eval(iteration, results)
        for callback in callbacks:
            callback.on_eval(iteration, results)
        return results

    train_start = time.perf_counter()
    eval_seconds = checkpoint_seconds = chunk_seconds_total = log_seconds = 0.0
    last_good = checkpointer.latest_iteration()
    results = None
    while iteration < agent.num_iterations:
        length = min(plan.chunk, agent.num_iterations - iteration)
        t0 = time.perf_counter()
        state, metrics, state_finite = chunk_fns[length](state, placement.data)
        metrics, state_finite = device_lib.to_host((metrics, state_finite))
        chunk_seconds = time.perf_counter() - t0
        chunk_seconds_total += chunk_seconds
        bad = first_bad(metrics, np.asarray(state_finite))
        bad[[a // n in diverged for a in range(len(bad))]] = -1  # already marked
        if (bad >= 0).any():
            newly = {int(a) // n for a in np.nonzero(bad >= 0)[0]}
            first = int(np.argmin(np.where(bad >= 0, bad, np.iinfo(np.int64).max)))
            if len(spec.sweep) < 2 or len(newly) + len(diverged) == len(spec.sweep):
                checkpointer.close()  # let an in-flight save of the last good state finish
                raise RunError(
                    non_finite_message(spec, agent, iteration + bad[first] + 1, first, last_good)
                )
            for c in sorted(newly):
                agents_bad = [a for a in range(c * n, (c + 1) * n) if bad[a] >= 0]
                a = min(agents_bad, key=lambda a: bad[a])
                diverged[c] = {"iteration": iteration + int(bad[a]) + 1, "seed": a % n}
                print(
                    f"rlzoo: sweep point {spec.sweep[c]} diverged (non-finite values) at "
                    f"iteration {diverged[c]['iteration']} in seed {a % n}; the others go on"
                )
        t0 = time.perf_counter()
        log.append_train(iteration + 1, metrics)
        log_seconds += time.perf_counter() - t0
        iteration += length
        for callback in callbacks:
            callback.on_metrics(iteration, metrics, chunk_seconds)
        done = iteration >= agent.num_iterations
        chunks_done = iteration // plan.chunk
        t0 = time.perf_counter()
        if done or chunks_done % plan.eval_chunks == 0:
            failpoint("final_evaluation" if done else "evaluation", iteration)
            results = run_evaluation(state, iteration)
        t1 = time.perf_counter()
        if done or chunks_done % plan.checkpoint_chunks == 0:
            failpoint("before_checkpoint", iteration)
            checkpointer.save(iteration, state, {"iteration": iteration, "diverged": diverged})
            failpoint("checkpoint_in_flight", iteration)  # written in the background now
            last_good = iteration
        eval_seconds += t1 - t0
        checkpoint_seconds += time.perf_counter() - t1
        if received and not done:
            if last_good != iteration:
                checkpointer.save(iteration, state, {"iteration": iteration, "diverged": diverged})
            checkpointer.close()
            raise Interrupted(
                f"{received[0]} at iteration {iteration} of {agent.num_iterations}; saved a "
                f"checkpoint in {spec.run_dir}"
            )
    train_seconds = time.perf_counter() - train_start
    if results is None:  # resumed a run that had already finished
        results = run_evaluation(state, iteration)
    return results, {
        "train_seconds_after_compile": train_seconds,  # evaluation and checkpoints included
        "chunk_seconds": chunk_seconds_total,  # the training chunks, fetched to the host
        "log_seconds": log_seconds,  # writing the training metrics
        "eval_seconds": eval_seconds,
        "checkpoint_seconds": checkpoint_seconds,
    }


def non_finite_message(
    spec: RunSpec, agent: Agent, bad_iteration: int, bad_agent: int, last_good: int | None
) -> str:
    checkpoints = Path(spec.run_dir) / "checkpoints"
    kept = (
        f"the last good checkpoint (iteration {last_good}) is in {checkpoints}"
        if last_good is not None
        else "no checkpoint had been written yet"
    )
    point = f" of sweep point {spec.sweep[bad_agent // spec.num_seeds]}" if spec.sweep else ""
    return (
        f"non-finite metrics or training state at iteration {bad_iteration} "
        f"({bad_iteration * agent.steps_per_iteration} {agent.step_unit}) in seed "
        f"{bad_agent % spec.num_seeds}{point}; training stopped and {kept}. Lower the "
        "learning rate or check the env's rewards/observations (or the dataset)."
    )
