"""Expressivity: Gaussian BC against diffusion and flow BC on a two-mode bandit.

    python experiments/diffusion_expressivity.py [--seeds=5] [--steps=4000]

The data: a one-step bandit with 2-D states (uniform, uninformative) and 2-D actions whose
good values sit in two clusters, around (+0.6, +0.6) and (-0.6, -0.6) with std 0.05 per
dimension; half the demonstrations come from each. The reward is 1 within 0.2 of either
centre and 0 elsewhere. A Gaussian policy fit by maximum likelihood (``bc``) must put its
mean between the clusters; a diffusion (``diffusion_bc``, DDPM, 5 or 20 VP steps) or flow
(``diffusion_bc`` with ``policy=flow``, 10 Euler steps) policy can reproduce both.

For each policy, ``--seeds`` seeds in one program (``jax.vmap`` of ``make_train``), then
4096 sampled actions per seed (stochastic mode) on fresh states: the share within 0.2 of
each centre, the share near neither, the energy distance to 4096 dataset actions (0 for
the same distribution), and the bandit's mean reward in both evaluation modes. Writes
``experiments/results/diffusion_expressivity.json`` and a scatter plot beside it.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from common import RESULTS, record

from rlzoo import envs
from rlzoo.agents import bc, diffusion_bc
from rlzoo.analysis.stats import mean_interval
from rlzoo.envs import Box, Environment

CENTRES = np.array([[0.6, 0.6], [-0.6, -0.6]], np.float32)
SPREAD, RADIUS = 0.05, 0.2


class BanditState(NamedTuple):
    obs: jax.Array


class TwoModeBandit(Environment):
    """One step: any state, an action in [-1, 1]^2, reward 1 near either centre."""

    id = "experiments/TwoModeBandit"

    def observation_space(self, params):
        return Box(-1.0, 1.0, (2,))

    def action_space(self, params):
        return Box(-1.0, 1.0, (2,))

    def reset(self, key, params):
        obs = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
        return obs, BanditState(obs)

    def step(self, key, state, action, params):
        distance = jnp.min(jnp.linalg.norm(jnp.asarray(CENTRES) - action, axis=-1))
        reward = (distance < RADIUS).astype(jnp.float32)
        obs, new_state = self.reset(key, params)
        info = {"final_observation": state.obs}
        return obs, new_state, reward, jnp.ones((), bool), jnp.zeros((), bool), info


def demonstrations(key: jax.Array, n: int) -> dict[str, np.ndarray]:
    obs_key, mode_key, noise_key, next_key = jax.random.split(key, 4)
    obs = jax.random.uniform(obs_key, (n, 2), minval=-1.0, maxval=1.0)
    mode = jax.random.bernoulli(mode_key, 0.5, (n,)).astype(jnp.int32)
    actions = jnp.asarray(CENTRES)[mode] + SPREAD * jax.random.normal(noise_key, (n, 2))
    return jax.device_get({
        "observations": obs,
        "actions": jnp.clip(actions, -1.0, 1.0),
        "rewards": jnp.ones((n,)),
        "terminated": jnp.ones((n,), bool),
        "truncated": jnp.zeros((n,), bool),
        "next_observations": jax.random.uniform(next_key, (n, 2), minval=-1.0, maxval=1.0),
    })  # fmt: skip


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (Szekely): 0 iff the distributions agree."""

    def mean_distance(a, b):
        return float(jnp.mean(jnp.linalg.norm(a[:, None] - b[None], axis=-1)))

    x, y = jnp.asarray(x), jnp.asarray(y)
    return 2 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y)


def mode_shares(actions: np.ndarray) -> dict[str, float]:
    distances = np.linalg.norm(actions[:, None] - CENTRES[None], axis=-1)
    near = distances < RADIUS
    return {
        "share_mode_a": float(near[:, 0].mean()),
        "share_mode_b": float(near[:, 1].mean()),
        "share_neither": float((~near.any(-1)).mean()),
    }


POLICIES = {
    "gaussian_bc": (bc, dict(hidden_sizes=(128, 128))),
    "diffusion_bc_ddpm5": (diffusion_bc, dict(hidden_size=128, num_blocks=2)),
    "diffusion_bc_ddpm20": (
        diffusion_bc,
        dict(hidden_size=128, num_blocks=2, num_denoising_steps=20),
    ),
    "flow_bc_euler10": (
        diffusion_bc,
        dict(hidden_size=128, num_blocks=2, policy="flow", num_denoising_steps=10),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--transitions", type=int, default=20_000)
    args = parser.parse_args()

    env = TwoModeBandit()
    params = env.default_params
    data = demonstrations(jax.random.PRNGKey(0), args.transitions)
    reference = demonstrations(jax.random.PRNGKey(1), 4096)["actions"]
    test_obs = jax.random.uniform(jax.random.PRNGKey(2), (4096, 2), minval=-1.0, maxval=1.0)
    keys = jax.random.split(jax.random.PRNGKey(3), args.seeds)

    results, samples_for_plot = {}, {}
    for name, (module, overrides) in POLICIES.items():
        config = module.Config(total_steps=args.steps, updates_per_iteration=args.steps // 4,
                               batch_size=256, **overrides)  # fmt: skip
        agent = module.make_agent(config, env, params)
        train = jax.jit(jax.vmap(module.make_train(config, env, params), in_axes=(0, None, None)))
        state, _ = train(keys, config, data)
        evals = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, 0, None)))(
            state, jax.random.split(jax.random.PRNGKey(4), args.seeds), data
        )

        def sample(policy_params, key, agent=agent):
            return agent.act(policy_params, test_obs, key, False)

        policy_params = jax.vmap(agent.policy_params)(state)
        actions = np.asarray(jax.jit(jax.vmap(sample))(policy_params, keys))
        per_seed = [
            {**mode_shares(a), "energy_distance": energy_distance(a, reference)} for a in actions
        ]
        summary = {
            key: mean_interval([row[key] for row in per_seed]).to_dict() for key in per_seed[0]
        }
        for mode in ("deterministic", "stochastic"):
            values = np.asarray(evals[f"eval/{mode}_return"])
            summary[f"reward_{mode}"] = mean_interval(values).to_dict()
        results[name] = {"config": overrides, "per_seed": per_seed, **summary}
        samples_for_plot[name] = actions[0]
        print(name, {k: round(v["estimate"], 3) for k, v in summary.items()})

    table = [
        "| policy | near mode A | near mode B | near neither | energy distance "
        "| reward (stochastic) | reward (deterministic) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        columns = ("share_mode_a", "share_mode_b", "share_neither", "energy_distance",
                   "reward_stochastic", "reward_deterministic")  # fmt: skip
        cells = [f"{r[k]['estimate']:.3f}" for k in columns]
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(table))
    plot(samples_for_plot, reference)
    record(
        "diffusion_expressivity",
        {"seeds": args.seeds, "gradient_steps": args.steps, "transitions": args.transitions,
         "results": results, "table": "\n".join(table),
         "plot": "experiments/results/diffusion_expressivity.png"},
    )  # fmt: skip


def plot(samples: dict[str, np.ndarray], reference: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"dataset": reference, **samples}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), sharey=True)
    for ax, (name, points) in zip(axes, panels.items(), strict=True):
        ax.scatter(points[:2000, 0], points[:2000, 1], s=2, alpha=0.4)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_aspect("equal")
    fig.suptitle("sampled actions, two-mode bandit (seed 0)", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "diffusion_expressivity.png", dpi=110)


envs.register(TwoModeBandit.id, TwoModeBandit)

if __name__ == "__main__":
    main()
