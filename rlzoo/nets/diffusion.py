"""Diffusion and flow policies: a denoiser network, noise schedules and samplers.

An action ``a`` in the unit box is generated from noise by a chain of denoising steps, each
conditioned on the observation. Two families share one network, :class:`Denoiser`
``(obs, x, t) -> output`` with ``t`` in ``[0, 1]``:

- **DDPM** (Ho et al., 2020): the network predicts the noise ``eps`` in
  ``x_t = sqrt(abar_t) a + sqrt(1 - abar_t) eps``; :func:`ddpm_sample` walks the posterior
  ``q(x_{t-1} | x_t, a_hat)`` back from ``x_T``; :func:`ddim_sample` (Song et al., 2021) takes
  a strided, deterministic path through the same schedule with fewer steps.
- **Flow matching** (rectified flow; Liu et al., 2023; Lipman et al., 2023): the network
  predicts the velocity ``a - x_0`` along ``x_t = (1 - t) x_0 + t a``; :func:`flow_sample`
  integrates it from noise with Euler steps.

Samplers are ``lax.scan`` loops over a *static* number of steps (a config field) and take
the initial noise as an argument, so the same call serves DSRL (whose actions are that
noise) and gradient-through-the-chain objectives (Diffusion-QL). Every function works on
any leading batch shape: ``N`` candidate actions per state are one call with observations
``[B, D]`` and noise ``[B, N, A]``.

The denoiser is passed to losses and samplers as a function ``denoise(obs, x, t)``, for
example ``functools.partial(network.apply, params)``, so the same code serves the online
parameters, an EMA copy or a frozen base policy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlzoo.nets.torsos import activation_fn

DenoiseFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


# --- network -------------------------------------------------------------------------------


def sinusoidal_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """``[..., dim]`` sine/cosine features of ``t`` in ``[0, 1]`` (scaled to ``[0, 1000]``)."""
    half = dim // 2
    freqs = jnp.exp(-np.log(max_period) * jnp.arange(half) / max(half - 1, 1))
    angles = 1000.0 * t[..., None] * freqs
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class Denoiser(nn.Module):
    """``(obs, x, t) -> [..., action_dim]``: a residual MLP on ``[obs, x, embed(t)]``.

    Each of ``num_blocks`` blocks is ``h + W2 act(W1 LN(h))`` (LayerNorm optional, as in
    IDQL's residual network); with ``num_blocks=0`` it is a plain MLP of ``hidden_size``.
    """

    action_dim: int
    hidden_size: int = 256
    num_blocks: int = 3
    time_dim: int = 16
    layer_norm: bool = False
    activation: str = "silu"

    @nn.compact
    def __call__(self, obs: jax.Array, x: jax.Array, t: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:-1])
        # a learned projection of fixed frequencies, as Diffusion-QL's time MLP
        embed = nn.Dense(self.time_dim)(act(nn.Dense(2 * self.time_dim)(
            sinusoidal_embedding(t, self.time_dim))))  # fmt: skip
        # obs [B, D] with x [B, N, A]: the same state for N candidate actions
        obs = obs.reshape(*obs.shape[:-1], *(1,) * (x.ndim - obs.ndim), obs.shape[-1])
        obs = jnp.broadcast_to(obs, (*x.shape[:-1], obs.shape[-1]))
        h = nn.Dense(self.hidden_size)(jnp.concatenate([obs, x, embed], axis=-1))
        for _ in range(self.num_blocks):
            z = nn.LayerNorm()(h) if self.layer_norm else h
            z = nn.Dense(self.hidden_size)(act(nn.Dense(self.hidden_size)(act(z))))
            h = h + z
        return nn.Dense(self.action_dim)(act(h))


# --- noise schedules -----------------------------------------------------------------------


class Schedule(NamedTuple):
    """A discrete diffusion schedule over ``T`` steps (index 0 is the least noisy)."""

    betas: jax.Array  # [T]
    alphas: jax.Array  # 1 - betas
    alpha_bars: jax.Array  # cumulative products of alphas

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0]


def linear_betas(num_steps: int) -> np.ndarray:
    """Ho et al.'s linear betas from 1e-4 to 0.02, rescaled to ``num_steps`` (as in IDDPM)."""
    scale = 1000.0 / num_steps
    return np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), num_steps)


def cosine_betas(num_steps: int, offset: float = 0.008) -> np.ndarray:
    """Nichol and Dhariwal's cosine schedule: ``abar(t) = cos^2((t + s) / (1 + s) * pi / 2)``."""
    steps = np.arange(num_steps + 1) / num_steps
    abar = np.cos((steps + offset) / (1 + offset) * np.pi / 2) ** 2
    return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, 0.999)


def vp_betas(num_steps: int, beta_min: float = 0.1, beta_max: float = 10.0) -> np.ndarray:
    """The variance-preserving SDE discretised to ``num_steps`` (Diffusion-QL's default)."""
    t = np.arange(1, num_steps + 1)
    spread = beta_max - beta_min
    alphas = np.exp(-beta_min / num_steps - 0.5 * spread * (2 * t - 1) / num_steps**2)
    return 1.0 - alphas


SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas, "vp": vp_betas}


def make_schedule(name: str, num_steps: int) -> Schedule:
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; known: {', '.join(SCHEDULES)}")
    if num_steps < 1:
        raise ValueError(f"the number of denoising steps must be >= 1, got {num_steps}")
    betas = np.asarray(SCHEDULES[name](num_steps), np.float64)
    alphas = 1.0 - betas
    return Schedule(*(jnp.asarray(x, jnp.float32) for x in (betas, alphas, np.cumprod(alphas))))


def step_time(index: jax.Array, num_steps: int) -> jax.Array:
    """The network's ``t`` in ``(0, 1]`` for DDPM step ``index`` in ``0 .. T-1``."""
    return (index + 1.0) / num_steps


# --- DDPM ----------------------------------------------------------------------------------


def ddpm_loss(
    denoise: DenoiseFn, schedule: Schedule, key: jax.Array, obs: jax.Array, actions: jax.Array
) -> jax.Array:
    """Per-sample noise-prediction error ``|eps - eps_hat(x_t, t)|^2`` at a uniform random
    step (summed over action dimensions; shape ``actions.shape[:-1]``)."""
    step_key, noise_key = jax.random.split(key)
    index = jax.random.randint(step_key, actions.shape[:-1], 0, schedule.num_steps)
    noise = jax.random.normal(noise_key, actions.shape)
    abar = schedule.alpha_bars[index][..., None]
    noisy = jnp.sqrt(abar) * actions + jnp.sqrt(1.0 - abar) * noise
    predicted = denoise(obs, noisy, step_time(index, schedule.num_steps))
    return jnp.sum(jnp.square(predicted - noise), axis=-1)


def predict_action(
    schedule: Schedule, x: jax.Array, index: jax.Array, eps: jax.Array, clip: float | None
) -> jax.Array:
    """``a_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``, clipped to ``[-clip, clip]``."""
    abar = schedule.alpha_bars[index]
    action = (x - jnp.sqrt(1.0 - abar) * eps) / jnp.sqrt(abar)
    return action if clip is None else jnp.clip(action, -clip, clip)


def ddpm_posterior(
    schedule: Schedule, x: jax.Array, index: jax.Array, eps: jax.Array, clip: float | None = 1.0
) -> tuple[jax.Array, jax.Array]:
    """Mean and standard deviation of ``p(x_{t-1} | x_t)``: the Gaussian posterior
    ``q(x_{t-1} | x_t, a_hat)`` with ``a_hat`` from the predicted noise (std 0 at ``t = 0``).

    DPPO treats each of these Gaussians as one action with a log-probability.
    """
    abar = schedule.alpha_bars[index]
    abar_prev = jnp.where(index > 0, schedule.alpha_bars[jnp.maximum(index - 1, 0)], 1.0)
    beta, alpha = schedule.betas[index], schedule.alphas[index]
    action = predict_action(schedule, x, index, eps, clip)
    mean = (beta * jnp.sqrt(abar_prev) * action + (1.0 - abar_prev) * jnp.sqrt(alpha) * x) / (
        1.0 - abar
    )
    std = jnp.sqrt(beta * (1.0 - abar_prev) / (1.0 - abar))
    return mean, jnp.broadcast_to(std, mean.shape)


def ddpm_sample(
    denoise: DenoiseFn,
    schedule: Schedule,
    key: jax.Array,
    obs: jax.Array,
    noise: jax.Array,
    clip: float | None = 1.0,
) -> jax.Array:
    """Ancestral sampling from ``x_T = noise`` through all ``T`` steps (a ``lax.scan``)."""

    def step(x, inputs):
        index, step_key = inputs
        eps = denoise(obs, x, step_time(index, schedule.num_steps))
        mean, std = ddpm_posterior(schedule, x, index, eps, clip)
        return mean + std * jax.random.normal(step_key, x.shape), None

    indices = jnp.arange(schedule.num_steps - 1, -1, -1)
    x, _ = jax.lax.scan(step, noise, (indices, jax.random.split(key, schedule.num_steps)))
    return x if clip is None else jnp.clip(x, -clip, clip)


def ddim_sample(
    denoise: DenoiseFn,
    schedule: Schedule,
    obs: jax.Array,
    noise: jax.Array,
    num_steps: int | None = None,
    clip: float | None = 1.0,
) -> jax.Array:
    """Deterministic DDIM (eta = 0) from ``x_T = noise`` in ``num_steps`` strided steps of the
    schedule (all of them by default): the same noise always gives the same action."""
    total = schedule.num_steps
    num_steps = total if num_steps is None else num_steps
    if not 1 <= num_steps <= total:
        raise ValueError(f"DDIM steps must be in 1..{total} (the schedule's), got {num_steps}")
    indices = np.round(np.linspace(total - 1, 0, num_steps)).astype(np.int32)
    previous = np.append(indices[1:], -1)

    def step(x, inputs):
        index, prev = inputs
        eps = denoise(obs, x, step_time(index, total))
        action = predict_action(schedule, x, index, eps, clip)
        abar = schedule.alpha_bars[index]
        # recompute the noise from the (clipped) action so that the path stays consistent
        eps = (x - jnp.sqrt(abar) * action) / jnp.sqrt(1.0 - abar)
        abar_prev = jnp.where(prev >= 0, schedule.alpha_bars[jnp.maximum(prev, 0)], 1.0)
        return jnp.sqrt(abar_prev) * action + jnp.sqrt(1.0 - abar_prev) * eps, None

    x, _ = jax.lax.scan(step, noise, (jnp.asarray(indices), jnp.asarray(previous)))
    return x if clip is None else jnp.clip(x, -clip, clip)


# --- flow matching -------------------------------------------------------------------------


def flow_loss(velocity: DenoiseFn, key: jax.Array, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """Per-sample rectified-flow error ``|(a - x_0) - v(x_t, t)|^2`` with ``t ~ U[0, 1]``."""
    time_key, noise_key = jax.random.split(key)
    t = jax.random.uniform(time_key, actions.shape[:-1])
    x0 = jax.random.normal(noise_key, actions.shape)
    xt = (1.0 - t[..., None]) * x0 + t[..., None] * actions
    return jnp.sum(jnp.square(velocity(obs, xt, t) - (actions - x0)), axis=-1)


def flow_sample(
    velocity: DenoiseFn,
    obs: jax.Array,
    noise: jax.Array,
    num_steps: int,
    clip: float | None = 1.0,
) -> jax.Array:
    """Euler integration of ``dx/dt = v(obs, x, t)`` from ``x_0 = noise`` to ``t = 1``."""
    if num_steps < 1:
        raise ValueError(f"the number of flow steps must be >= 1, got {num_steps}")

    def step(x, t):
        return x + velocity(obs, x, t) / num_steps, None

    x, _ = jax.lax.scan(step, noise, jnp.arange(num_steps, dtype=noise.dtype) / num_steps)
    return x if clip is None else jnp.clip(x, -clip, clip)


# --- the policy class ----------------------------------------------------------------------

POLICY_KINDS = ("ddpm", "flow")


@dataclasses.dataclass(frozen=True)
class DiffusionPolicy:
    """A state-conditioned generative policy over unit-box actions: one :class:`Denoiser`
    trained as a DDPM noise predictor or as a flow-matching velocity.

    ``sample(params, obs, noise, key, deterministic)`` runs the chain from ``noise``
    (shape ``[..., action_dim]``; ``[B, N, action_dim]`` with ``obs [B, D]`` gives ``N``
    candidates per state). ``deterministic=True`` takes the deterministic path (DDIM for
    ``ddpm``; Euler is always deterministic given the noise); ``act`` then also starts from
    zero noise, so the action is a function of the state alone.
    """

    network: Denoiser
    kind: str = "ddpm"
    num_steps: int = 5
    schedule_name: str = "vp"

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"unknown diffusion policy {self.kind!r}; known: {POLICY_KINDS}")
        if self.num_steps < 1:
            raise ValueError(f"the number of denoising steps must be >= 1, got {self.num_steps}")
        if self.kind == "ddpm":
            make_schedule(self.schedule_name, 1)  # fail now on an unknown schedule name

    @property
    def action_dim(self) -> int:
        return self.network.action_dim

    @property
    def schedule(self) -> Schedule:
        return make_schedule(self.schedule_name, self.num_steps)

    def init(self, key: jax.Array, obs: jax.Array) -> Any:
        action = jnp.zeros((*obs.shape[:-1], self.action_dim))
        return self.network.init(key, obs, action, jnp.zeros(obs.shape[:-1]))

    def denoiser(self, params: Any) -> DenoiseFn:
        return lambda obs, x, t: self.network.apply(params, obs, x, t)

    def loss(self, params: Any, key: jax.Array, obs: jax.Array, actions: jax.Array) -> jax.Array:
        """Per-sample denoising (or flow-matching) loss of unit-box ``actions``."""
        if self.kind == "flow":
            return flow_loss(self.denoiser(params), key, obs, actions)
        return ddpm_loss(self.denoiser(params), self.schedule, key, obs, actions)

    def sample(
        self,
        params: Any,
        obs: jax.Array,
        noise: jax.Array,
        key: jax.Array | None = None,
        deterministic: bool = False,
    ) -> jax.Array:
        """Unit-box actions from initial ``noise`` (``key`` only for DDPM's stochastic path)."""
        denoise = self.denoiser(params)
        if self.kind == "flow":
            return flow_sample(denoise, obs, noise, self.num_steps)
        if deterministic:
            return ddim_sample(denoise, self.schedule, obs, noise)
        return ddpm_sample(denoise, self.schedule, key, obs, noise)

    def act(
        self,
        params: Any,
        obs: jax.Array,
        key: jax.Array,
        deterministic: bool,
        num_candidates: int | None = None,
    ) -> jax.Array:
        """Actions for ``obs [..., D]``, or ``[..., N, A]`` candidates per state.

        One action on the deterministic path starts from zero noise (a function of the
        state); candidates always start from fresh noise, so that they differ.
        """
        shape = (*obs.shape[:-1], *(() if num_candidates is None else (num_candidates,)))
        noise_key, chain_key = jax.random.split(key)
        noise = jax.random.normal(noise_key, (*shape, self.action_dim))
        if deterministic and num_candidates is None:
            noise = jnp.zeros_like(noise)
        return self.sample(params, obs, noise, chain_key, deterministic)


# The config fields (same names in every diffusion agent) that define a policy, so that a
# policy trained by one agent (diffusion_bc) is rebuilt exactly by another (DSRL, DPPO).
POLICY_FIELDS = (
    "policy",
    "num_denoising_steps",
    "noise_schedule",
    "hidden_size",
    "num_blocks",
    "time_dim",
    "layer_norm",
    "activation",
)


def policy_from_config(config: Any, action_dim: int) -> DiffusionPolicy:
    """The :class:`DiffusionPolicy` that a config's :data:`POLICY_FIELDS` describe."""
    for name, least in (("hidden_size", 1), ("time_dim", 1), ("num_blocks", 0)):
        if getattr(config, name) < least:
            raise ValueError(f"{name} must be >= {least}, got {getattr(config, name)}")
    network = Denoiser(
        action_dim,
        hidden_size=config.hidden_size,
        num_blocks=config.num_blocks,
        time_dim=config.time_dim,
        layer_norm=config.layer_norm,
        activation=config.activation,
    )
    return DiffusionPolicy(
        network, config.policy, config.num_denoising_steps, config.noise_schedule
    )


# --- the denoising chain as a sequence of Gaussian actions (DPPO) ----------------------------


def chain_step_std(
    std: jax.Array, index: jax.Array, min_std: float | jax.Array, exploring: bool
) -> jax.Array:
    """DPPO's noise level of one DDPM step: the posterior std floored at ``min_std`` while
    exploring (every step, the last included); otherwise floored at 1e-3 with the last step
    (``index = 0``) noiseless, as DPPO's evaluation mode."""
    if exploring:
        return jnp.maximum(std, min_std)
    return jnp.where(index > 0, jnp.maximum(std, 1e-3), 0.0)


def ddpm_chain_sample(
    base: DenoiseFn,
    tuned: DenoiseFn,
    schedule: Schedule,
    key: jax.Array,
    obs: jax.Array,
    noise: jax.Array,
    num_tuned: int,
    min_std: float | jax.Array = 0.1,
    noise_clip: float | jax.Array = 3.0,
    exploring: bool = True,
    clip: float | None = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """DDPM ancestral sampling whose first ``T - num_tuned`` steps use ``base`` and whose
    last ``num_tuned`` (the least noisy) use ``tuned``; each step's standard-normal draw is
    clipped to ``+-noise_clip`` and its std set by :func:`chain_step_std`.

    Returns ``(x_0, chain)`` with ``chain [..., num_tuned + 1, A]``: the input of the first
    tuned step, then each tuned step's output (``chain[..., -1, :]`` is ``x_0``, unclipped).
    """
    total = schedule.num_steps
    if not 1 <= num_tuned <= total:
        raise ValueError(f"fine-tuned steps must be in 1..{total} (the chain's), got {num_tuned}")

    def run(denoise, x, indices, keys):
        def step(x, inputs):
            index, step_key = inputs
            eps = denoise(obs, x, step_time(index, total))
            mean, std = ddpm_posterior(schedule, x, index, eps, clip)
            z = jnp.clip(jax.random.normal(step_key, x.shape), -noise_clip, noise_clip)
            x = mean + chain_step_std(std, index, min_std, exploring) * z
            return x, x

        return jax.lax.scan(step, x, (jnp.asarray(indices), keys))

    keys = jax.random.split(key, total)
    frozen = np.arange(total - 1, num_tuned - 1, -1)
    x, _ = run(base, noise, frozen, keys[: total - num_tuned])
    start = x
    x, outputs = run(tuned, x, np.arange(num_tuned - 1, -1, -1), keys[total - num_tuned :])
    chain = jnp.concatenate([start[None], outputs], axis=0)
    return x, jnp.moveaxis(chain, 0, -2)


def ddpm_step_log_prob(
    denoise: DenoiseFn,
    schedule: Schedule,
    obs: jax.Array,
    x: jax.Array,
    x_next: jax.Array,
    index: jax.Array,
    min_std: float | jax.Array = 0.1,
    clip: float | None = 1.0,
) -> jax.Array:
    """Per-dimension ``log N(x_next; mean(x, index), max(std, min_std))`` of DDPM steps.

    ``x, x_next [..., A]`` with one step ``index [...]`` (an integer array) per row: the
    log-density DPPO gives each denoising step, with its minimum log-probability std.
    """
    eps = denoise(obs, x, step_time(index, schedule.num_steps))
    mean, std = ddpm_posterior(schedule, x, index[..., None], eps, clip)
    std = jnp.maximum(std, min_std)
    z = (x_next - mean) / std
    return -0.5 * jnp.square(z) - jnp.log(std) - 0.5 * np.log(2 * np.pi)
