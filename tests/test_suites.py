"""Tests for the optional suites' adapters (rlzoo.envs.suites): one parametrized check per
installed suite (spaces, truncation, final observations, group resets, masks, and the
evaluator's episode cap against the suite's own time limit), plus the lazy-import,
listing and error-message checks.

Each suite compiles one program that rolls out 4 envs under ``vmap`` (2 groups of 2 that
share their reset key, so the start states double as the group-reset check), with a short
and a long time limit; every test of that suite reads the result. The programs of all
installed suites are built in one module-scoped fixture, two at a time in threads (XLA
compiles without the GIL, so one suite's compile overlaps the next one's tracing), with
XLA's cheap CPU settings: this file has a budget of about 90 s on a 2-core machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rlzoo.envs as envs
from rlzoo.core.evaluation import episode_limit, run_episodes
from rlzoo.envs import SUITES, Bool, Dict, Discrete, group_keys
from rlzoo.envs.suites import adapter_class
from rlzoo.nets.actor_critic import masked_logits

pytestmark = pytest.mark.timeout(300)

_FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

LIMIT = 4  # the short time limit; the long one is 100 (never reached here)
NUM_GROUPS, GROUP_SIZE = 2, 2
NUM_ENVS = NUM_GROUPS * GROUP_SIZE
NUM_STEPS = 2 * LIMIT + 1

# One easy id per suite and how its time limit is set: a constructor keyword, or a field
# of its (traced) params, which lets one compiled program serve both limits.
CASES = {
    "jumanji": ("jumanji/Snake-v1", "time_limit", False),
    "craftax": ("craftax/Craftax-Classic-Symbolic-v1", "max_timesteps", True),
    "xminigrid": ("xminigrid/MiniGrid-Empty-8x8", "max_steps", False),
    "navix": ("navix/Navix-Empty-8x8-v0", "max_steps", False),
    "playground": ("playground/CartpoleBalance", "episode_length", True),
}
INSTALLED = [s for s in CASES if SUITES[s].installed()]


def _leaves_with_spaces(obs, space):
    """[(leaf, its space)] for an array observation or a (nested) TreeObservation."""
    if isinstance(space, Dict):
        return [pair for name, s in space.spaces for pair in _leaves_with_spaces(obs[name], s)]
    return [(obs, space)]


def _sample_action(key, space, obs):
    """A random action; uniform over the allowed ones when the observation has a mask."""
    if isinstance(space, Discrete) and isinstance(obs, Mapping) and "action_mask" in obs:
        logits = masked_logits(jnp.zeros(space.n), obs["action_mask"])
        return jax.random.categorical(key, logits).astype(jnp.int32)
    return space.sample(key)


def _rollout(env, params, reset_key, key):
    """``NUM_STEPS`` random steps from ``reset(reset_key)``; also returns the start."""
    act_space = env.action_space(params)

    def body(carry, step_key):
        obs, state, length = carry
        k_act, k_step = jax.random.split(step_key)
        action = _sample_action(k_act, act_space, obs)
        nobs, state, reward, term, trunc, info = env.step(k_step, state, action, params)
        length = length + 1
        out = dict(
            obs=obs, action=action, next_obs=nobs, reward=reward, terminated=term,
            truncated=trunc, final_obs=info["final_observation"], length=length,
        )  # fmt: skip
        return (nobs, state, jnp.where(term | trunc, 0, length)), out

    start = env.reset(reset_key, params)
    _, out = jax.lax.scan(
        body, (*start, jnp.zeros((), jnp.int32)), jax.random.split(key, NUM_STEPS)
    )
    return out, start


def _rollouts(env, params, key):
    """4 envs: 2 groups whose members share a reset key; step keys all differ."""
    reset_keys = group_keys(key, NUM_GROUPS, GROUP_SIZE)
    step_keys = jax.random.split(jax.random.fold_in(key, 1), NUM_ENVS)
    return jax.vmap(_rollout, in_axes=(None, None, 0, 0))(env, params, reset_keys, step_keys)


def _evaluated_lengths(env, params, key, max_steps):
    """Episode lengths of ``NUM_ENVS`` random-policy episodes under the shared evaluator."""
    act_space = env.action_space(params)

    def policy(obs, policy_key):
        keys = jax.random.split(policy_key, NUM_ENVS)
        return jax.vmap(_sample_action, in_axes=(0, None, 0))(keys, act_space, obs)

    return run_episodes([key], env, params, [policy], NUM_ENVS, max_steps)[0]["length"]


def _build_and_run(suite):
    """(env, params, (short, long, start of the short run), seconds) for one suite.

    For the suites whose limit is a constructor option, the short run also holds
    ``eval_length``: its env's episodes under the evaluator, capped by ``episode_limit``.
    The others skip it: its compile took 10 s (Craftax) and 7 s (Playground) more on 2
    cores, and their limit differs from the built one only in ``params``, which
    ``episode_limit`` is checked to read.
    """
    env_id, limit_kw, in_params = CASES[suite]
    start = time.perf_counter()
    key = jax.random.key(0)
    if in_params:  # one program, called with either limit
        env, _ = envs.make(env_id)
        params = env.default_params.replace(**{limit_kw: jnp.asarray(LIMIT, jnp.int32)})
        long_params = params.replace(**{limit_kw: jnp.asarray(100, jnp.int32)})
        compiled = jax.jit(lambda k, p: _rollouts(env, p, k)).lower(key, params).compile(_FAST)
        (short, groups), (long, _) = compiled(key, params), compiled(key, long_params)
    else:  # the limit is static: two envs in one program
        env, params = envs.make(env_id, **{limit_kw: LIMIT})
        long_env, long_params = envs.make(env_id, **{limit_kw: 100})
        cap = episode_limit(env, params)

        def run(key):
            short, groups = _rollouts(env, params, key)
            short = {**short, "eval_length": _evaluated_lengths(env, params, key, cap)}
            return (short, groups), _rollouts(long_env, long_params, key)[0]

        (short, groups), long = jax.jit(run).lower(key).compile(_FAST)(key)
    out = jax.device_get((short, long, groups))
    return env, params, out, time.perf_counter() - start


@pytest.fixture(scope="module")
def all_suite_runs():
    """Every installed suite's run, two suites building at a time."""
    # Imports first, one at a time: CPython 3.11.7's AST constructor is not thread-safe
    # (gh-106905), and importing navix (wandb -> pydantic, which parses class sources)
    # while the other thread traces raised "AST constructor recursion depth mismatch".
    for suite in INSTALLED:
        adapter_class(suite)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(INSTALLED, pool.map(_build_and_run, INSTALLED), strict=True))


@pytest.fixture(params=INSTALLED)
def suite_run(request, all_suite_runs):
    return (request.param, *all_suite_runs[request.param])


def test_reset_and_step_match_the_declared_spaces(suite_run):
    suite, env, params, (short, _, _), seconds = suite_run
    print(f"{suite}: compile + run {seconds:.1f} s")
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    for key in ("obs", "next_obs", "final_obs"):
        for leaf, space in _leaves_with_spaces(short[key], obs_space):
            assert leaf.shape == (NUM_ENVS, NUM_STEPS, *space.shape), (suite, key)
            if isinstance(space, Bool):
                assert leaf.dtype == np.bool_
            else:
                assert np.all(leaf >= space.low) and np.all(leaf <= space.high), (suite, key)
    assert short["action"].shape == (NUM_ENVS, NUM_STEPS, *act_space.shape)
    assert short["reward"].shape == (NUM_ENVS, NUM_STEPS) and short["reward"].dtype == np.float32
    for flag in ("terminated", "truncated"):
        assert short[flag].dtype == np.bool_ and short[flag].shape == (NUM_ENVS, NUM_STEPS)


def test_a_time_limit_end_is_truncated_not_terminated(suite_run):
    suite, _, _, (short, long, _), _ = suite_run
    term, trunc = short["terminated"], short["truncated"]
    assert not np.any(term & trunc)
    np.testing.assert_array_equal(trunc, (short["length"] == LIMIT) & ~term)
    assert trunc.any(), f"{suite}: no episode reached the time limit of {LIMIT}"
    assert not long["truncated"].any()  # limit 100 is never reached in NUM_STEPS


def test_the_evaluator_caps_episodes_at_the_suites_own_time_limit(suite_run):
    """``episode_limit`` reads each suite's own limit (from ``params`` where it lives
    there), through wrappers too; under that cap an evaluated episode runs to the limit."""
    suite, env, params, (short, _, _), _ = suite_run
    suites_own_limit = {
        "jumanji": lambda: env.jumanji_env.time_limit - 1,  # built one past it: jumanji_env
        "craftax": lambda: params.max_timesteps,
        "xminigrid": lambda: params.max_steps,
        "navix": lambda: env.navix_env.max_steps,
        "playground": lambda: params.episode_length,
    }[suite]()
    assert int(suites_own_limit) == LIMIT
    assert episode_limit(env, params) == LIMIT
    assert episode_limit(envs.EpisodeStatistics(envs.VectorEnv(env, 2)), params) == LIMIT
    in_params = CASES[suite][2]
    assert ("eval_length" in short) == (not in_params)  # see _build_and_run
    if not in_params:
        lengths = short["eval_length"]
        assert lengths.shape == (NUM_ENVS,) and lengths.min() >= 1
        assert lengths.max() == LIMIT, f"{suite}: evaluated episode lengths {lengths}"


def test_the_final_observation_survives_auto_reset(suite_run):
    suite, _, _, (short, long, _), _ = suite_run
    done = short["terminated"] | short["truncated"]
    checked = 0
    for i in range(NUM_ENVS):
        first = int(np.argmax(done[i])) if done[i].any() else None
        if first is None or not short["truncated"][i, first]:
            continue
        # Same keys, no end before `first`: both runs are the same episode up to there,
        # and the long-limit run simply goes on where the short one was reset.
        pick = lambda tree, t, i=i: jax.tree.map(lambda x: x[i, t], tree)
        for a, b in zip(
            jax.tree.leaves(pick(short["final_obs"], first)),
            jax.tree.leaves(pick(long["next_obs"], first)),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
        # Where no episode ended, the final observation is the next one.
        for t in range(first):
            for a, b in zip(
                jax.tree.leaves(pick(short["final_obs"], t)),
                jax.tree.leaves(pick(short["next_obs"], t)),
                strict=True,
            ):
                np.testing.assert_array_equal(a, b)
        checked += 1
    assert checked, f"{suite}: no env's first episode ended by the time limit"


def test_group_members_share_one_start_state(suite_run):
    _, _, _, (_, _, (obs, state)), _ = suite_run
    differ = False
    for leaf in jax.tree.leaves((obs, state)):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        groups = np.asarray(leaf).reshape(NUM_GROUPS, GROUP_SIZE, *leaf.shape[1:])
        for g in range(NUM_GROUPS):
            for m in range(1, GROUP_SIZE):
                np.testing.assert_array_equal(groups[g, m], groups[g, 0])
        differ |= not np.array_equal(groups[0, 0], groups[1, 0])
    assert differ  # two groups, two different start states


def test_masked_actions_are_never_sampled(all_suite_runs):
    """Every installed suite whose test env has an action mask (Jumanji's Snake)."""
    checked = []
    for suite, (env, params, (short, _, _), _) in all_suite_runs.items():
        obs_space = env.observation_space(params)
        if isinstance(obs_space, Dict) and "action_mask" in dict(obs_space.spaces):
            mask = short["obs"]["action_mask"]
            chosen = np.take_along_axis(mask, short["action"][..., None], axis=-1)[..., 0]
            assert chosen.all() and not mask.all(), suite  # some masked, none chosen
            checked.append(suite)
    assert ("jumanji" in checked) == ("jumanji" in INSTALLED)


# --------------------------------------------------------------------------- registry


def test_names_written_out_match_each_installed_suites_registry():
    from rlzoo.envs import suites

    if SUITES["jumanji"].installed():
        import jumanji

        assert set(suites.JUMANJI_NAMES) <= set(jumanji.registered_environments())
    if SUITES["xminigrid"].installed():
        import xminigrid

        assert set(suites.XMINIGRID_NAMES) <= set(xminigrid.registered_environments())
        left_out = set(xminigrid.registered_environments()) - set(suites.XMINIGRID_NAMES)
        assert all(n.startswith("XLand-MiniGrid-R") for n in left_out)
    if SUITES["navix"].installed():
        import navix

        assert sorted(suites.NAVIX_NAMES) == sorted(navix.registry())
    if SUITES["playground"].installed():
        from mujoco_playground import registry

        assert sorted(SUITES["playground"].names) == sorted(registry.ALL_ENVS)
        assert sorted(suites.PLAYGROUND_DM_CONTROL_NAMES) == sorted(
            registry.dm_control_suite.ALL_ENVS
        )


def test_a_gymnax_run_imports_no_suite():
    script = (
        "import sys, time\nt = time.perf_counter()\nfrom rlzoo import envs\n"
        "env, params = envs.make('gymnax/CartPole-v1')\n"
        "print(f'{time.perf_counter() - t:.2f}')\n"
        "mods = ('jumanji', 'craftax', 'xminigrid', 'navix', 'mujoco_playground', 'brax')\n"
        "assert not [m for m in mods if m in sys.modules], [m for m in mods if m in sys.modules]"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, timeout=120, capture_output=True, text=True
    )
    print(f"import rlzoo.envs + make gymnax/CartPole-v1: {out.stdout.strip()} s")


def test_a_suite_that_is_not_installed_names_its_extra(monkeypatch):
    monkeypatch.setattr(type(SUITES["craftax"]), "installed", lambda self: False)
    with pytest.raises(ImportError) as err:
        envs.make("craftax/Craftax-Classic-Symbolic-v1")
    message = str(err.value)
    assert "\n" not in message and 'pip install "rlzoo[craftax]"' in message


@pytest.mark.parametrize(
    ("bad_id", "suggestion"),
    [
        ("craftax/Craftax-Symbolc-v1", "craftax/Craftax-Symbolic-v1"),
        ("Snake-v1", "jumanji/Snake-v1"),
        ("navix/Navix-Empty-5x5", "navix/Navix-Empty-5x5-v0"),
        ("playground/CartPoleBalance", "playground/CartpoleBalance"),
        ("xminigrid/MiniGrid-Empty-8x8-v0", "xminigrid/MiniGrid-Empty-8x8"),
    ],
)
def test_an_unknown_suite_id_lists_close_matches(bad_id, suggestion):
    with pytest.raises(ValueError) as err:
        envs.make(bad_id)
    head = str(err.value).split("Known ids", 1)[0]
    assert repr(suggestion) in head, head


@pytest.mark.skipif(not SUITES["jumanji"].installed(), reason="needs jumanji")
def test_a_joint_mask_env_is_flattened_to_discrete_and_ppo_respects_it():
    """Tetris: MultiDiscrete(4, 10) with a joint (4, 10) mask becomes Discrete(40)."""
    from rlzoo.agents import ppo

    env, params = envs.make("jumanji/Tetris-v0")
    raw, _ = envs.make("jumanji/Tetris-v0", flatten_actions=False)
    assert isinstance(env, envs.FlattenActions) and env.action_space(params) == envs.Discrete(40)
    assert dict(env.observation_space(params).spaces)["action_mask"] == envs.Bool((40,))
    assert isinstance(raw.action_space(params), envs.MultiDiscrete)
    with pytest.raises(ValueError, match="flatten_actions must be True, False or None"):
        envs.make("jumanji/Tetris-v0", flatten_actions="yes")
    with pytest.raises(ValueError, match=r"gymnax/CartPole-v1 has Discrete"):
        envs.make("gymnax/CartPole-v1", flatten_actions=True)
    keys = jax.random.split(jax.random.key(3), 8)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    raw_obs, raw_state = jax.vmap(raw.reset, in_axes=(0, None))(keys, params)
    np.testing.assert_array_equal(obs["action_mask"], raw_obs["action_mask"].reshape(8, 40))
    # One flat action steps the raw env exactly as its row-major (rotation, column) vector.
    action = jnp.argmax(obs["action_mask"], axis=-1)  # the first valid action per env
    vector = jnp.stack([action // 10, action % 10], axis=-1)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    raw_step = jax.vmap(raw.step, in_axes=(0, 0, 0, None))
    out, raw_out = step(keys, state, action, params), raw_step(keys, raw_state, vector, params)
    np.testing.assert_array_equal(out[0]["grid"], raw_out[0]["grid"])
    np.testing.assert_array_equal(out[2], raw_out[2])
    np.testing.assert_array_equal(
        out[5]["final_observation"]["action_mask"],
        raw_out[5]["final_observation"]["action_mask"].reshape(8, 40),
    )
    # PPO builds on it (it refuses the raw joint mask) and never picks a masked action.
    config = ppo.default_config("jumanji/Tetris-v0").replace(num_envs=8, hidden_sizes=(16,))
    with pytest.raises(ValueError, match="FlattenActions"):
        ppo.make_agent(config, raw, params)
    agent = ppo.make_agent(config, env, params)
    policy = ppo.policy_params(agent.init(jax.random.key(0), config, None))
    sample = jax.vmap(lambda key: agent.act(policy, obs, key, False))
    actions = jax.jit(sample)(jax.random.split(jax.random.key(1), 64))
    assert actions.shape == (64, 8)
    assert np.take_along_axis(np.asarray(obs["action_mask"]), np.asarray(actions).T, 1).all()
