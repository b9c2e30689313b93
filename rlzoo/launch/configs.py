"""Resolving an agent's final ``Config`` once: preset for the env, then overrides."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from rlzoo.core import hparams


def resolve_config(
    agent_module: ModuleType, env_id: str, overrides: dict[str, Any] | None = None
) -> Any:
    """The agent's shipped preset for ``env_id`` (``default_config``) with ``overrides``.

    This is the one place presets are applied. Lists in ``overrides`` (JSON) become tuples.
    A sweep's traced points are stacked onto the result by the runner
    (``hparams.stack_points``); its static values arrive here as overrides.
    """
    config = agent_module.default_config(env_id)
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in (overrides or {}).items()}
    return hparams.override(config, **changes)


def describe_config(agent_module: ModuleType, env_id: str) -> str:
    """Every ``Config`` field of the agent: type, default, preset value for ``env_id``, doc."""
    preset = agent_module.default_config(env_id)
    header = (
        f"{agent_module.__name__}.Config for {env_id} (traced fields may be swept in one "
        "program; static fields fix shapes and control flow). Set any with --config.<field>=."
    )
    return header + "\n\n" + hparams.describe(agent_module.Config, preset)
