"""Two processes on this machine form one JAX job; results equal a single-process run."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlzoo.analysis.logs import read_rows

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_envs=4, num_steps=16, num_epochs=2, num_minibatches=2, num_eval_episodes=4)
FLAGS = [
    "--num_seeds=2",
    "--total_steps=384",
    "--eval_every=192",
    "--progress=false",
    "--tensorboard=false",
    *[f"--config.{k}={v}" for k, v in TINY.items()],
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*args, devices=1):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    cmd = [sys.executable, "-m", "rlzoo.train", "--cpu_devices=1", *FLAGS, *args]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_two_processes_equal_one_process(tmp_path):
    port = free_port()
    job = [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2"]
    procs = [launch(f"--run_dir={tmp_path / 'multi'}", *job, f"--process_id={i}") for i in range(2)]
    single = launch(f"--run_dir={tmp_path / 'single'}", devices=2)
    outputs = [p.communicate(timeout=500)[0] for p in [*procs, single]]
    for p, out in zip([*procs, single], outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
    multi = json.loads((tmp_path / "multi" / "summary.json").read_text())
    one = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert multi["devices"] == 2 and one["devices"] == 2
    np.testing.assert_allclose(
        multi["final_eval_per_seed"]["eval/deterministic_return"],
        one["final_eval_per_seed"]["eval/deterministic_return"],
        rtol=1e-5,
    )
    rows = [read_rows(tmp_path / name) for name in ("multi", "single")]
    assert len(rows[0]) == len(rows[1]) > 0
    for a, b in zip(*rows, strict=True):
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-4, atol=1e-5)


def test_unreachable_coordinator_fails_fast_with_a_clear_message(tmp_path):
    proc = launch(
        f"--run_dir={tmp_path / 'x'}",
        f"--coordinator_address=127.0.0.1:{free_port()}",
        "--num_processes=2",
        "--process_id=1",
        "--coordinator_timeout=5",
    )
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "could not join the distributed job" in out and "within 5 s" in out
