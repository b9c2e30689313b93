"""Hyperparameter dataclasses whose float fields are traced and whose shape fields are static.

An agent's ``Config`` is a frozen ``flax.struct`` dataclass. Fields made with
:func:`static` (sizes, counts, switches) are pytree metadata: they fix shapes and control
flow and so are compiled into the program. Every other field is a pytree leaf: a traced
hyperparameter that may hold a batch of values, so ``jax.vmap`` trains several configs in
one compiled program.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


def static(default: Any) -> Any:
    """A config field that fixes shapes or control flow (compiled in, never batched)."""
    return struct.field(pytree_node=False, default=default)


def is_static(field: dataclasses.Field) -> bool:
    return not field.metadata.get("pytree_node", True)


def traced_names(config_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls) if not is_static(f)]


def static_names(config_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls) if is_static(f)]


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-Python view of a config (lists for tuples, floats for 0-d arrays)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if hasattr(value, "tolist"):
            value = value.tolist()
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def unknown_field_error(config_cls: type, name: str) -> ValueError:
    names = [f.name for f in dataclasses.fields(config_cls)]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"{config_cls.__module__}.{config_cls.__name__} has no field {name!r}.{hint} "
        f"Fields: {', '.join(names)}."
    )


def override(config: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that names close matches for a misspelt field."""
    names = {f.name for f in dataclasses.fields(config)}
    for name in changes:
        if name not in names:
            raise unknown_field_error(type(config), name)
    return config.replace(**changes)


def vmap_axes(config: Any) -> Any:
    """``in_axes`` for a config in which some traced fields hold a batch of values.

    Fields given as 1-D arrays are mapped over (axis 0); scalars are shared::

        batched = config.replace(learning_rate=jnp.array([1e-4, 3e-4]))
        jax.vmap(train, in_axes=(None, vmap_axes(batched)))(key, batched)
    """
    return jax.tree.map(lambda x: 0 if jnp.ndim(x) > 0 else None, config)


def stack_points(config: Any, points: list[dict[str, Any]], repeats: int) -> Any:
    """One config whose traced fields hold ``len(points) * repeats`` values.

    Agent ``i`` gets ``points[i // repeats]`` (fields not in a point keep ``config``'s
    value), so with ``repeats = num_seeds`` the agents are ordered config-major.
    """
    names = sorted({name for point in points for name in point})
    fields = {f.name: f for f in dataclasses.fields(config)}
    for name in names:
        if name not in fields:
            raise unknown_field_error(type(config), name)
        if is_static(fields[name]):
            raise ValueError(
                f"{name!r} is a static field of {type(config).__name__} (it fixes shapes or "
                "control flow), so its values cannot share one compiled program; sweep it "
                "as a static group (rlzoo.sweep does) or run one program per value."
            )
    values = {}
    for name in names:
        column = [float(point.get(name, getattr(config, name))) for point in points]
        # numpy, not device arrays: every process of a multi-host job holds the same values.
        values[name] = np.repeat(np.asarray(column, np.float32), repeats)
    return config.replace(**values)
