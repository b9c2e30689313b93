"""Offline RL: TD3+BC's loss pieces against numpy, a learning probe, datasets on disk
(Minari round trip, bad input), dataset measures (TQ, SACo) and trajectory weighting."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from rlzoo import envs
from rlzoo.agents import a2pr, iql, prdc, td3_bc
from rlzoo.core.evaluation import evaluate_policy
from rlzoo.core.off_policy import td3_target, twin_critic_loss
from rlzoo.data import collect_transitions, load_dataset, save_npz
from rlzoo.data import metrics as dataset_metrics
from rlzoo.data.minari_store import minari_info, normalized_score, split_episodes, write_minari
from rlzoo.data.sampling import (
    dataset_scale,
    episode_ids,
    nearest_neighbour,
    sample_batch,
    sampling_cdf,
)
from rlzoo.data.store import check_dataset
from rlzoo.envs import Box, Environment

pytestmark = pytest.mark.timeout(600)


# ----------------------------------------------------------------------------- a probe env


@struct.dataclass
class PointState:
    position: jax.Array
    time: jax.Array


class PointToOrigin(Environment):
    """A point on [-2, 2]; an action in [-1, 1] moves it by half that; reward -|position|.

    Ten steps, then truncation. Heading for 0 scores about -1.3; random actions about -10.
    """

    id = "test/PointToOrigin"
    episode_length = 10

    def observation_space(self, params):
        return Box(-2.0, 2.0, (1,))

    def action_space(self, params):
        return Box(-1.0, 1.0, (1,))

    def max_episode_steps(self, params):
        return self.episode_length

    def reset(self, key, params):
        position = jax.random.uniform(key, (1,), minval=-2.0, maxval=2.0)
        return position, PointState(position, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params):
        position = jnp.clip(state.position + 0.5 * jnp.clip(action, -1.0, 1.0), -2.0, 2.0)
        time = state.time + 1
        truncated = time >= self.episode_length
        reset_obs, reset_state = self.reset(key, params)
        state = jax.tree.map(
            lambda r, s: jnp.where(truncated, r, s), reset_state, PointState(position, time)
        )
        obs = jnp.where(truncated, reset_obs, position)
        info = {"final_observation": position}
        return obs, state, -jnp.abs(position[0]), jnp.zeros((), bool), truncated, info


envs.register("test/PointToOrigin", PointToOrigin)  # for writers that look the env up by id


def uniform_policy(_, obs, key, deterministic):
    return jax.random.uniform(key, (obs.shape[0], 1), minval=-1.0, maxval=1.0)


@pytest.fixture(scope="module")
def point_data():
    env = PointToOrigin()
    collect = jax.jit(lambda k: collect_transitions(k, env, None, uniform_policy, None, 8, 250))
    return jax.device_get(collect(jax.random.PRNGKey(0))[0])


# ----------------------------------------------------------------------------- TD3+BC pieces


def test_td3_bc_actor_loss_matches_numpy():
    rng = np.random.default_rng(0)
    pi, data_action = rng.uniform(-1, 1, (2, 32, 3)).astype(np.float32)
    q = rng.normal(-5.0, 2.0, 32).astype(np.float32)
    loss, info = td3_bc.td3_bc_actor_loss(pi, q, data_action, 2.5)
    lam = 2.5 / np.abs(q).mean()
    expected = -lam * q.mean() + np.mean((pi - data_action) ** 2)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(info["policy/lambda"], lam, rtol=1e-5)
    # lambda is a constant of the gradient: d loss / d q = -lambda / B exactly.
    grad_q = jax.grad(lambda q: td3_bc.td3_bc_actor_loss(pi, q, data_action, 2.5)[0])(q)
    np.testing.assert_allclose(grad_q, np.full(32, -lam / 32), rtol=1e-5)


def test_td3_target_and_critic_loss_match_numpy():
    rng = np.random.default_rng(1)
    next_action = rng.uniform(-1, 1, (16, 2)).astype(np.float32)
    noise = rng.normal(0, 0.4, (16, 2)).astype(np.float32)  # some beyond the 0.5 clip
    rewards = rng.normal(size=16).astype(np.float32)
    discounts = 0.99 * (rng.uniform(size=16) > 0.2).astype(np.float32)
    weights = rng.normal(size=(2, 2)).astype(np.float32)  # two linear "critics" of the action

    def next_q(action):
        return jnp.stack([action @ weights[0], action @ weights[1]])

    target = td3_target(next_q, next_action, rewards, discounts, noise, 0.5)
    smoothed = np.clip(next_action + np.clip(noise, -0.5, 0.5), -1, 1)
    expected = rewards + discounts * np.minimum(smoothed @ weights[0], smoothed @ weights[1])
    np.testing.assert_allclose(target, expected, rtol=1e-5, atol=1e-6)
    q = rng.normal(size=(2, 16)).astype(np.float32)
    expected_loss = np.mean((q[0] - expected) ** 2) + np.mean((q[1] - expected) ** 2)
    np.testing.assert_allclose(twin_critic_loss(q, target), expected_loss, rtol=1e-5)


def test_state_normalisation_is_dataset_mean_and_std_plus_1e3():
    obs = np.random.default_rng(2).normal(3.0, 2.0, (500, 4)).astype(np.float32)
    obs[:, 3] = 7.0  # a constant feature: std 0, divided by 1e-3
    scale = dataset_scale(obs)
    expected = (obs - obs.mean(0)) / (obs.std(0) + 1e-3)
    np.testing.assert_allclose(scale(obs), expected, rtol=1e-4, atol=1e-4)


def test_td3_bc_beats_the_random_behaviour_on_a_probe(point_data):
    module = td3_bc
    env = PointToOrigin()
    behaviour = evaluate_policy(uniform_policy, None, jax.random.PRNGKey(5), env, None, 64)
    behaviour_return = float(behaviour["eval/deterministic_return"])
    config = module.Config(
        total_steps=1000, updates_per_iteration=500, hidden_sizes=(32, 32), num_eval_episodes=64
    )
    agent = module.make_agent(config, env)
    state, metrics = jax.jit(module.make_train(config, env))(
        jax.random.PRNGKey(0), config, point_data
    )
    learned = float(jax.jit(agent.evaluate)(state, jax.random.PRNGKey(1))[agent.score_key])
    assert behaviour_return < -8.0, behaviour_return
    # TD3+BC reached about -1.7 here; heading straight for 0 scores about -1.3.
    assert learned > behaviour_return + 5.0, (learned, behaviour_return)
    assert np.all(np.isfinite(metrics["loss/critic"]))


def test_prdc_neighbour_search_matches_brute_force_and_its_loss_matches_numpy():
    rng = np.random.default_rng(3)
    keys = rng.normal(size=(1037, 5)).astype(np.float32)  # not a multiple of the chunk
    queries = rng.normal(size=(64, 5)).astype(np.float32)
    queries[:4] = keys[[0, 500, 1024, 1036]]  # exact hits, in the first and the last chunk
    index, distance = jax.jit(lambda q, k: nearest_neighbour(q, k, 256))(queries, keys)
    brute = ((queries[:, None, :] - keys[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(index, brute.argmin(1))
    np.testing.assert_allclose(distance, brute.min(1), atol=1e-4)
    # The key is [beta * normalised state, unit action]; the loss is TD3+BC's with a_nn.
    data = {"observations": keys[:, :3], "actions": np.clip(keys[:, 3:], -1, 1)}
    scale = dataset_scale(data["observations"])
    bounds = prdc.ActionBounds(-np.ones(2), np.ones(2))
    search = prdc.search_keys(scale, bounds, data, 2.0)
    np.testing.assert_allclose(search[:, :3], 2.0 * scale(data["observations"]), rtol=1e-5)
    pi, a_nn = rng.uniform(-1, 1, (2, 32, 2)).astype(np.float32)
    q = rng.normal(-3.0, 1.0, 32).astype(np.float32)
    loss, _ = prdc.prdc_actor_loss(pi, q, a_nn, 2.5)
    np.testing.assert_allclose(
        loss, -2.5 / np.abs(q).mean() * q.mean() + np.mean((pi - a_nn) ** 2), rtol=1e-5
    )


def test_a2pr_guide_and_vae_loss_match_numpy():
    vae_action = np.array([[0.5], [0.5], [0.5], [0.5]], np.float32)
    data_action = np.array([[-0.5], [-0.5], [-0.5], [-0.5]], np.float32)
    q_vae = np.array([3.0, 1.0, 2.0, 0.0], np.float32)
    q_data = np.array([2.0, 2.0, 2.0, 1.0], np.float32)
    value = np.array([1.5, 1.5, 2.5, 2.0], np.float32)
    target, weight = a2pr.guide_target(vae_action, data_action, q_vae, q_data, value, 0.4)
    # Higher advantage wins (ties to the VAE); the mask counts which of the two beat V.
    np.testing.assert_array_equal(target[:, 0], [0.5, -0.5, 0.5, -0.5])
    np.testing.assert_allclose(weight, [0.8, 0.4, 0.0, 0.0], rtol=1e-6)
    rng = np.random.default_rng(4)
    recon, action, mean = rng.normal(size=(3, 8, 2)).astype(np.float32)
    std = rng.uniform(0.5, 2.0, (8, 2)).astype(np.float32)
    good = (rng.uniform(size=8) > 0.5).astype(np.float32)
    expected = np.mean(1.5 * good[:, None] * (recon - action) ** 2) + 0.5 * (
        -0.5 * np.mean(1 + np.log(std**2) - mean**2 - std**2)
    )
    np.testing.assert_allclose(
        a2pr.vae_loss(recon, mean, std, action, good, 1.5), expected, rtol=1e-5
    )


def test_iql_loss_pieces_match_numpy():
    diff = np.array([-2.0, -0.5, 0.0, 0.5, 3.0], np.float32)
    # Weight 0.7 above the target, 0.3 below: (0.3*4 + 0.3*0.25 + 0 + 0.7*0.25 + 0.7*9) / 5
    np.testing.assert_allclose(iql.expectile_loss(diff, 0.7), 7.75 / 5, rtol=1e-6)
    np.testing.assert_allclose(iql.expectile_loss(diff, 0.5), np.mean(0.5 * diff**2), rtol=1e-6)
    weights = iql.advantage_weights(jnp.array([-1.0, 0.0, 1.0, 5.0]), 3.0, 100.0)
    np.testing.assert_allclose(weights, [np.exp(-3.0), 1.0, np.exp(3.0), 100.0], rtol=1e-6)


def test_iql_beats_the_random_behaviour_on_a_probe(point_data):
    env = PointToOrigin()
    config = iql.Config(
        total_steps=1000, updates_per_iteration=500, hidden_sizes=(32, 32), num_eval_episodes=64
    )
    agent = iql.make_agent(config, env)
    state, _ = jax.jit(iql.make_train(config, env))(jax.random.PRNGKey(0), config, point_data)
    learned = float(jax.jit(agent.evaluate)(state, jax.random.PRNGKey(1))[agent.score_key])
    assert learned > -5.0, learned  # random behaviour: about -10; heading for 0: about -1.3 (-1.7)


@pytest.mark.parametrize("module", [td3_bc, iql], ids=["td3_bc", "iql"])
def test_trajectory_weighting_is_a_sampler_option_of_the_offline_agents(point_data, module):
    env = PointToOrigin()
    config = module.Config(
        total_steps=20, updates_per_iteration=10, batch_size=16, hidden_sizes=(8,),
        sampler="advantage", num_eval_episodes=2,
    )  # fmt: skip
    _, metrics = jax.jit(module.make_train(config, env))(jax.random.PRNGKey(0), config, point_data)
    assert all(np.all(np.isfinite(v)) for v in metrics.values())
    with pytest.raises(ValueError, match="sampler must be one of"):
        module.make_agent(module.Config(sampler="best"), env)


# ----------------------------------------------------------------------------- datasets on disk


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def test_minari_round_trip_keeps_every_array_and_the_metadata(point_data, minari_root):
    path = write_minari(
        "rlzoo/point/random-v0", point_data, "test/PointToOrigin", policy="uniform random",
        num_envs=8, random_return=-10.0, expert_return=-1.3,
    )  # fmt: skip
    assert (path / "data" / "metadata.json").is_file()
    import minari  # Minari's own reader opens it and computes the normalised score

    own = minari.load_dataset("rlzoo/point/random-v0")
    assert own.total_episodes == 200 and own.total_steps == 2000
    np.testing.assert_allclose(minari.get_normalized_score(own, np.array([-1.3])), [1.0])
    loaded = load_dataset("minari:rlzoo/point/random-v0")
    # The data ends mid-episode in no env here (250 steps = 25 episodes each), so the
    # flags are unchanged; the arrays come back bit for bit.
    assert sorted(loaded) == sorted(point_data)
    for name, array in point_data.items():
        np.testing.assert_array_equal(loaded[name], np.asarray(array), err_msg=name)
    by_path = load_dataset(str(path))
    np.testing.assert_array_equal(by_path["observations"], loaded["observations"])
    info = minari_info("rlzoo/point/random-v0")
    assert info["env_id"] == "test/PointToOrigin" and info["policy"] == "uniform random"
    assert (info["random_return"], info["expert_return"]) == (-10.0, -1.3)
    assert len(info["episode_returns"]) == 8 * 25
    np.testing.assert_allclose(sum(info["episode_returns"]), point_data["rewards"].sum(), rtol=1e-4)
    np.testing.assert_allclose(normalized_score([-10.0, -1.3], -10.0, -1.3), [0.0, 100.0])


def test_a_dataset_made_with_minari_itself_loads_by_name(minari_root):
    """Minari's own writer (not rlzoo's): one 3-step episode and one 2-step episode."""
    import gymnasium
    import minari
    from minari.data_collector import EpisodeBuffer

    episodes = [
        EpisodeBuffer(
            id=0, observations=np.arange(4, dtype=np.float32)[:, None],
            actions=np.full((3, 1), 0.5, np.float32), rewards=[1.0, 2.0, 3.0],
            terminations=[False, False, True], truncations=[False, False, False],
        ),
        EpisodeBuffer(
            id=1, observations=np.arange(10, 13, dtype=np.float32)[:, None],
            actions=np.full((2, 1), -0.5, np.float32), rewards=[4.0, 5.0],
            terminations=[False, False], truncations=[False, True],
        ),
    ]  # fmt: skip
    minari.create_dataset_from_buffers(
        "someone/probe/tiny-v0",
        episodes,
        observation_space=gymnasium.spaces.Box(-20, 20, (1,), np.float32),
        action_space=gymnasium.spaces.Box(-1, 1, (1,), np.float32),
    )
    data = load_dataset("minari:someone/probe/tiny-v0")
    np.testing.assert_array_equal(data["observations"][:, 0], [0, 1, 2, 10, 11])
    np.testing.assert_array_equal(data["next_observations"][:, 0], [1, 2, 3, 11, 12])
    np.testing.assert_array_equal(data["rewards"], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(data["terminated"], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(data["truncated"], [0, 0, 0, 0, 1])
    assert minari_info("someone/probe/tiny-v0")["episode_returns"] == [6.0, 9.0]


def test_an_unfinished_episode_at_the_end_of_an_env_block_is_marked_truncated():
    data = {
        "observations": np.arange(6.0)[:, None], "next_observations": np.arange(1.0, 7.0)[:, None],
        "actions": np.zeros((6, 1)), "rewards": np.ones(6),
        "terminated": np.array([0, 1, 0, 0, 0, 0], bool), "truncated": np.zeros(6, bool),
    }  # fmt: skip
    episodes = split_episodes(data, num_envs=2)  # env blocks of 3 steps
    assert [len(e["rewards"]) for e in episodes] == [2, 1, 3]
    assert [bool(e["truncations"][-1]) for e in episodes] == [False, True, True]


def test_bad_datasets_are_refused_naming_the_file_and_the_field(tmp_path, minari_root):
    with pytest.raises(ValueError, match=r"missing\.npz: no such file"):
        load_dataset(str(tmp_path / "missing.npz"))
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match=r"corrupt\.npz: cannot read"):
        load_dataset(str(corrupt))
    nan = {"observations": np.zeros((4, 1), np.float32), "rewards": np.array([0, 1, np.nan, 0])}
    save_npz(tmp_path / "nan.npz", nan)
    with pytest.raises(ValueError, match=r"nan\.npz: field 'rewards' holds NaN .*index \(2,\)"):
        load_dataset(str(tmp_path / "nan.npz"))
    save_npz(tmp_path / "short.npz", {"observations": np.zeros((4, 1)), "rewards": np.zeros(3)})
    with pytest.raises(ValueError, match=r"short\.npz: fields disagree .*rewards: 3"):
        load_dataset(str(tmp_path / "short.npz"))
    with pytest.raises(ValueError, match=r"no Minari dataset 'nobody/none-v0' .*never downloads"):
        load_dataset("minari:nobody/none-v0")
    broken = minari_root / "broken" / "data"
    broken.mkdir(parents=True)
    (broken / "metadata.json").write_text(json.dumps({"data_format": "hdf5"}))
    with pytest.raises(ValueError, match=r"minari:broken: cannot open the Minari dataset"):
        load_dataset("minari:broken")


def test_datasets_that_do_not_fit_the_env_are_refused(point_data):
    env, params = envs.make("gymnax/Pendulum-v1")
    with pytest.raises(ValueError, match=r"'observations' has shape \(1,\) .* needs \(3,\)"):
        check_dataset(point_data, env, params)
    with pytest.raises(ValueError, match=r"no 'actions' array"):
        check_dataset({k: v for k, v in point_data.items() if k != "actions"}, env, params)
    with pytest.raises(ValueError, match=r"'observations' has shape \(1,\)"):
        td3_bc.make_agent(td3_bc.Config(), env, params).init(
            jax.random.PRNGKey(0), td3_bc.Config(), point_data
        )


# ----------------------------------------------------------------------------- dataset measures


def hand_made():
    """Three episodes with returns 3, 0 and 6 from start states 0, 0 and 2."""
    return {
        "observations": np.array([[0], [1], [1], [0], [2], [2], [2]]),
        "actions": np.array([0, 1, 1, 0, 0, 1, 1]),
        "rewards": np.array([1.0, 1.0, 1.0, 0.0, 2.0, 2.0, 2.0]),
        "terminated": np.array([0, 0, 1, 1, 0, 0, 1], bool),
        "truncated": np.zeros(7, bool),
    }


def test_trajectory_quality_and_coverage_on_a_hand_made_dataset():
    data = hand_made()
    np.testing.assert_array_equal(dataset_metrics.episode_returns(data), [3.0, 0.0, 6.0])
    # Mean return 3 on a scale where random = 0 and expert = 6.
    assert dataset_metrics.trajectory_quality(data, 0.0, 6.0) == pytest.approx(0.5)
    # Distinct (s, a): (0,0) (1,1) (2,0) (2,1) -> 4; a reference with 8 distinct pairs.
    assert dataset_metrics.unique_state_actions(data) == 4
    reference = {"observations": np.arange(8)[:, None], "actions": np.zeros(8, int)}
    assert dataset_metrics.state_action_coverage(data, reference) == pytest.approx(0.5)
    # Continuous values are binned into cells of the given side.
    continuous = {"observations": np.array([[0.01], [0.04], [0.12]]), "actions": np.zeros((3, 1))}
    assert dataset_metrics.unique_state_actions(continuous, resolution=0.1) == 2
    with pytest.raises(ValueError, match="need a resolution"):
        dataset_metrics.unique_state_actions(continuous)


def test_trajectory_weighting_matches_the_papers_rule():
    data = {k: jnp.asarray(v) for k, v in hand_made().items()}
    np.testing.assert_array_equal(episode_ids(data["terminated"], data["truncated"]),
                                  [0, 0, 0, 1, 2, 2, 2])  # fmt: skip
    cdf = sampling_cdf(data, "return", 0.1)
    # Return-weighting: min-max normalised returns 0.5, 0, 1 per transition, softmax / 0.1.
    logits = np.array([0.5, 0.5, 0.5, 0.0, 1.0, 1.0, 1.0]) / 0.1
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    np.testing.assert_allclose(np.diff(np.concatenate([[0.0], cdf])), probs, rtol=1e-4)
    batch = jax.jit(lambda k: sample_batch(k, data, 50_000, cdf))(jax.random.PRNGKey(0))
    frequencies = np.bincount(np.asarray(batch["rewards"]).astype(int), minlength=3)[[1, 0, 2]]
    np.testing.assert_allclose(frequencies / 50_000, [3 * probs[0], probs[3], 3 * probs[4]],
                               atol=0.01)  # fmt: skip
    assert sampling_cdf(data, "uniform") is None
    # Advantage-weighting: returns minus a linear fit on the start state. Start states 0,
    # 0, 2 with returns 3, 0, 6 fit G = 1.5 + 2.25 s: advantages 1.5, -1.5, 0.
    cdf = sampling_cdf(data, "advantage", 0.1)
    logits = np.array([1.0, 1.0, 1.0, 0.0, 0.5, 0.5, 0.5]) / 0.1
    probs = np.exp(logits - logits.max())
    np.testing.assert_allclose(np.diff(np.concatenate([[0.0], cdf])), probs / probs.sum(),
                               rtol=1e-4, atol=1e-6)  # fmt: skip


@struct.dataclass
class CountingState:
    key: jax.Array
    iteration: jax.Array
    gradient_step: jax.Array
    draws: jax.Array  # one uniform draw per step from that step's key, in order


def test_delayed_learn_steps_skip_the_actor_between_delays_with_the_same_keys():
    """The TD3 family's schedule: actor steps where gradient_step + 1 is a multiple of the
    delay, each step's key the one the plain scan would give, metrics averaged per side."""
    from rlzoo.core.offline import scan_delayed_learn_steps, scan_learn_steps

    def learn_step(state, key, actor_step):
        metrics = {"critic": state.gradient_step.astype(jnp.float32)}
        if actor_step:
            metrics["actor"] = state.gradient_step.astype(jnp.float32)
        draws = state.draws.at[state.gradient_step].set(jax.random.uniform(key))
        return state.replace(gradient_step=state.gradient_step + 1, draws=draws), metrics

    start = CountingState(jax.random.PRNGKey(5), jnp.int32(0), jnp.int32(0), jnp.zeros(12))
    delayed, metrics = scan_delayed_learn_steps(learn_step, start, 12, 3)
    plain, _ = scan_learn_steps(lambda s, k: learn_step(s, k, True), start, 12)
    assert int(delayed.gradient_step) == 12 and int(delayed.iteration) == 1
    np.testing.assert_array_equal(delayed.key, plain.key)
    np.testing.assert_array_equal(delayed.draws, plain.draws)
    assert len(set(np.asarray(plain.draws).tolist())) == 12
    assert float(metrics["critic"]) == pytest.approx(np.mean(np.arange(12)))
    assert float(metrics["actor"]) == pytest.approx(np.mean([2, 5, 8, 11]))


def test_offline_td3_family_refuses_an_iteration_that_ends_between_actor_steps():
    for module in (td3_bc, prdc, a2pr):
        config = module.Config(total_steps=9, updates_per_iteration=3, policy_delay=2)
        with pytest.raises(ValueError, match="updates_per_iteration = 3 is not a multiple of "
                           "policy_delay = 2"):  # fmt: skip
            module.check_config(config)
