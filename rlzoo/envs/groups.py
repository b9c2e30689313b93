"""Group resets: G environments that share one reset key start from the same state.

Group-relative methods (GRPO and its family) compare G outcomes from one start: G
completions of one prompt, or G episodes of a control task from one initial state. Any env
of the functional interface (gymnax, Brax, tokens) qualifies, because its ``reset`` is a
pure function of the key: the same key gives the same start state.

    obs, state = group_reset(env, key, params, num_groups=4, group_size=8)  # [32, ...]

:class:`GroupReset` turns an env into one whose ``reset`` returns a group of ``G`` copies
of one start and whose ``step`` steps the ``G`` members with independent keys (stochastic
transitions and the auto-resets inside ``step`` are *not* shared: an outcome-based method
scores each member's first episode).
"""

from __future__ import annotations

import jax

from rlzoo.envs.core import Environment, Wrapper


def group_keys(key: jax.Array, num_groups: int, group_size: int) -> jax.Array:
    """``[num_groups * group_size]`` keys: ``num_groups`` fresh keys, each repeated G times."""
    if group_size < 1 or num_groups < 1:
        raise ValueError(f"num_groups and group_size must be >= 1, got {num_groups}, {group_size}")
    keys = jax.random.split(key, num_groups)
    return jax.numpy.repeat(keys, group_size, axis=0)


def group_reset(env: Environment, key: jax.Array, params, num_groups: int, group_size: int):
    """Reset ``num_groups x group_size`` envs; members of a group share the start state.

    Returns ``(obs, state)`` with a leading axis of ``num_groups * group_size`` (group
    members adjacent: rows ``g * G .. g * G + G - 1`` are group ``g``).
    """
    keys = group_keys(key, num_groups, group_size)
    return jax.vmap(env.reset, in_axes=(0, None))(keys, params)


class GroupReset(Wrapper):
    """``G`` copies of ``env`` started from one reset key; observations are ``[G, ...]``."""

    def __init__(self, env: Environment, group_size: int):
        super().__init__(env)
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.group_size = group_size

    def reset(self, key, params):
        return group_reset(self.env, key, params, 1, self.group_size)

    def step(self, key, state, action, params):
        keys = jax.random.split(key, self.group_size)
        return jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)
