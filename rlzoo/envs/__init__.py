"""rlzoo environments: one functional interface over gymnax, Brax and the optional suites.

``make("gymnax/CartPole-v1")`` / ``make("brax/hopper", backend="positional")`` /
``make("craftax/Craftax-Classic-Symbolic-v1")`` return ``(env, params)``. Brax and the
optional suites (Jumanji, Craftax, XLand-MiniGrid, Navix, MuJoCo Playground; see
``rlzoo.envs.suites``) are imported only when one of their ids is made.
``python -m rlzoo.envs`` lists every id that can be made here, with its spaces.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from rlzoo.envs.core import (
    Bool,
    Box,
    Dict,
    Discrete,
    Environment,
    MultiDiscrete,
    PyTree,
    TokenSequence,
    TreeObservation,
    Wrapper,
)
from rlzoo.envs.groups import GroupReset, group_keys, group_reset
from rlzoo.envs.suites import SUITES, adapter_class
from rlzoo.envs.wrappers import (
    ClipAction,
    EpisodeStatistics,
    FlattenActions,
    NormalizeObservation,
    NormalizeReward,
    RescaleAction,
    RunningMeanStd,
    VectorEnv,
    has_joint_mask,
    init_running_stats,
    normalize,
    normalize_observation,
    observation_statistics,
    update_running_stats,
)

__all__ = [
    "SUITES",
    "Bool",
    "Box",
    "ClipAction",
    "Dict",
    "Discrete",
    "Environment",
    "EpisodeStatistics",
    "FlattenActions",
    "GroupReset",
    "MultiDiscrete",
    "NormalizeObservation",
    "NormalizeReward",
    "RescaleAction",
    "RunningMeanStd",
    "TokenSequence",
    "TreeObservation",
    "VectorEnv",
    "Wrapper",
    "group_keys",
    "group_reset",
    "init_running_stats",
    "make",
    "normalize",
    "normalize_observation",
    "observation_statistics",
    "register",
    "registered_ids",
    "update_running_stats",
]


def _gymnax_names() -> list[str]:
    from rlzoo.envs.gymnax_env import gymnax  # with gymnax's plotting imports deferred

    return list(gymnax.registered_envs)


def _make_gymnax(name: str, **kwargs: Any) -> Environment:
    from rlzoo.envs.gymnax_env import GymnaxEnv

    return GymnaxEnv(name, **kwargs)


# Brax's registry, written out so that listing ids (an unknown-id message, --describe)
# does not import Brax (seconds, and import noise); tests/test_envs.py checks it.
BRAX_NAMES = (
    "ant", "fast", "halfcheetah", "hopper", "humanoid", "humanoidstandup",
    "inverted_double_pendulum", "inverted_pendulum", "pusher", "reacher", "swimmer", "walker2d",
)  # fmt: skip


def _brax_names() -> list[str]:
    return list(BRAX_NAMES)


def _make_brax(name: str, **kwargs: Any) -> Environment:
    from rlzoo.envs.brax_env import BraxEnv

    return BraxEnv(name, **kwargs)


def _token_names() -> list[str]:
    from rlzoo.envs.tokens import token_names

    return token_names()


def _make_tokens(name: str, **kwargs: Any) -> Environment:
    from rlzoo.envs.tokens import make_token_env

    return make_token_env(name, **kwargs)


# backend prefix -> (names it knows, constructor); imports stay lazy.
_BACKENDS: dict[str, tuple[Callable[[], list[str]], Callable[..., Environment]]] = {
    "gymnax": (_gymnax_names, _make_gymnax),
    "brax": (_brax_names, _make_brax),
    "tokens": (_token_names, _make_tokens),
}


# Ids added at run time with ``register`` (user envs, test envs): id -> factory(**kwargs).
_REGISTERED: dict[str, Callable[..., Environment]] = {}


def register(env_id: str, factory: Callable[..., Environment]) -> None:
    """Make ``make(env_id, **kwargs)`` build ``factory(**kwargs)`` (params: its defaults)."""
    backend = env_id.partition("/")[0]
    if backend in _BACKENDS or backend in SUITES:
        raise ValueError(f"{env_id!r}: the prefix {backend!r} belongs to a built-in backend")
    _REGISTERED[env_id] = factory


def registered_ids(installed_only: bool = True) -> list[str]:
    """Every id ``make`` accepts, e.g. ``"gymnax/CartPole-v1"``, ``"brax/hopper"``, and the
    ids of the optional suites that are installed (all of them: ``installed_only=False``).
    Imports no optional suite."""
    built_in = [f"{b}/{name}" for b, (names, _) in _BACKENDS.items() for name in names()]
    suites = [
        f"{prefix}/{name}"
        for prefix, suite in SUITES.items()
        if not installed_only or suite.installed()
        for name in suite.names
    ]
    return built_in + suites + list(_REGISTERED)


def _unknown_id_message(env_id: str) -> str:
    ids = registered_ids(installed_only=False)
    by_lower = {i.lower(): i for i in ids}
    # Also match against bare names so "CartPole-v1" suggests "gymnax/CartPole-v1".
    candidates = {**by_lower, **{i.split("/", 1)[1].lower(): i for i in ids}}
    close = difflib.get_close_matches(env_id.lower(), list(candidates), n=5, cutoff=0.6)
    close += difflib.get_close_matches(
        env_id.split("/", 1)[-1].lower(), list(candidates), n=5, cutoff=0.6
    )
    suggestions = list(dict.fromkeys(candidates[c] for c in close))[:3]
    message = f"unknown env id {env_id!r}"
    if suggestions:
        message += "; did you mean " + " or ".join(repr(s) for s in suggestions) + "?"
    known = "; ".join(
        f"{backend}: {', '.join(names())}" for backend, (names, _) in _BACKENDS.items()
    )
    known += "".join(
        f"; {prefix}{'' if suite.installed() else f' (extra [{suite.extra}])'}: "
        + ", ".join(suite.names)
        for prefix, suite in SUITES.items()
    )
    if _REGISTERED:
        known += f"; registered: {', '.join(_REGISTERED)}"
    return f"{message} Known ids (<backend>/<name>) - {known}"


def make(
    env_id: str, flatten_actions: bool | None = None, **kwargs: Any
) -> tuple[Environment, PyTree]:
    """Builds the environment ``<backend>/<name>``; returns ``(env, env.default_params)``.

    ``kwargs`` go to the backend adapter (``GymnaxEnv`` / ``BraxEnv`` / ``CraftaxEnv`` ...).
    ``flatten_actions``: wrap a ``MultiDiscrete`` env in :class:`FlattenActions` (one
    ``Discrete`` over the action vectors); by default (``None``) exactly the envs whose
    action mask is joint over the vectors, which no per-entry policy can respect.
    Raises ``ValueError`` naming close matches and all known ids for an unknown id, and
    ``ImportError`` naming the extra to install for an id of a suite that is not installed.
    """
    if flatten_actions not in (None, True, False):
        raise ValueError(f"flatten_actions must be True, False or None, got {flatten_actions!r}")
    env = _build(env_id, **kwargs)
    params = env.default_params
    if flatten_actions is None:
        flatten_actions = has_joint_mask(env, params)
    if flatten_actions:
        space = env.action_space(params)
        if not isinstance(space, MultiDiscrete):
            raise ValueError(
                f"flatten_actions=True flattens MultiDiscrete actions; {env_id} has {space}"
            )
        env = FlattenActions(env)
    return env, params


def _build(env_id: str, **kwargs: Any) -> Environment:
    if env_id in _REGISTERED:
        return _REGISTERED[env_id](**kwargs)
    backend, _, name = env_id.partition("/")
    if backend in SUITES and name in SUITES[backend].names:
        if not SUITES[backend].installed():
            raise ImportError(SUITES[backend].not_installed_message(env_id))
        return adapter_class(backend)(name, **kwargs)
    if backend not in _BACKENDS or name not in _BACKENDS[backend][0]():
        raise ValueError(_unknown_id_message(env_id))
    return _BACKENDS[backend][1](name, **kwargs)


def __getattr__(name: str) -> Any:
    # Adapter classes load lazily so that importing rlzoo.envs does not import Brax.
    if name == "GymnaxEnv":
        from rlzoo.envs.gymnax_env import GymnaxEnv

        return GymnaxEnv
    if name == "BraxEnv":
        from rlzoo.envs.brax_env import BraxEnv

        return BraxEnv
    suite_classes = {
        "JumanjiEnv": "jumanji",
        "CraftaxEnv": "craftax",
        "XMiniGridEnv": "xminigrid",
        "NavixEnv": "navix",
        "PlaygroundEnv": "playground",
    }
    if name in suite_classes:
        return adapter_class(suite_classes[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
