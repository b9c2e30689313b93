"""One module per algorithm. ``get(name)`` imports an agent module by its short name."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

AGENTS = {
    "ppo": "rlzoo.agents.ppo",
    "bc": "rlzoo.agents.bc",
    "sac": "rlzoo.agents.sac",
    "td3": "rlzoo.agents.td3",
    "td3_bc": "rlzoo.agents.td3_bc",
    "iql": "rlzoo.agents.iql",
    "prdc": "rlzoo.agents.prdc",
    "a2pr": "rlzoo.agents.a2pr",
    "sft": "rlzoo.agents.sft",
    "grpo": "rlzoo.agents.grpo",
    "grpo_control": "rlzoo.agents.grpo_control",
    "diffusion_bc": "rlzoo.agents.diffusion_bc",
    "diffusion_ql": "rlzoo.agents.diffusion_ql",
    "idql": "rlzoo.agents.idql",
    "fql": "rlzoo.agents.fql",
    "dsrl": "rlzoo.agents.dsrl",
    "dppo": "rlzoo.agents.dppo",
}


def get(name: str) -> ModuleType:
    if name not in AGENTS:
        close = difflib.get_close_matches(name, AGENTS, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown agent {name!r}.{hint} Known agents: {', '.join(AGENTS)}.")
    return importlib.import_module(AGENTS[name])
