"""The command line shared by ``rlzoo.train`` and ``rlzoo.sweep``: flags -> a ``RunSpec``.

``--config.<field>=<value>`` flags are read here, before absl sees the command line, and
typed by the chosen agent's ``Config`` (``rlzoo.core.hparams.parse_value``): no second
config form is needed. Everything below this module is a library without flags.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from absl import app, flags, logging

from rlzoo import agents
from rlzoo.core import hparams
from rlzoo.launch import devices as device_lib
from rlzoo.launch.configs import describe_config
from rlzoo.launch.runner import Interrupted, RunError, RunSpec

FLAGS = flags.FLAGS
flags.DEFINE_string("agent", "ppo", f"Agent: one of {', '.join(agents.AGENTS)}.")
flags.DEFINE_string("env", "gymnax/CartPole-v1", "Env id, e.g. gymnax/CartPole-v1, brax/hopper.")
flags.DEFINE_string(
    "dataset", "", "Dataset for agents that learn from data (bc, td3_bc, iql, prdc, a2pr): a "
    ".npz file, a Minari dataset folder, or minari:<dataset id>.",
)  # fmt: skip
flags.DEFINE_string("base", "", "Run directory whose trained agent this run starts from (grpo).")
flags.DEFINE_integer("base_seed", 0, "Which agent of the --base run (its index in that run).")
flags.DEFINE_integer("num_seeds", 8, "Independent agents trained in one program.")
flags.DEFINE_integer("seed", 0, "Base seed; seed i of the run uses split(PRNGKey(seed))[i].")
flags.DEFINE_integer(
    "total_steps", None, "Budget per seed in the agent's step unit (PPO: env steps; BC: "
    "gradient steps); default: the config's total_steps.",
)  # fmt: skip
flags.DEFINE_string("run_dir", "", "Run directory; default runs/<agent>-<env>-<time>.")
flags.DEFINE_integer("eval_every", 0, "Agent steps between evaluations; 0: ten per run.")
flags.DEFINE_integer("checkpoint_every", 0, "Agent steps between checkpoints; 0: as eval_every.")
flags.DEFINE_bool("resume", False, "Continue the run in --run_dir from its last checkpoint.")
flags.DEFINE_bool(
    "describe", False, "Print every --config.<field> of --agent for --env (type, default, "
    "preset value, static or traced, doc) and exit.",
)  # fmt: skip
flags.DEFINE_integer("num_devices", 0, "Devices to shard seeds over; 0: all that divide them.")
flags.DEFINE_integer("cpu_devices", os.cpu_count() or 1, "Host devices on CPU (one per core).")
flags.DEFINE_integer("max_to_keep", 3, "Checkpoints kept.")
flags.DEFINE_float(
    "memory_limit_gib", 0.0, "Memory a program may use per device (GiB); 0: the device's. "
    "A sweep splits its groups to fit.",
)  # fmt: skip
flags.DEFINE_enum(
    "compile_cache", "auto", ["auto", "on", "off"], "Keep compiled programs on disk, so that "
    "launching the same job again skips most of the compile (JAX's persistent compilation "
    "cache). auto: on for GPU/TPU, off on CPU, where XLA logs a long machine-feature "
    "warning each time it loads a cached program.",
)  # fmt: skip
flags.DEFINE_string(
    "compile_cache_dir", device_lib.default_compile_cache_dir(), "Where --compile_cache keeps them."
)
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

# Flags that were renamed: old name -> the message that replaces it.
RENAMED = {
    "total_timesteps": "--total_timesteps was renamed --total_steps (it counts the agent's step "
    "unit: env steps for PPO, gradient steps for BC); the Config field is total_steps too.",
}


def fail(program: str, error: Exception) -> None:
    """A user's mistake: one line on stderr and exit status 2 (a usage error), no traceback."""
    print(f"{program}: error: {error}", file=sys.stderr)
    sys.exit(2)


def flag_value(argv: list[str], name: str, default: str) -> str:
    """The value of ``--name=v`` or ``--name v`` in ``argv`` (before absl parses it)."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return default


def take_prefixed(argv: list[str], prefix: str) -> tuple[list[str], dict[str, str]]:
    """Remove ``--<prefix>.<name>=<text>`` (or ``... <text>``) from ``argv``: (rest, texts)."""
    rest, texts, i = [], {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(f"--{prefix}."):
            name, has_value, text = arg[len(prefix) + 3 :].partition("=")
            if not has_value:
                if i + 1 >= len(argv):
                    raise ValueError(f"--{prefix}.{name} needs a value")
                text, i = argv[i + 1], i + 1
            texts[name] = text
        else:
            rest.append(arg)
        i += 1
    return rest, texts


def check_renamed(argv: list[str]) -> None:
    for arg in argv:
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        if name in RENAMED:
            raise ValueError(RENAMED[name])


def parse_env_kwargs(text: str) -> dict[str, Any]:
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
            out[key] = {"true": True, "false": False, "none": None}.get(value.lower(), value)
    return out


def start_process(program: str) -> None:
    """Quiet logging, join the multi-process job when the flags ask for one, compile cache."""
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
            fail(program, error)
    # After joining a job: asking for the backend starts it.
    wanted = FLAGS.compile_cache
    if wanted == "auto":
        wanted = "off" if device_lib.host_only() else "on"
    if wanted == "on":
        note = device_lib.use_compile_cache(FLAGS.compile_cache_dir)
        if note:
            print(f"{program}: {note}", file=sys.stderr)


# Flags that are fields of RunSpec (what a resumed run compares with the stored spec).
SPEC_FLAGS = (
    "agent", "env", "env_kwargs", "dataset", "base", "base_seed", "num_seeds", "seed", "eval_every",
    "checkpoint_every", "num_devices", "max_to_keep",
)  # fmt: skip


def resume_changes(spec: RunSpec) -> dict[str, Any]:
    """What the command line sets explicitly, for ``run(..., changes=...)`` on --resume."""
    changes = {name: getattr(spec, name) for name in SPEC_FLAGS if FLAGS[name].present}
    if FLAGS["memory_limit_gib"].present:
        changes["memory_limit"] = spec.memory_limit
    if spec.overrides:
        changes["overrides"] = spec.overrides
    return changes


def spec_from_flags(overrides: dict[str, Any], kind: str = "") -> RunSpec:
    """The run the command line asks for (``kind`` prefixes the default run directory)."""
    overrides = dict(overrides)
    if FLAGS.total_steps is not None:  # an explicit 0 is refused by the agent, not ignored
        overrides["total_steps"] = FLAGS.total_steps
    # The pid keeps two launches in the same second apart.
    run_dir = FLAGS.run_dir or time.strftime(
        f"runs/{kind}{FLAGS.agent}-{FLAGS.env.replace('/', '_')}-%Y%m%d-%H%M%S-{os.getpid()}"
    )
    return RunSpec(
        agent=FLAGS.agent,
        env=FLAGS.env,
        env_kwargs=parse_env_kwargs(FLAGS.env_kwargs),
        dataset=FLAGS.dataset,
        base=FLAGS.base,
        base_seed=FLAGS.base_seed,
        num_seeds=FLAGS.num_seeds,
        seed=FLAGS.seed,
        overrides=overrides,
        run_dir=run_dir,
        eval_every=FLAGS.eval_every,
        checkpoint_every=FLAGS.checkpoint_every,
        num_devices=FLAGS.num_devices,
        max_to_keep=FLAGS.max_to_keep,
        memory_limit=int(FLAGS.memory_limit_gib * 2**30),
    )


def entry(
    program: str,
    main: Callable[[RunSpec], None],
    extra: Callable[[list[str], Any], list[str]] | None = None,
    kind: str = "",
) -> None:
    """Parse the command line and call ``main(spec)``; user errors exit with one line.

    ``extra(argv, config_cls)`` may take further arguments out of ``argv`` (the sweep's
    ``--sweep.<field>``) and returns the rest; ``kind`` prefixes the default run directory.
    """
    # Before JAX starts its backends: one host device per core, so seeds run in parallel.
    device_lib.request_cpu_devices(int(flag_value(sys.argv, "cpu_devices", str(os.cpu_count()))))
    try:
        check_renamed(sys.argv)
        agent_module = agents.get(flag_value(sys.argv, "agent", "ppo"))
        argv, texts = take_prefixed(sys.argv, "config")
        overrides = {
            name: hparams.parse_value(agent_module.Config, name, text)
            for name, text in texts.items()
        }
        if extra is not None:
            argv = extra(argv, agent_module.Config)
    except ValueError as error:
        fail(program, error)

    def absl_main(argv: list[str]) -> None:
        del argv
        if FLAGS.describe:
            print(describe_config(agent_module, FLAGS.env))
            return
        start_process(program)
        try:
            spec = spec_from_flags(overrides, kind)
            main(spec)
        except Interrupted as stopped:  # SIGINT / SIGTERM: checkpointed, not a mistake
            print(
                f"{program}: stopped: {stopped}. Continue with python -m {program} --resume "
                f"--run_dir={spec.run_dir}",
                file=sys.stderr,
            )
            sys.exit(130)
        except (RunError, ValueError) as error:
            fail(program, error)
        except KeyboardInterrupt:  # before training started (building, compiling)
            print(
                f"{program}: interrupted before training began; rerun the command, or "
                "add --resume to restart it in the same --run_dir",
                file=sys.stderr,
            )
            sys.exit(130)

    app.run(absl_main, argv=argv)
