"""Hyperparameter dataclasses whose float fields are traced and whose shape fields are static.

An agent's ``Config`` is a frozen ``flax.struct`` dataclass. Fields made with
:func:`static` (sizes, counts, switches) are pytree metadata: they fix shapes and control
flow and so are compiled into the program. Every other field is a pytree leaf: a traced
hyperparameter that may hold a batch of values, so ``jax.vmap`` trains several configs in
one compiled program.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


def traced(default: float, doc: str) -> Any:
    """A traced float field: a pytree leaf that a sweep may batch. ``doc`` says what it is."""
    return struct.field(pytree_node=True, default=default, metadata={"doc": doc})


def static(default: Any, doc: str) -> Any:
    """A config field that fixes shapes or control flow (compiled in, never batched)."""
    return struct.field(pytree_node=False, default=default, metadata={"doc": doc})


def field_doc(field: dataclasses.Field) -> str:
    return field.metadata.get("doc", "")


def is_static(field: dataclasses.Field) -> bool:
    return not field.metadata.get("pytree_node", True)


def traced_names(config_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls) if not is_static(f)]


def static_names(config_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls) if is_static(f)]


def to_dict_value(value: Any) -> Any:
    """One field's plain-Python (JSON) form: lists for tuples, floats for 0-d arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return [to_dict_value(v) for v in value]
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-Python view of a config (lists for tuples, floats for 0-d arrays)."""
    return {f.name: to_dict_value(getattr(config, f.name)) for f in dataclasses.fields(config)}


def unknown_field_error(config_cls: type, name: str) -> ValueError:
    names = [f.name for f in dataclasses.fields(config_cls)]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"{config_cls.__module__}.{config_cls.__name__} has no field {name!r}.{hint} "
        f"Fields: {', '.join(names)}."
    )


def from_dict(config_cls: type, values: dict[str, Any]) -> Any:
    """The inverse of :func:`to_dict`: a config from its plain-Python view (tuples back)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    for name in values:
        if name not in fields:
            raise unknown_field_error(config_cls, name)
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def parse_value(config_cls: type, name: str, text: str, flag: str = "config") -> Any:
    """A command-line string for field ``name`` as a value of the field's type.

    ``3e-4`` -> float, ``(64,64)`` -> tuple, ``relu`` -> str, ``true``/``false`` -> bool.
    Raises ``ValueError`` naming the flag (``--<flag>.<name>``) and the type it needs.
    """
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if name not in fields:
        raise unknown_field_error(config_cls, name)
    default = fields[name].default
    text = text.strip()
    if isinstance(default, bool):
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise ValueError(f"--{flag}.{name}={text!r}: {name!r} is a bool; use true or false.")
    try:
        value = float(text) if text.lower() in ("nan", "inf", "-inf") else ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word: a string field such as activation=relu
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(default, float):
        value = float(value)
    if not is_static(fields[name]) and not isinstance(value, float):
        raise ValueError(
            f"--{flag}.{name}={text!r}: {name!r} is a traced float field, and that is not a number."
        )
    if isinstance(default, tuple) and isinstance(value, int | float):
        raise ValueError(
            f"--{flag}.{name}={text!r}: {name!r} holds a tuple; write one, e.g. ({text},)."
        )
    if default is not None and not isinstance(value, type(default)):
        raise ValueError(
            f"--{flag}.{name}={text!r} is a {type(value).__name__}, but {name!r} holds a "
            f"{type(default).__name__} (default {default!r})."
        )
    return value


def describe(config_cls: type, preset: Any | None = None) -> str:
    """Every field of ``config_cls``: type, default, preset value, static or traced, doc."""
    lines = []
    for f in dataclasses.fields(config_cls):
        kind = "static" if is_static(f) else "traced"
        type_name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", f.type)
        line = f"{f.name} ({type_name}, {kind}) default {f.default!r}"
        if preset is not None and getattr(preset, f.name) != f.default:
            line += f", preset {getattr(preset, f.name)!r}"
        lines.append(f"{line}\n    {field_doc(f)}")
    return "\n".join(lines)


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


def check_positive(config: Any, *names: str) -> None:
    """Refuse fields that are not finite numbers > 0 (a NaN fails too), naming the field."""
    for name in names:
        value = np.asarray(getattr(config, name), np.float64)
        if not np.all(np.isfinite(value) & (value > 0)):
            raise ValueError(f"{name} must be a finite number > 0, got {getattr(config, name)}")


def check_within(config: Any, name: str, low: float, high: float, low_open: bool = False) -> None:
    """Refuse a field outside ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    value = np.asarray(getattr(config, name), np.float64)
    above = value > low if low_open else value >= low
    if not np.all(above & (value <= high)):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must lie in {interval}, got {getattr(config, name)}")


def check_layer_sizes(config: Any, *names: str) -> None:
    """Refuse empty or non-positive layer-size tuples."""
    for name in names:
        sizes = getattr(config, name)
        if sizes is not None and (len(sizes) == 0 or any(int(s) < 1 for s in sizes)):
            raise ValueError(f"{name} needs at least one layer of size >= 1, got {sizes!r}")
