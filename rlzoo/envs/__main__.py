"""``python -m rlzoo.envs [PREFIX ...] [--spaces]``: every env id that can be made here.

Ids are grouped by backend / suite with their count; suites that are not installed are
named with their extra. ``--spaces`` builds each listed env and prints its observation and
action spaces (seconds per Brax / Playground env: pass prefixes to narrow it).
"""

from __future__ import annotations

import sys

from rlzoo import envs


def describe(space) -> str:
    """One short line for a space (``Box`` reprs print whole bound arrays)."""
    if isinstance(space, envs.Dict):
        return "Dict(" + ", ".join(f"{k}: {describe(s)}" for k, s in space.spaces) + ")"
    if isinstance(space, envs.Box):
        return f"Box{space.shape} [{space.low.min():g}, {space.high.max():g}]"
    if isinstance(space, envs.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, envs.MultiDiscrete):
        return f"MultiDiscrete{space.nvec}"
    if isinstance(space, envs.Bool):
        return f"Bool{space.shape}"
    return repr(space)


def main(argv: list[str]) -> int:
    show_spaces = "--spaces" in argv
    prefixes = [a for a in argv if not a.startswith("--")]
    groups: dict[str, list[str]] = {}
    for env_id in envs.registered_ids():
        groups.setdefault(env_id.split("/", 1)[0], []).append(env_id)
    for prefix, suite in envs.SUITES.items():
        if not suite.installed():
            extra = f'pip install "rlzoo[{suite.extra}]"'
            print(f"{prefix}: not installed ({len(suite.names)} ids): {extra}")
    for prefix, ids in groups.items():
        if prefixes and prefix not in prefixes:
            continue
        print(f"{prefix} ({len(ids)} ids)")
        for env_id in ids:
            if not show_spaces:
                print(f"  {env_id}")
                continue
            try:
                env, params = envs.make(env_id)
                obs, act = env.observation_space(params), env.action_space(params)
                spaces = f"obs {describe(obs)}  action {describe(act)}"
            except Exception as err:
                spaces = f"cannot be made here: {type(err).__name__}: {str(err).splitlines()[0]}"
            print(f"  {env_id}  {spaces}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
