"""Placing the batch of agents on devices: the seed axis is sharded over a 1-D mesh."""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def request_cpu_devices(count: int) -> None:
    """Ask XLA for ``count`` host (CPU) devices so seeds run in parallel on the cores.

    Must run before JAX creates its backends. It only affects the CPU platform; on GPU or
    TPU the accelerators are the devices and this changes nothing.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags or count <= 1:
        return
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def seed_mesh(num_seeds: int, num_devices: int = 0) -> tuple[Mesh, str | None]:
    """A mesh for ``num_seeds`` agents and a note on what was chosen, if anything changed.

    ``num_devices = 0`` uses the largest number of available devices that divides the seed
    count (so every device holds the same number of seeds). An explicit ``num_devices``
    that is unavailable or does not divide the seeds is refused.
    """
    if num_seeds < 1:
        raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
    devices = jax.devices()
    note = None
    if num_devices == 0:
        usable = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
        if usable < len(devices):
            note = (
                f"{num_seeds} seed(s) do not divide over {len(devices)} devices; "
                f"using {usable} device(s). Use a multiple of {len(devices)} seeds to use all."
            )
        num_devices = usable
    elif num_devices > len(devices):
        raise ValueError(
            f"num_devices = {num_devices} but JAX sees only {len(devices)} device(s): "
            f"{[str(d) for d in devices]}."
        )
    elif num_seeds % num_devices:
        raise ValueError(
            f"num_seeds = {num_seeds} does not divide over num_devices = {num_devices}; "
            f"use a multiple of {num_devices} seeds, or --num_devices=0 to choose automatically."
        )
    return Mesh(np.array(devices[:num_devices]), ("seeds",)), note


def seed_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (seed) axis split over the mesh; every other axis whole on each device."""
    return NamedSharding(mesh, PartitionSpec("seeds"))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (shared data such as a dataset)."""
    return NamedSharding(mesh, PartitionSpec())


def device_memory_bytes(device: jax.Device) -> int:
    """Memory a program may use on ``device``, the same notion on every backend.

    An accelerator has its own memory: its allocator limit. The CPU devices of a process
    all draw on the host's RAM, so each gets an equal part of 80% of it. Compared with
    :func:`compiled_bytes`, which is also per device.
    """
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    sharing = sum(d.platform == device.platform for d in jax.local_devices()) or 1
    return int(0.8 * ram / sharing)


def compiled_bytes(compiled) -> int | None:
    """XLA's estimate of the memory one compiled program needs per device, if known.

    For a program partitioned over devices XLA reports one device's share. Donated
    arguments that alias outputs are counted once.
    """
    try:
        m = compiled.memory_analysis()
    except Exception:  # not every backend reports it
        return None
    if m is None:
        return None
    aliased = getattr(m, "alias_size_in_bytes", 0)
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - aliased + m.temp_size_in_bytes)


def global_array(host_value: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from a value every process holds whole on the host.

    Each process places only the shards of its own devices (the whole value, for a
    replicated sharding), so the same code serves one process and many (multi-host TPU
    pods, several GPU hosts).
    """
    host_value = np.asarray(host_value)
    return jax.make_array_from_callback(host_value.shape, sharding, lambda idx: host_value[idx])


def to_host(tree):
    """Fetch a (possibly multi-process) sharded pytree whole onto every host as numpy."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def _wait_for_port(address: str, process_id: int, num_processes: int, timeout: float) -> None:
    import socket
    import time

    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return
        except OSError as error:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"could not join the distributed job at {address} as process {process_id} "
                    f"of {num_processes} within {timeout:g} s: nothing accepts connections "
                    f"there ({error}). Start process 0 (the coordinator) first, and check "
                    "--coordinator_address, --num_processes and --process_id on every host."
                ) from error
            time.sleep(0.2)


def initialize_distributed(
    coordinator_address: str, num_processes: int, process_id: int, timeout_seconds: int
) -> None:
    """Join a multi-process JAX job (call before anything touches a device).

    With no coordinator address JAX detects the cluster itself (TPU pods, SLURM, ...).
    An unreachable coordinator fails after ``timeout_seconds`` with a message that says so.
    """
    # Cross-process collectives on CPU (gathering metrics) need an implementation; GPU and
    # TPU backends ignore this setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator_address and process_id != 0:
        # JAX's client aborts the whole process (no Python exception) when it cannot reach
        # the coordinator; probing the port first gives a clear error instead.
        _wait_for_port(coordinator_address, process_id, num_processes, timeout_seconds)
    kwargs = {}
    if coordinator_address:
        kwargs = dict(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    try:
        jax.distributed.initialize(initialization_timeout=timeout_seconds, **kwargs)
    except Exception as error:
        where = coordinator_address or "the address JAX detected for this cluster"
        raise RuntimeError(
            f"could not join the distributed job at {where} as process {process_id} of "
            f"{num_processes} within {timeout_seconds} s ({type(error).__name__}: {error}). "
            "Check that the coordinator (process 0) is running and reachable, and that "
            "--coordinator_address, --num_processes and --process_id agree on every host."
        ) from error


def host_only() -> bool:
    """True when JAX's default backend is the CPU (no GPU or TPU)."""
    return jax.default_backend() == "cpu"


def default_compile_cache_dir() -> str:
    """``$XDG_CACHE_HOME/rlzoo/jax`` (``~/.cache/rlzoo/jax`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "rlzoo", "jax")


def use_compile_cache(directory: str) -> str | None:
    """Keep compiled programs in ``directory`` so that the same job compiles once.

    JAX's persistent compilation cache, keyed by the program, the devices and the
    versions; a later launch of the same job loads its programs instead of compiling them.
    Returns a one-line note when the directory cannot be used (the run goes on without it).
    """
    try:
        os.makedirs(directory, exist_ok=True)
        if not os.access(directory, os.W_OK):
            raise PermissionError(f"{directory} is not writable")
    except OSError as error:
        return f"compile cache off ({error}); choose another --compile_cache_dir"
    jax.config.update("jax_compilation_cache_dir", directory)
    # Cache every program that took a noticeable time to compile, whatever its size.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return None
