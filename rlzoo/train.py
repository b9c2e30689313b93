"""Train an agent from the shell: many seeds in one compiled program, sharded over devices.

    python -m rlzoo.train --agent=ppo --env=gymnax/CartPole-v1 --num_seeds=8 \\
        --config.learning_rate=3e-4 --run_dir=runs/cartpole

The run directory holds ``config.json``, ``metrics.jsonl`` (one line per iteration and
seed), TensorBoard events, orbax ``checkpoints/`` and ``summary.json``. A run that was
killed continues with ``--resume --run_dir=DIR`` and ends with the same numbers as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from rlzoo.launch.devices import request_cpu_devices


def _cpu_devices_from_argv(argv: list[str]) -> int:
    for arg in argv:
        if arg.startswith("--cpu_devices="):
            return int(arg.split("=", 1)[1])
    return os.cpu_count() or 1


if __name__ == "__main__":
    # Before JAX starts its backends: one host device per core, so seeds run in parallel.
    request_cpu_devices(_cpu_devices_from_argv(sys.argv))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_dict, config_flags  # noqa: E402

from rlzoo import agents, envs  # noqa: E402
from rlzoo.core import hparams  # noqa: E402
from rlzoo.core.agent import scan_updates  # noqa: E402
from rlzoo.launch import devices as device_lib  # noqa: E402
from rlzoo.launch.checkpoints import Checkpointer  # noqa: E402
from rlzoo.launch.files import MetricsLog, read_json, write_json  # noqa: E402
from rlzoo.launch.loggers import make_loggers  # noqa: E402
from rlzoo.launch.stats import describe  # noqa: E402

# init runs once, so it is compiled with XLA's cheap CPU settings (about a third of the
# compile time on a CPU). Evaluation is not: there the slower code cost more than it saved.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@dataclasses.dataclass
class RunSpec:
    """Everything that defines a run; saved as ``config.json`` and reread on resume."""

    agent: str = "ppo"
    env: str = "gymnax/CartPole-v1"
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_seeds: int = 8
    seed: int = 0
    config: dict[str, Any] = dataclasses.field(default_factory=dict)  # agent Config fields
    run_dir: str = ""
    eval_every: int = 0  # env steps between evaluations; 0: ten times per run
    checkpoint_every: int = 0  # env steps between checkpoints; 0: same as eval_every
    num_devices: int = 0  # 0: as many as divide the seeds
    max_to_keep: int = 3
    # Traced-hyperparameter points trained together in this one program (a sweep); each
    # point is a dict of Config fields. Empty: the single config above.
    sweep: list[dict[str, float]] = dataclasses.field(default_factory=list)


class RunError(RuntimeError):
    """A run stopped for a reason the user must act on (the message says what)."""


class BatchTooLarge(RunError):
    """The compiled program of all agents needs more device memory than there is."""

    def __init__(self, needed: int, available: int, num_agents: int):
        self.needed, self.available, self.num_agents = needed, available, num_agents
        super().__init__(
            f"{num_agents} agents need about {needed / 2**30:.2f} GiB of device memory "
            f"(compiled estimate) but {available / 2**30:.2f} GiB is available; train fewer "
            "agents per program (rlzoo.sweep splits a sweep automatically)."
        )


def device_memory_bytes(device: jax.Device) -> int:
    """Memory the program may use on ``device``: the allocator limit, or 80% of host RAM."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def compiled_bytes(compiled: Any) -> int | None:
    """XLA's estimate of the memory one compiled program needs (per device)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # not every backend reports it
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


def build_config(agent_module, env_id: str, overrides: dict[str, Any]):
    """The agent's shipped preset for ``env_id`` with ``overrides`` on top."""
    config = agent_module.default_config(env_id)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return hparams.override(config, **overrides)


def _chunking(
    num_iterations: int, steps_per_iteration: int, eval_every: int, checkpoint_every: int
) -> tuple[int, int, int]:
    """Iterations per compiled chunk, and the eval and checkpoint intervals in chunks."""
    eval_iters = math.ceil(eval_every / steps_per_iteration) if eval_every else 0
    eval_iters = eval_iters or max(1, num_iterations // 10)
    ckpt_iters = math.ceil(checkpoint_every / steps_per_iteration) if checkpoint_every else 0
    ckpt_iters = ckpt_iters or eval_iters
    chunk = max(1, min(eval_iters, ckpt_iters, num_iterations))
    if not eval_every and not checkpoint_every:
        # Default intervals: prefer a chunk length that divides the run, so that a single
        # program is compiled (a shorter last chunk would be a second one).
        near = range(max(1, chunk // 2), min(num_iterations, 2 * chunk) + 1)
        divisors = [d for d in near if num_iterations % d == 0]
        chunk = min(divisors, key=lambda d: abs(d - chunk)) if divisors else chunk
        eval_iters = ckpt_iters = chunk
    return chunk, max(1, round(eval_iters / chunk)), max(1, round(ckpt_iters / chunk))


def _first_bad(finite: np.ndarray) -> tuple[int, int]:
    """(offset within chunk, agent) of the first non-finite iteration; finite is [agents, K]."""
    agents_bad, offsets = np.nonzero(~finite)
    first = np.argmin(offsets)
    return int(offsets[first]), int(agents_bad[first])


def run(
    spec: RunSpec,
    progress: bool = True,
    tensorboard: bool = True,
    resume: bool = False,
    wandb_project: str = "",
):
    """Train ``num_seeds`` (x sweep points) agents in one program; returns the summary dict.

    Agent ``a`` is seed ``a % num_seeds`` of sweep point ``a // num_seeds``; every point
    uses the same seed keys (common random numbers make points easier to compare).
    """
    start_time = time.perf_counter()
    run_dir = Path(spec.run_dir)
    if resume:
        if not (run_dir / "config.json").exists():
            raise RunError(
                f"--resume: {run_dir} has no config.json, so it is not an rlzoo run directory "
                "(or the run never started). Check --run_dir, or start a new run without --resume."
            )
        saved = RunSpec(**read_json(run_dir / "config.json")["run"])
        spec = dataclasses.replace(saved, run_dir=spec.run_dir)
    elif (run_dir / "config.json").exists():
        raise RunError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another "
            "--run_dir."
        )

    agent_module = agents.get(spec.agent)
    env, env_params = envs.make(spec.env, **spec.env_kwargs)
    config = build_config(agent_module, spec.env, spec.config)
    agent = agent_module.make_agent(config, env, env_params)
    points = spec.sweep or [{}]
    num_agents = len(points) * spec.num_seeds
    batched_config = hparams.stack_points(config, points, spec.num_seeds)
    mesh, note = device_lib.seed_mesh(num_agents, spec.num_devices)
    sharding = device_lib.seed_sharding(mesh)
    chunk, eval_chunks, ckpt_chunks = _chunking(
        agent.num_iterations, agent.steps_per_iteration, spec.eval_every, spec.checkpoint_every
    )

    primary = jax.process_index() == 0  # one process writes the run directory's files
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume and primary:
        write_json(
            run_dir / "config.json",
            {
                "run": dataclasses.asdict(spec),
                "agent_config": hparams.to_dict(config),
                "devices": [str(d) for d in mesh.devices.ravel()],
                "jax_version": jax.__version__,
            },
        )
    print(
        f"rlzoo: {spec.agent} on {spec.env}, {spec.num_seeds} seed(s) x {len(points)} "
        f"config(s) on "
        f"{mesh.devices.size} {jax.default_backend()} device(s), "
        f"{agent.num_iterations} iterations x {agent.steps_per_iteration} env steps"
    )
    if note:
        print(f"rlzoo: {note}")

    seed_keys = jax.random.split(jax.random.PRNGKey(spec.seed), spec.num_seeds)
    keys = device_lib.global_array(np.tile(seed_keys, (len(points), 1)), sharding)
    config_axes = hparams.vmap_axes(batched_config)
    init = jax.jit(
        jax.vmap(agent.init, in_axes=(0, config_axes)),
        out_shardings=sharding,
        compiler_options=QUICK_COMPILE,
    )

    checkpointer = Checkpointer(run_dir / "checkpoints", spec.max_to_keep)
    log = MetricsLog(run_dir / "metrics.jsonl", writable=primary)
    iteration = 0
    if resume:
        latest = checkpointer.latest_iteration()
        if latest is None:
            raise RunError(
                f"--resume: no checkpoint in {run_dir / 'checkpoints'}; nothing to resume."
            )
        abstract = jax.eval_shape(init, keys, batched_config)
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract
        )
        try:
            state, record = checkpointer.restore(latest, abstract)
        except Exception as error:
            raise RunError(
                f"--resume: checkpoint {latest} in {run_dir / 'checkpoints'} cannot be read "
                f"({type(error).__name__}: {error}). Delete that step folder to fall back to "
                "an earlier checkpoint."
            ) from error
        iteration = int(record["iteration"])
        log.truncate_after(iteration)
        print(f"rlzoo: resumed from iteration {iteration}")
    else:
        state = init(keys, batched_config)

    # Compile every program up front: at most two chunk lengths (the last may be shorter).
    compile_start = time.perf_counter()
    print("rlzoo: compiling ...", flush=True)
    lengths = {
        min(chunk, agent.num_iterations - i) for i in range(iteration, agent.num_iterations, chunk)
    }
    chunk_fns = {
        n: jax.jit(jax.vmap(lambda s, n=n: scan_updates(agent, s, n)), donate_argnums=0)
        .lower(state)
        .compile()
        for n in sorted(lengths)
    }
    evaluate = jax.jit(jax.vmap(agent.evaluate)).lower(state, keys).compile()
    compile_seconds = time.perf_counter() - compile_start
    needed = compiled_bytes(chunk_fns[max(chunk_fns)])
    local = [d for d in mesh.devices.ravel() if d.process_index == jax.process_index()]
    available = device_memory_bytes(local[0])
    if needed is not None and needed > available:
        raise BatchTooLarge(needed, available, num_agents)

    loggers = make_loggers(
        run_dir,
        tensorboard=tensorboard and primary,
        wandb_project=wandb_project if primary else "",
        config={"run": dataclasses.asdict(spec), "agent_config": hparams.to_dict(config)},
        resume=resume,
    )
    bar = None
    if progress and primary:
        from tqdm import tqdm

        bar = tqdm(
            total=agent.num_iterations * agent.steps_per_iteration,
            initial=iteration * agent.steps_per_iteration,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
        )

    eval_key = jax.random.fold_in(jax.random.PRNGKey(spec.seed), 1_000_003)

    def who(a: int) -> dict[str, int]:
        return {"seed": a % spec.num_seeds, "config": a // spec.num_seeds}

    def run_evaluation(state, iteration):
        seed_eval_keys = jax.random.split(jax.random.fold_in(eval_key, iteration), spec.num_seeds)
        keys = device_lib.global_array(np.tile(seed_eval_keys, (len(points), 1)), sharding)
        results = device_lib.to_host(evaluate(state, keys))
        rows = [
            {"iteration": iteration, **who(a), "eval": True}
            | {k: float(v[a]) for k, v in results.items()}
            for a in range(num_agents)
        ]
        log.append(rows)
        loggers.scalars(
            {f"eval/{k}": float(np.mean(v)) for k, v in results.items()},
            iteration * agent.steps_per_iteration,
        )
        return results

    train_start = time.perf_counter()
    eval_seconds = checkpoint_seconds = 0.0
    last_good = checkpointer.latest_iteration()
    results = None
    while iteration < agent.num_iterations:
        length = min(chunk, agent.num_iterations - iteration)
        t0 = time.perf_counter()
        state, metrics = chunk_fns[length](state)
        metrics = device_lib.to_host(metrics)
        chunk_seconds = time.perf_counter() - t0
        finite = np.asarray(metrics.pop("finite"), bool)
        if not finite.all():
            checkpointer.close()  # let an in-flight save of the last good state finish
            offset, bad_agent = _first_bad(finite)
            bad = iteration + offset + 1
            kept = (
                f"the last good checkpoint (iteration {last_good}) is in {run_dir / 'checkpoints'}"
                if last_good is not None
                else "no checkpoint had been written yet"
            )
            raise RunError(
                f"non-finite loss or parameters at iteration {bad} "
                f"(env step {bad * agent.steps_per_iteration}) in seed {who(bad_agent)['seed']}"
                + (f" of sweep point {spec.sweep[who(bad_agent)['config']]}" if spec.sweep else "")
                + "; training stopped "
                f"and {kept}. Lower the learning rate or check the env's rewards/observations."
            )
        rows = []
        for k in range(length):
            for a in range(num_agents):
                rows.append(
                    {"iteration": iteration + k + 1, **who(a)}
                    | {name: float(v[a, k]) for name, v in metrics.items()}
                )
        log.append(rows)
        iteration += length
        for k in range(length):
            loggers.scalars(
                {f"train/{name}": float(np.mean(v[:, k])) for name, v in metrics.items()},
                (iteration - length + k + 1) * agent.steps_per_iteration,
            )
        done = iteration >= agent.num_iterations
        chunks_done = iteration // chunk
        t0 = time.perf_counter()
        if done or chunks_done % eval_chunks == 0:
            results = run_evaluation(state, iteration)
        t1 = time.perf_counter()
        if done or chunks_done % ckpt_chunks == 0:
            checkpointer.save(iteration, state, {"iteration": iteration})
            last_good = iteration
        eval_seconds += t1 - t0
        checkpoint_seconds += time.perf_counter() - t1
        if bar is not None:
            bar.update(length * agent.steps_per_iteration)
            postfix = {
                "iter": f"{iteration}/{agent.num_iterations}",
                "return": f"{np.mean(metrics['episode_return'][:, -1]):.1f}",
                # env steps per second summed over every agent in the program
                "sps": f"{length * agent.steps_per_iteration * num_agents / chunk_seconds:.3g}",
            }
            bar.set_postfix(postfix)
    if bar is not None:
        bar.close()
    train_seconds = time.perf_counter() - train_start
    if results is None:  # resumed a run that had already finished
        results = run_evaluation(state, iteration)
    checkpointer.close()
    loggers.close()

    final = {k: np.asarray(v).tolist() for k, v in results.items()}
    per_point = [
        {
            "config": point,
            **{
                k: describe(np.asarray(v)[c * spec.num_seeds : (c + 1) * spec.num_seeds])
                for k, v in final.items()
                if k.endswith("return")
            },
        }
        for c, point in enumerate(points)
    ]
    summary = {
        "agent": spec.agent,
        "env": spec.env,
        "num_seeds": spec.num_seeds,
        "env_steps_per_seed": agent.num_iterations * agent.steps_per_iteration,
        "num_configs": len(points),
        "final_eval_per_seed": final,  # agent a: seed a % num_seeds of config a // num_seeds
        "final_eval_per_config": per_point,
        "final_eval": {k: describe(v) for k, v in final.items() if k.endswith("return")},
        "compile_seconds": compile_seconds,
        "train_seconds_after_compile": train_seconds,  # evaluation and checkpoints included
        "eval_seconds": eval_seconds,
        "checkpoint_seconds": checkpoint_seconds,
        "wall_seconds": time.perf_counter() - start_time,
        "devices": mesh.devices.size,
        "backend": jax.default_backend(),
        "run_dir": str(run_dir),
    }
    if primary:
        write_json(run_dir / "summary.json", summary)
    det = summary["final_eval"]["deterministic_return"]
    print(
        f"rlzoo: final deterministic return mean {det['mean']:.1f} +- {det['std']:.1f} "
        f"(IQM {det['iqm']:.1f}, min {det['min']:.1f}) over {spec.num_seeds} seed(s); "
        f"run directory {run_dir}"
    )
    return summary


# ----------------------------------------------------------------------------- absl entry

FLAGS = flags.FLAGS
flags.DEFINE_string("agent", "ppo", f"Agent: one of {', '.join(agents.AGENTS)}.")
flags.DEFINE_string("env", "gymnax/CartPole-v1", "Env id, e.g. gymnax/CartPole-v1, brax/hopper.")
flags.DEFINE_integer("num_seeds", 8, "Independent agents trained in one program.")
flags.DEFINE_integer("seed", 0, "Base seed; seed i of the run uses split(PRNGKey(seed))[i].")
flags.DEFINE_integer("total_timesteps", 0, "Env steps per seed; 0 keeps the config's value.")
flags.DEFINE_string("run_dir", "", "Run directory; default runs/<agent>-<env>-<time>.")
flags.DEFINE_integer("eval_every", 0, "Env steps between evaluations; 0: ten per run.")
flags.DEFINE_integer("checkpoint_every", 0, "Env steps between checkpoints; 0: as eval_every.")
flags.DEFINE_bool("resume", False, "Continue the run in --run_dir from its last checkpoint.")
flags.DEFINE_integer("num_devices", 0, "Devices to shard seeds over; 0: all that divide them.")
flags.DEFINE_integer("cpu_devices", os.cpu_count() or 1, "Host devices on CPU (one per core).")
flags.DEFINE_integer("max_to_keep", 3, "Checkpoints kept.")
flags.DEFINE_string("env_kwargs", "", "Env options, e.g. backend=positional,episode_length=1000.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.DEFINE_bool("tensorboard", True, "Write TensorBoard events.")
flags.DEFINE_string("wandb_project", "", "Also log to this Weights & Biases project (off: empty).")
flags.DEFINE_bool(
    "distributed", False, "Join a multi-process job (TPU pods, SLURM: detected by JAX)."
)
flags.DEFINE_string("coordinator_address", "", "host:port of process 0; implies --distributed.")
flags.DEFINE_integer("num_processes", 1, "Processes in the job (with --coordinator_address).")
flags.DEFINE_integer("process_id", 0, "This process's index (with --coordinator_address).")
flags.DEFINE_integer("coordinator_timeout", 60, "Seconds to wait for the job to form.")


def _flag_value(argv: list[str], name: str, default: str) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return default


def _parse_env_kwargs(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        if "=" not in item:
            raise ValueError(f"--env_kwargs item {item!r} is not key=value")
        key, value = item.split("=", 1)
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def define_config_flag(argv: list[str]) -> None:
    """``--config.<field>`` flags, typed by the chosen agent's Config and env preset."""
    agent_module = agents.get(_flag_value(argv, "agent", "ppo"))
    env_id = _flag_value(argv, "env", "gymnax/CartPole-v1")
    defaults = agent_module.default_config(env_id)
    fields = {f.name for f in dataclasses.fields(defaults)}
    for arg in argv:
        if arg.startswith("--config."):
            name = arg[len("--config.") :].split("=", 1)[0]
            if name not in fields:
                raise hparams.unknown_field_error(type(defaults), name)
    values = {}
    for field in dataclasses.fields(defaults):
        value = getattr(defaults, field.name)
        # A None default (e.g. "same as another field") still accepts a typed override.
        values[field.name] = config_dict.placeholder(tuple) if value is None else value
    config_flags.DEFINE_config_dict("config", config_dict.ConfigDict(values))


def start_process(program: str) -> None:
    """Quiet logging, and join the multi-process job when the flags ask for one."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    if FLAGS.distributed or FLAGS.coordinator_address:
        try:
            device_lib.initialize_distributed(
                FLAGS.coordinator_address,
                FLAGS.num_processes,
                FLAGS.process_id,
                FLAGS.coordinator_timeout,
            )
        except RuntimeError as error:
            sys.exit(f"{program}: error: {error}")


def spec_from_flags(kind: str = "") -> RunSpec:
    """The run the command line asks for (``kind`` prefixes the default run directory)."""
    overrides = FLAGS.config.to_dict()
    if FLAGS.total_timesteps:
        overrides["total_timesteps"] = FLAGS.total_timesteps
    run_dir = FLAGS.run_dir or time.strftime(
        f"runs/{kind}{FLAGS.agent}-{FLAGS.env.replace('/', '_')}-%Y%m%d-%H%M%S"
    )
    return RunSpec(
        agent=FLAGS.agent,
        env=FLAGS.env,
        env_kwargs=_parse_env_kwargs(FLAGS.env_kwargs),
        num_seeds=FLAGS.num_seeds,
        seed=FLAGS.seed,
        config=overrides,
        run_dir=run_dir,
        eval_every=FLAGS.eval_every,
        checkpoint_every=FLAGS.checkpoint_every,
        num_devices=FLAGS.num_devices,
        max_to_keep=FLAGS.max_to_keep,
    )


def main(argv: list[str]) -> None:
    del argv
    start_process("rlzoo.train")
    try:
        run(
            spec_from_flags(),
            progress=FLAGS.progress,
            tensorboard=FLAGS.tensorboard,
            resume=FLAGS.resume,
            wandb_project=FLAGS.wandb_project,
        )
    except (RunError, ValueError) as error:
        sys.exit(f"rlzoo.train: error: {error}")


def entry() -> None:
    try:
        define_config_flag(sys.argv)
    except ValueError as error:
        sys.exit(f"rlzoo.train: error: {error}")
    app.run(main)


if __name__ == "__main__":
    entry()
