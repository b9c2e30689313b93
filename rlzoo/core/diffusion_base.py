"""A frozen base diffusion policy as an agent's ``data``: what DSRL and DPPO fine-tune.

Both agents take ``data = {"params": denoiser params, "obs_scale": ObsScale}`` (kind
``pytree``): a ``diffusion_bc`` run's EMA weights and its state normalisation, given with
``--base=RUN_DIR`` (:func:`base_from_diffusion_bc`) or by :func:`base_data`. Without data
an agent draws a random base at ``init`` and keeps it in its state (so that the contract
test and quick experiments run); :func:`base_of` picks whichever is there.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlzoo.data.sampling import ObsScale
from rlzoo.nets.diffusion import POLICY_FIELDS, DiffusionPolicy

BASE_AGENT = "diffusion_bc"


def base_data(obs_scale: ObsScale, params: Any) -> dict[str, Any]:
    """The ``data`` pytree of a base policy: its state normalisation and denoiser weights."""
    return {"obs_scale": obs_scale, "params": params}


def base_from_diffusion_bc(
    agent_name: str, base_agent: str, base_config: Any, base_state: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--base``: ``(data, config overrides)`` from a ``diffusion_bc`` run's state.

    The data is its EMA weights (what it acts with) and its ``obs_scale``; the overrides are
    its :data:`POLICY_FIELDS`, so that the agent rebuilds the same network.
    """
    if base_agent != BASE_AGENT:
        raise ValueError(
            f"{agent_name} fine-tunes a {BASE_AGENT} run, but the --base run is {base_agent!r}."
        )
    overrides = {name: getattr(base_config, name) for name in POLICY_FIELDS}
    return base_data(base_state.obs_scale, base_state.ema_params), overrides


def random_base(policy: DiffusionPolicy, key: jax.Array, obs_shape: tuple[int, ...]) -> dict:
    """A randomly initialised base (identity normalisation), for runs given no data."""
    params = policy.init(key, jnp.zeros(obs_shape, jnp.float32))
    zeros = jnp.zeros(obs_shape, jnp.float32)
    return base_data(ObsScale(zeros, jnp.ones_like(zeros)), params)


def check_base(policy: DiffusionPolicy, data: Any, obs_shape: tuple[int, ...]) -> None:
    """Refuse base weights that do not fit ``policy``, in one line that names the fix."""
    if data is None:
        return
    expected = jax.eval_shape(policy.init, jax.random.PRNGKey(0), jnp.zeros(obs_shape))
    params = data["params"]
    if jax.tree.structure(expected) != jax.tree.structure(params) or any(
        a.shape != b.shape
        for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(params), strict=True)
    ):
        raise ValueError(
            "the base policy's parameters do not fit this denoiser; use the base run's "
            f"{', '.join(POLICY_FIELDS)} (--base sets them)."
        )


def base_of(state: Any, data: Any) -> dict[str, Any]:
    """The frozen base: ``data`` when given, else the random one kept in ``state.base``."""
    base = state.base if data is None else data
    return jax.tree.map(jax.lax.stop_gradient, base)
