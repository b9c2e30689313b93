"""IQL's expectile value regression (Kostrikov et al., 2022), shared by ``iql`` and ``idql``.

``V(s)`` is fit to an upper expectile of ``min_i Q'_i(s, a)`` over the dataset's actions,
so that it approximates the value of the best in-support action without ever querying an
action outside the data.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from rlzoo.core.off_policy import apply_gradients


def expectile_loss(diff: jax.Array, expectile: float | jax.Array) -> jax.Array:
    """``mean |expectile - 1(diff < 0)| * diff^2``: an asymmetric squared error."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return jnp.mean(weight * jnp.square(diff))


def expectile_value_update(
    value: Any,
    tx: optax.GradientTransformation,
    value_params: Any,
    value_opt: Any,
    obs: jax.Array,
    target_q: jax.Array,
    expectile: float | jax.Array,
) -> tuple[Any, Any, jax.Array, jax.Array]:
    """One step of ``expectile_loss(target_q - V(obs))``: ``(params, opt, loss, V(obs))``."""

    def objective(params):
        v = value.apply(params, obs)
        return expectile_loss(target_q - v, expectile), v

    (loss, v), grads = jax.value_and_grad(objective, has_aux=True)(value_params)
    value_params, value_opt = apply_gradients(tx, grads, value_params, value_opt)
    return value_params, value_opt, loss, v
