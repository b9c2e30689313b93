"""Test hygiene shared by every test file."""

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

# One persistent compilation cache for the whole session: both xdist workers and every
# subprocess a test starts (``rlzoo.train``, ``rlzoo.sweep``, resumed runs) inherit these
# variables, so a program compiled once is loaded afterwards instead of compiled again.
# JAX reads them when it is imported. The cache is fresh per session and removed after it.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="rlzoo-test-jax-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_sessionfinish(session):
    if _OWN_CACHE:
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux: read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(autouse=True)
def kill_leftover_children():
    """A subprocess a test started and left running (a timeout, a failed assert) is killed."""
    before = set(_children(os.getpid()))
    yield
    for pid in set(_children(os.getpid())) - before:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def checkpoint_round_trip(tmp_path):
    """``round_trip(state) -> (restored, record)``: save under ``tmp_path/checkpoints`` with a
    record, then restore into the state's shapes, as a resumed run does."""
    from rlzoo.launch.checkpoints import Checkpointer

    def round_trip(state, record=None):
        import jax

        checkpointer = Checkpointer(tmp_path / "checkpoints")
        checkpointer.save(1, state, record or {"iteration": 1})
        checkpointer.wait()
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
        try:
            return checkpointer.restore(1, abstract)
        finally:
            checkpointer.close()

    return round_trip


@pytest.fixture
def masked_train_and_act():
    """``run(module, config, env, params) -> metrics``: two iterations of ``module``'s
    ``make_train`` in one program, then the trained policy acts on 8 fresh resets; asserts
    finite metrics and weights, per-entry ``MultiDiscrete`` actions that the observation's
    ``action_mask`` allows (and a mask that forbids something)."""

    def run(module, config, env, params):
        import jax
        import numpy as np

        agent = module.make_agent(config, env, params)

        @jax.jit
        def train_and_act(key):
            state, metrics = module.make_train(config, env, params)(key)
            obs, _ = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, 8), params)
            action = agent.act(module.policy_params(state), obs, key, False)
            return state, metrics, obs["action_mask"], action

        state, metrics, mask, action = train_and_act(jax.random.key(0))
        mask, action = np.asarray(mask), np.asarray(action)
        assert metrics["loss/total"].shape == (2,)
        assert all(bool(np.all(np.isfinite(v))) for v in metrics.values())
        assert all(bool(np.all(np.isfinite(p))) for p in jax.tree.leaves(state.params))
        assert action.shape == (8, *env.action_space(params).shape) and not mask.all()
        assert np.all(np.take_along_axis(mask, action[..., None], -1))
        return metrics

    return run
