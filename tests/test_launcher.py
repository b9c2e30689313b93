"""The launcher end to end: run directory, resume after a kill, sharding, clear errors."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo import envs
from rlzoo.agents import bc, ppo
from rlzoo.analysis import report
from rlzoo.analysis.logs import MetricsLog, read_rows
from rlzoo.core import hparams
from rlzoo.launch import devices as device_lib
from rlzoo.launch.callbacks import TensorBoard
from rlzoo.launch.runner import RunError, RunSpec, run

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_envs=4, num_steps=16, num_epochs=2, num_minibatches=2, num_eval_episodes=4)


def tiny_spec(run_dir, iterations=8, **changes):
    config = dict(TINY, total_steps=iterations * 64)
    spec = RunSpec(num_seeds=2, overrides=config, run_dir=str(run_dir), eval_every=128)
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def cli(*args, env=None, **kwargs):
    cmd = [sys.executable, "-m", "rlzoo.train", "--progress=false", "--tensorboard=false", *args]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    summary = run(tiny_spec(run_dir), callbacks=[TensorBoard()])
    return run_dir, summary


def test_run_directory_has_every_file(finished_run):
    run_dir, summary = finished_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run"]["num_seeds"] == 2 and config["config"]["num_steps"] == 16
    rows = read_rows(run_dir)
    train_rows = [r for r in rows if not r.get("eval")]
    eval_rows = [r for r in rows if r.get("eval")]
    assert sorted({(r["iteration"], r["seed"]) for r in train_rows}) == [
        (i, s) for i in range(1, 9) for s in range(2)
    ]
    assert {r["iteration"] for r in eval_rows} == {2, 4, 6, 8}
    (read,) = report.load_runs(run_dir)  # the report reads the same rows
    assert read.train_rows == train_rows and read.eval_rows == eval_rows
    assert any((run_dir / "tensorboard").iterdir())
    assert (
        sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())[-1] == "8"
    )
    saved = json.loads((run_dir / "summary.json").read_text())
    det = saved["final_eval"]["eval/deterministic_return"]
    per_seed = saved["final_eval_per_seed"]["eval/deterministic_return"]
    assert len(per_seed) == 2 and det["mean"] == pytest.approx(np.mean(per_seed))
    assert set(det) >= {"mean", "std", "iqm"}
    assert summary["steps_per_seed"] == 8 * 64


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    flags = [
        "--num_seeds=2",
        "--total_steps=3840",
        "--eval_every=64",
        "--checkpoint_every=64",
        *[f"--config.{k}={v}" for k, v in TINY.items()],
    ]
    whole = cli(*flags, f"--run_dir={tmp_path / 'whole'}")
    killed = cli(*flags, f"--run_dir={tmp_path / 'killed'}")
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline:
        steps = (
            [p for p in checkpoints.iterdir() if p.name.isdigit()] if checkpoints.exists() else []
        )
        if len(steps) >= 3:
            break
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "summary.json").exists(), "run ended before the kill"
    resumed = cli("--resume", f"--run_dir={tmp_path / 'killed'}")
    out_resumed, _ = resumed.communicate()
    out_whole, _ = whole.communicate()
    assert resumed.returncode == 0, out_resumed
    assert whole.returncode == 0, out_whole
    assert "resumed from iteration" in out_resumed

    def metrics(name):
        rows = read_rows(tmp_path / name)
        return sorted(rows, key=lambda r: (r["iteration"], r["seed"], bool(r.get("eval"))))

    assert metrics("killed") == metrics("whole")
    a = json.loads((tmp_path / "killed" / "summary.json").read_text())
    b = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert a["final_eval_per_seed"] == b["final_eval_per_seed"]


def test_seeds_sharded_over_four_devices_equal_one_device(tmp_path):
    script = textwrap.dedent(f"""
        import json, os, jax
        from rlzoo.launch.devices import device_memory_bytes
        from rlzoo.launch.runner import RunSpec, run
        assert len(jax.devices()) == 4, jax.devices()
        # The four CPU devices share the host's RAM: each is budgeted a quarter of 80%.
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        assert abs(device_memory_bytes(jax.devices()[0]) - 0.2 * ram) <= 1, ram
        out, needed = {{}}, {{}}
        for n in (1, 4):
            spec = RunSpec(num_seeds=4, num_devices=n, run_dir="{tmp_path}/d%d" % n,
                           overrides={dict(TINY, total_steps=6 * 64)!r}, eval_every=192)
            summary = run(spec, callbacks=[])
            out[n] = summary["final_eval_per_seed"]
            needed[n] = summary["compiled_bytes_per_device"]
        # The estimate is per device: one seed per device needs about a quarter.
        assert needed[4] < 0.5 * needed[1], needed
        print(json.dumps(out))
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(
        out["4"]["eval/deterministic_return"], out["1"]["eval/deterministic_return"], rtol=1e-5
    )
    rows = {n: read_rows(tmp_path / f"d{n}") for n in (1, 4)}
    for a, b in zip(rows[1], rows[4], strict=True):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-4, atol=1e-5)


def test_cli_end_to_end_prints_summary(tmp_path):
    proc = cli(
        "--num_seeds=2",
        "--total_steps=256",
        f"--run_dir={tmp_path / 'cli'}",
        *[f"--config.{k}={v}" for k, v in TINY.items()],
        "--progress=true",
        "--compile_cache=on",  # auto is off on a CPU
        f"--compile_cache_dir={tmp_path / 'cache'}",
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "final eval/deterministic_return" in out
    assert (tmp_path / "cli" / "summary.json").exists()
    assert any((tmp_path / "cache").iterdir())  # the compiled programs, for the next launch


def test_an_unusable_compile_cache_directory_is_a_note_not_a_failure(tmp_path):
    (tmp_path / "file").write_text("")
    note = device_lib.use_compile_cache(str(tmp_path / "file" / "cache"))
    assert note and "compile cache off" in note and "--compile_cache_dir" in note


# ------------------------------------------------------------------ bad input, clear errors


def test_unknown_agent_env_and_config_field_name_close_matches(tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'ppo'"):
        run(tiny_spec(tmp_path / "a", agent="ppp"), callbacks=[])
    with pytest.raises(ValueError, match="CartPole-v1"):
        run(tiny_spec(tmp_path / "b", env="gymnax/CartPole-v2"), callbacks=[])
    with pytest.raises(ValueError, match="learning_rate"):
        hparams.parse_value(ppo.Config, "learning_rat", "0.1")
    with pytest.raises(ValueError, match="learning_rate"):
        run(tiny_spec(tmp_path / "c", overrides=dict(TINY, learning_rat=0.1)), callbacks=[])


def test_bad_seed_and_device_counts_are_refused(tmp_path):
    with pytest.raises(ValueError, match="num_seeds must be >= 1"):
        run(tiny_spec(tmp_path / "a", num_seeds=0), callbacks=[])
    with pytest.raises(ValueError, match="num_devices = 3 but JAX sees only 1"):
        run(tiny_spec(tmp_path / "b", num_devices=3), callbacks=[])
    with pytest.raises(ValueError, match=r"num_envs \* num_steps = 4 \* 16 = 64 .* 3"):
        run(tiny_spec(tmp_path / "c", overrides=dict(TINY, num_minibatches=3)), callbacks=[])


def test_resume_on_missing_or_corrupt_run_directory(tmp_path, finished_run):
    with pytest.raises(RunError, match=r"no config\.json"):
        run(tiny_spec(tmp_path / "missing"), resume=True, callbacks=[])
    run_dir, _ = finished_run
    corrupt = tmp_path / "corrupt"
    subprocess.run(["cp", "-r", str(run_dir), str(corrupt)], check=True)
    for path in (corrupt / "checkpoints" / "8").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    with pytest.raises(RunError, match="cannot be read"):
        run(tiny_spec(corrupt), resume=True, callbacks=[])
    with pytest.raises(RunError, match="already holds a run"):
        run(tiny_spec(run_dir), callbacks=[])


def test_non_finite_loss_stops_with_iteration_and_seed_and_keeps_checkpoint(tmp_path):
    envs.register("test/NaNRewardCartPole", NaNRewardAfter)
    spec = tiny_spec(
        tmp_path / "nan",
        iterations=12,
        env="test/NaNRewardCartPole",
        eval_every=64,
        checkpoint_every=64,
    )
    with pytest.raises(RunError, match=r"non-finite .* iteration 7 .* seed 0.*iteration 6"):
        run(spec, callbacks=[])
    steps = [p.name for p in (tmp_path / "nan" / "checkpoints").iterdir() if p.name.isdigit()]
    assert max(map(int, steps)) == 6


class NaNRewardAfter(envs.Wrapper):
    """CartPole whose reward turns NaN from the 97th step of each env (iteration 7 here)."""

    def __init__(self):
        env, _ = envs.make("gymnax/CartPole-v1")
        super().__init__(env)

    def reset(self, key, params):
        obs, state = self.env.reset(key, params)
        return obs, (state, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params):
        inner, t = state
        obs, inner, reward, terminated, truncated, info = self.env.step(key, inner, action, params)
        reward = jnp.where(t >= 6 * 16, jnp.nan, reward)
        return obs, (inner, t + 1), reward, terminated, truncated, info


def test_cli_bad_flags_give_one_line_and_describe_lists_every_field():
    for flag, message in (
        ("--config.learning_rat=0.1", "has no field 'learning_rat'. Did you mean 'learning_rate'"),
        ("--total_timesteps=5000", "renamed --total_steps"),
        ("--config.num_envs=4.5", "holds a int"),
    ):
        proc = cli(flag)
        out, _ = proc.communicate(timeout=120)
        assert message in out and proc.returncode == 2, (proc.returncode, out)
        assert "Traceback" not in out and out.strip().count("\n") == 0, out
    proc = cli("--agent=bc", "--describe")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    for field in bc.Config.__dataclass_fields__:
        assert field in out, (field, out)


def wait_for(path_test, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and not path_test():
        time.sleep(0.02)
    assert path_test(), "timed out waiting for the run"


def test_sigterm_checkpoints_and_resume_equals_uninterrupted_run(tmp_path):
    flags = [
        "--num_seeds=2",
        "--total_steps=7680",
        "--eval_every=640",
        *[f"--config.{k}={v}" for k, v in TINY.items()],
    ]
    whole = cli(*flags, f"--run_dir={tmp_path / 'whole'}")
    stopped = cli(*flags, f"--run_dir={tmp_path / 'stopped'}")
    log = tmp_path / "stopped" / "metrics"
    wait_for(lambda: log.exists() and any(log.glob("train-*.npz")))
    stopped.send_signal(signal.SIGTERM)
    out, _ = stopped.communicate(timeout=300)
    assert stopped.returncode == 130, out
    assert "SIGTERM at iteration" in out and "--resume" in out and "Traceback" not in out
    assert not (tmp_path / "stopped" / "summary.json").exists(), "run ended before the signal"
    resumed = cli("--resume", f"--run_dir={tmp_path / 'stopped'}")
    out_resumed, _ = resumed.communicate(timeout=300)
    out_whole, _ = whole.communicate(timeout=300)
    assert resumed.returncode == 0 and whole.returncode == 0, out_resumed + out_whole
    a = json.loads((tmp_path / "stopped" / "summary.json").read_text())
    b = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert a["final_eval_per_seed"] == b["final_eval_per_seed"]


def test_run_killed_before_its_first_checkpoint_resumes(tmp_path):
    flags = ["--num_seeds=2", "--total_steps=640", *[f"--config.{k}={v}" for k, v in TINY.items()]]
    killed = cli(*flags, f"--run_dir={tmp_path / 'early'}")
    wait_for(lambda: (tmp_path / "early" / "config.json").exists())
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed = cli("--resume", f"--run_dir={tmp_path / 'early'}")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert (tmp_path / "early" / "summary.json").exists()


@pytest.mark.parametrize(
    "flag,message",
    [
        ("--config.learning_rate=-1", "learning_rate must be a finite number > 0"),
        ("--config.learning_rate=nan", "learning_rate must be a finite number > 0"),
        ("--config.clip_eps=0", "clip_eps must be a finite number > 0"),
        ("--config.gamma=1.5", r"gamma must lie in \(0, 1\]"),
        ("--config.hidden_sizes=()", "hidden_sizes needs at least one layer"),
        ("--total_steps=0", "total_steps = 0 is less than one iteration"),
    ],
)
def test_bad_config_values_are_refused(tmp_path, flag, message):
    name, _, text = flag[2:].partition("=")
    if name.startswith("config."):
        overrides = {name[7:]: hparams.parse_value(ppo.Config, name[7:], text)}
    else:
        overrides = {"total_steps": int(text)}
    with pytest.raises(ValueError, match=message):
        run(RunSpec(overrides=overrides, run_dir=str(tmp_path / "r")), callbacks=[])


def test_run_directory_lock_refuses_a_live_owner_and_takes_over_a_stale_one(tmp_path):
    from rlzoo.launch.files import RunDirInUse, RunLock

    first = RunLock(tmp_path)
    first.acquire()
    with pytest.raises(RunDirInUse, match=f"in use by process {os.getpid()}"):
        RunLock(tmp_path).acquire()
    first.release()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid}))
    taker = RunLock(tmp_path)
    taker.acquire()  # the owner is gone: stale, taken over
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    taker.release()
    assert not (tmp_path / ".lock").exists()


def test_metrics_log_survives_a_cut_write_and_truncates_to_a_checkpoint(tmp_path):
    log = MetricsLog(tmp_path / "metrics")
    loss = np.arange(12, dtype=np.float32).reshape(2, 6)  # 2 agents, 6 iterations
    log.append_train(1, {"loss": loss[:, :2]})
    log.append_eval(2, {"return": np.array([1.0, 2.0])})
    (tmp_path / "metrics" / ".train-000000003.npz.x.tmp").write_bytes(b"PK\x03")  # a crash
    log.append_train(3, {"loss": loss[:, 2:]})
    assert log.train()["iteration"].tolist() == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(log.train()["loss"], loss)
    rows = log.rows(num_seeds=1, steps_per_iteration=10)
    assert len(rows) == 14 and rows[-1] == {
        "iteration": 2, "seed": 0, "config": 1, "eval": True, "step": 20, "return": 2.0
    }  # fmt: skip
    log.truncate_after(4)  # a chunk that runs past the checkpoint is cut there
    np.testing.assert_array_equal(log.train()["loss"], loss[:, :4])
    assert log.evaluations()["iteration"].tolist() == [2]


@pytest.mark.parametrize(
    "env_id,kwargs,message",
    [
        ("gymnax/CartPole-v1", {"foo": 1}, "does not take env option.*accepts: none"),
        ("gymnax/Breakout-MinAtar", {"foo": 1}, "accepts: use_minimal_action_set"),
    ],
)
def test_unknown_env_kwargs_list_the_accepted_ones(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        envs.make(env_id, **kwargs)


def test_unwritable_run_directory_is_one_clear_error(tmp_path):
    if os.geteuid() == 0:
        # root writes anywhere; a path under a regular file cannot be made by anyone
        (tmp_path / "file").write_text("")
        target = tmp_path / "file" / "run"
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        target = tmp_path / "ro" / "run"
    with pytest.raises(RunError, match="cannot create the run directory"):
        run(tiny_spec(target), callbacks=[])


def test_resume_refuses_changed_flags_and_applies_the_safe_ones(tmp_path, finished_run):
    run_dir, summary = finished_run
    spec = RunSpec(run_dir=str(run_dir))
    with pytest.raises(RunError, match=r"--num_seeds: 2 -> 4.*--config.learning_rate"):
        changes = {"num_seeds": 4, "overrides": {"learning_rate": 0.5}}
        run(spec, resume=True, changes=changes, callbacks=[])
    same = {"num_seeds": 2, "eval_every": 64, "overrides": {"num_steps": 16}}
    again = run(spec, resume=True, changes=same, callbacks=[])  # finished: nothing to do
    assert again["final_eval_per_seed"] == json.loads(json.dumps(summary["final_eval_per_seed"]))


def test_resume_extends_total_steps_as_if_planned_from_the_start(tmp_path, finished_run):
    """A larger --total_steps on resume trains on; the result equals the longer run."""
    run_dir, _ = finished_run  # anneal_lr: its schedule spans the budget, so refused
    longer = {"overrides": {"total_steps": 16 * 64}}
    with pytest.raises(RunError, match=r"anneal_lr.*cannot grow"):
        run(RunSpec(run_dir=str(run_dir)), resume=True, changes=longer, callbacks=[])
    constant = dict(TINY, anneal_lr=False)
    short = tiny_spec(tmp_path / "short", iterations=4, overrides=dict(constant, total_steps=256))
    run(short, callbacks=[])
    with pytest.raises(RunError, match=r"--config.total_steps: 256 -> 128"):
        run(short, resume=True, changes={"overrides": {"total_steps": 128}}, callbacks=[])
    extended = run(short, resume=True, changes={"overrides": {"total_steps": 512}}, callbacks=[])
    straight = run(
        tiny_spec(tmp_path / "straight", overrides=dict(constant, total_steps=512)), callbacks=[]
    )
    assert extended["steps_per_seed"] == 512
    assert extended["final_eval_per_seed"] == straight["final_eval_per_seed"]
    jax.tree.map(
        np.testing.assert_array_equal,
        final_params(tmp_path / "short"),
        final_params(tmp_path / "straight"),
    )
    config = json.loads((tmp_path / "short" / "config.json").read_text())
    assert config["config"]["total_steps"] == 512 and config["agent"]["num_iterations"] == 8
    rows = read_rows(tmp_path / "short")
    train_rows = [(r["iteration"], r["seed"]) for r in rows if "eval" not in r]
    assert sorted(train_rows) == [(i, s) for i in range(1, 9) for s in range(2)]


def final_params(run_dir):
    import orbax.checkpoint as ocp

    steps = [int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()]
    path = run_dir / "checkpoints" / str(max(steps)) / "state"
    checkpointer = ocp.StandardCheckpointer()
    metadata = checkpointer.metadata(path.absolute())
    metadata = getattr(metadata, "item_metadata", metadata)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])  # saved over 2 devices
    target = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata
    )
    return checkpointer.restore(path.absolute(), target)


def test_fault_injection_kill_anywhere_then_resume_is_bit_identical(tmp_path, seed=5):
    """SIGKILL at named points, resume: the same params, summary and metric rows."""
    flags = [
        "--num_seeds=2",
        f"--seed={seed}",
        "--total_steps=1280",
        "--eval_every=256",
        "--checkpoint_every=256",
        *[f"--config.{k}={v}" for k, v in TINY.items()],
    ]
    points = {
        "before_first_checkpoint": "before_checkpoint@4",
        "checkpoint_in_flight": "checkpoint_in_flight@8",
        "final_evaluation": "final_evaluation@20",
    }
    # The whole run first: it fills the session's compile cache, which the killed runs and
    # their resumes (started side by side) then load from.
    out, _ = (whole := cli(*flags, f"--run_dir={tmp_path / 'whole'}")).communicate(timeout=300)
    assert whole.returncode == 0, out
    procs = {
        name: cli(*flags, f"--run_dir={tmp_path / name}", env={"RLZOO_FAILPOINT": point})
        for name, point in points.items()
    }
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, (name, out)
        assert not (tmp_path / name / "summary.json").exists()
    reference = json.loads((tmp_path / "whole" / "summary.json").read_text())
    reference_params = final_params(tmp_path / "whole")
    resumed = {name: cli("--resume", f"--run_dir={tmp_path / name}") for name in points}
    for name, proc in resumed.items():
        out, _ = proc.communicate(timeout=300)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["final_eval_per_seed"] == reference["final_eval_per_seed"], (name, out)
        params = final_params(tmp_path / name)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
        rows = read_rows(tmp_path / name)
        assert rows == read_rows(tmp_path / "whole"), name


def test_hand_edited_config_json_on_resume_is_one_clear_error(tmp_path, finished_run):
    run_dir, _ = finished_run
    for name, text in (("garbled", "{not json"), ("foreign", json.dumps({"run": {"x": 1}}))):
        edited = tmp_path / name
        subprocess.run(["cp", "-r", str(run_dir), str(edited)], check=True)
        stored = json.loads((edited / "config.json").read_text())
        if name == "foreign":
            stored["run"]["colour"] = "blue"
            text = json.dumps(stored)
        (edited / "config.json").write_text(text)
        with pytest.raises(RunError, match="config"):
            run(RunSpec(run_dir=str(edited)), resume=True, callbacks=[])
    older = tmp_path / "format2"  # written by an older rlzoo (metrics.jsonl)
    subprocess.run(["cp", "-r", str(run_dir), str(older)], check=True)
    stored = json.loads((older / "config.json").read_text())
    (older / "config.json").write_text(json.dumps({**stored, "format": 2}))
    with pytest.raises(RunError, match=r"older rlzoo \(run-directory format 2, this is 3\)"):
        run(RunSpec(run_dir=str(older)), resume=True, callbacks=[])


def test_a_full_disk_while_writing_stops_cleanly_and_keeps_the_checkpoints(tmp_path, monkeypatch):
    import errno

    spec = tiny_spec(tmp_path / "full", iterations=8, checkpoint_every=128)
    calls = []
    original = MetricsLog._write

    def write(self, name, arrays):
        calls.append(name)
        if len(calls) == 4:  # a later write finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, name, arrays)

    monkeypatch.setattr(MetricsLog, "_write", write)
    with pytest.raises(RunError, match=r"No space left on device.*--resume"):
        run(spec, callbacks=[])
    monkeypatch.setattr(MetricsLog, "_write", original)
    summary = run(spec, resume=True, callbacks=[])  # the kept checkpoint resumes
    assert summary["steps_per_seed"] == 8 * 64
