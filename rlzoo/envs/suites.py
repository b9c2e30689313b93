"""The optional on-device suites: their ids, install extras, and the adapters' shared steps.

Each suite (Jumanji, Craftax, XLand-MiniGrid, Navix, MuJoCo Playground) is an optional
extra, ``pip install "rlzoo[<extra>]"``, imported only when one of its ids is made. The
names below are written out so that listing ids, suggesting close matches and naming the
extra for a suite that is not installed need no import of the suite (seconds each);
``tests/test_suites.py`` checks them against each installed suite's own registry.

Every adapter does its own episode bookkeeping, as ``BraxEnv`` does: the suite's env is
stepped without its auto-reset, ``terminated`` and ``truncated`` are read from the suite's
own signals, and on either a fresh episode is started from the step's key while
``info["final_observation"]`` keeps the observation the episode ended on. Each also
declares the step its time limit truncates at, ``max_episode_steps(params)``, read from
the suite (a field of ``params`` or a constructor option), which caps the evaluator.
Craftax, whose reset generates a world, also steps without its reset for ``VectorEnv``'s
optimistic resets (``optimistic_reset_ratio``, ``rlzoo.envs.wrappers.VectorEnv``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import jax

from rlzoo.envs.core import Array, PyTree, select_tree

# Jumanji 1.1.2: the single-agent envs that construct offline. Left out: Sokoban-v0 (its
# generator downloads levels from Hugging Face when it is built) and the multi-agent envs
# (Cleaner, Connector, LevelBasedForaging, MultiCVRP, RobotWarehouse, SearchAndRescue:
# one reward per agent), which do not fit a single-agent interface, and BinPack-v2 (its
# observation nests a Spec whose values are not named tuples; not converted yet).
JUMANJI_NAMES = (
    "CVRP-v1", "FlatPack-v0", "Game2048-v1", "GraphColoring-v1", "JobShop-v0",
    "Knapsack-v1", "MMST-v0", "Maze-v0", "Minesweeper-v0", "PacMan-v1",
    "RubiksCube-partly-scrambled-v0", "RubiksCube-v0", "SlidingTilePuzzle-v0", "Snake-v1",
    "Sudoku-v0", "Sudoku-very-easy-v0", "TSP-v1", "Tetris-v0",
)  # fmt: skip

# Craftax 1.6.1: full Craftax and Craftax-Classic, symbolic and pixel observations.
CRAFTAX_NAMES = (
    "Craftax-Symbolic-v1", "Craftax-Pixels-v1",
    "Craftax-Classic-Symbolic-v1", "Craftax-Classic-Pixels-v1",
)  # fmt: skip

# XLand-MiniGrid 0.9.3: the MiniGrid ports. Left out: the XLand-MiniGrid-R* meta-RL envs,
# whose tasks (rulesets) come from benchmark files that xminigrid downloads.
XMINIGRID_NAMES = (
    "MiniGrid-BlockedUnlockPickUp", "MiniGrid-DoorKey-5x5", "MiniGrid-DoorKey-6x6",
    "MiniGrid-DoorKey-8x8", "MiniGrid-DoorKey-16x16", "MiniGrid-Empty-5x5",
    "MiniGrid-Empty-6x6", "MiniGrid-Empty-8x8", "MiniGrid-Empty-16x16",
    "MiniGrid-EmptyRandom-5x5", "MiniGrid-EmptyRandom-6x6", "MiniGrid-EmptyRandom-8x8",
    "MiniGrid-EmptyRandom-16x16", "MiniGrid-FourRooms", "MiniGrid-LockedRoom",
    "MiniGrid-MemoryS8", "MiniGrid-MemoryS16", "MiniGrid-MemoryS32", "MiniGrid-MemoryS64",
    "MiniGrid-MemoryS128", "MiniGrid-Playground", "MiniGrid-Unlock", "MiniGrid-UnlockPickUp",
)  # fmt: skip

# Navix 0.7.4: its whole registry.
NAVIX_NAMES = (
    "Navix-Empty-5x5-v0", "Navix-Empty-6x6-v0", "Navix-Empty-8x8-v0", "Navix-Empty-16x16-v0",
    "Navix-Empty-Random-5x5-v0", "Navix-Empty-Random-6x6-v0", "Navix-Empty-Random-8x8-v0",
    "Navix-Empty-Random-16x16-v0", "Navix-DoorKey-5x5-v0", "Navix-DoorKey-6x6-v0",
    "Navix-DoorKey-8x8-v0", "Navix-DoorKey-16x16-v0", "Navix-DoorKey-Random-5x5-v0",
    "Navix-DoorKey-Random-6x6-v0", "Navix-DoorKey-Random-8x8-v0",
    "Navix-DoorKey-Random-16x16-v0", "Navix-FourRooms-v0", "Navix-KeyCorridorS3R1-v0",
    "Navix-KeyCorridorS3R2-v0", "Navix-KeyCorridorS3R3-v0", "Navix-KeyCorridorS4R3-v0",
    "Navix-KeyCorridorS5R3-v0", "Navix-KeyCorridorS6R3-v0", "Navix-LavaGapS5-v0",
    "Navix-LavaGapS6-v0", "Navix-LavaGapS7-v0", "Navix-SimpleCrossingS9N1-v0",
    "Navix-SimpleCrossingS9N2-v0", "Navix-SimpleCrossingS9N3-v0",
    "Navix-SimpleCrossingS11N5-v0", "Navix-Dynamic-Obstacles-5x5-v0",
    "Navix-Dynamic-Obstacles-5x5-Random-v0", "Navix-Dynamic-Obstacles-6x6-v0",
    "Navix-Dynamic-Obstacles-6x6-Random-v0", "Navix-Dynamic-Obstacles-8x8-v0",
    "Navix-Dynamic-Obstacles-16x16-v0", "Navix-DistShift1-v0", "Navix-DistShift2-v0",
    "Navix-GoToDoor-5x5-v0", "Navix-GoToDoor-6x6-v0", "Navix-GoToDoor-8x8-v0",
)  # fmt: skip

# MuJoCo Playground 0.2.0: the DM Control Suite set, whose model files ship in the package
# (these work offline) ...
PLAYGROUND_DM_CONTROL_NAMES = (
    "AcrobotSwingup", "AcrobotSwingupSparse", "BallInCup", "CartpoleBalance",
    "CartpoleBalanceSparse", "CartpoleSwingup", "CartpoleSwingupSparse", "CheetahRun",
    "FingerSpin", "FingerTurnEasy", "FingerTurnHard", "FishSwim", "HopperHop", "HopperStand",
    "HumanoidStand", "HumanoidWalk", "HumanoidRun", "PendulumSwingup", "PointMass",
    "ReacherEasy", "ReacherHard", "SwimmerSwimmer6", "WalkerRun", "WalkerStand", "WalkerWalk",
)  # fmt: skip
# ... and the locomotion and manipulation envs, which load robot models from a MuJoCo
# Menagerie checkout (Playground would `git clone` it at load time; rlzoo never downloads:
# pass ``menagerie_path=`` or set RLZOO_MENAGERIE_PATH).
PLAYGROUND_MENAGERIE_NAMES = (
    "ApolloJoystickFlatTerrain", "BarkourJoystick", "BerkeleyHumanoidJoystickFlatTerrain",
    "BerkeleyHumanoidJoystickRoughTerrain", "G1JoystickFlatTerrain", "G1JoystickRoughTerrain",
    "Go1JoystickFlatTerrain", "Go1JoystickRoughTerrain", "Go1Getup", "Go1Handstand",
    "Go1Footstand", "H1InplaceGaitTracking", "H1JoystickGaitTracking", "Op3Joystick",
    "SpotFlatTerrainJoystick", "SpotGetup", "SpotJoystickGaitTracking",
    "T1JoystickFlatTerrain", "T1JoystickRoughTerrain", "AlohaHandOver",
    "AlohaSinglePegInsertion", "PandaPickCube", "PandaPickCubeOrientation",
    "PandaPickCubeCartesian", "PandaOpenCabinet", "PandaRobotiqPushCube", "LeapCubeReorient",
    "LeapCubeRotateZAxis", "AeroCubeRotateZAxis",
)  # fmt: skip


@dataclass(frozen=True)
class Suite:
    """One optional suite: the module that says it is installed, its extra, its names."""

    prefix: str  # the id prefix, ``<prefix>/<name>``
    module: str  # importable when the suite is installed
    extra: str  # ``pip install "rlzoo[<extra>]"``
    names: tuple[str, ...]
    adapter: str  # rlzoo module:class of the adapter

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def not_installed_message(self, env_id: str) -> str:
        return (
            f"{env_id!r} needs the {self.prefix} suite, which is not installed: "
            f'pip install "rlzoo[{self.extra}]" (or pip install -c requirements/lock.txt '
            f'-e ".[{self.extra}]" in a checkout)'
        )


SUITES: dict[str, Suite] = {
    s.prefix: s
    for s in (
        Suite("jumanji", "jumanji", "jumanji", JUMANJI_NAMES, "jumanji_env:JumanjiEnv"),
        Suite("craftax", "craftax", "craftax", CRAFTAX_NAMES, "craftax_env:CraftaxEnv"),
        Suite("xminigrid", "xminigrid", "xminigrid", XMINIGRID_NAMES, "xminigrid_env:XMiniGridEnv"),
        Suite("navix", "navix", "navix", NAVIX_NAMES, "navix_env:NavixEnv"),
        Suite(
            "playground",
            "mujoco_playground",
            "playground",
            PLAYGROUND_DM_CONTROL_NAMES + PLAYGROUND_MENAGERIE_NAMES,
            "playground_env:PlaygroundEnv",
        ),
    )
}


def adapter_class(prefix: str) -> type:
    """The adapter class of a suite (imports the suite)."""
    import importlib

    module, _, cls = SUITES[prefix].adapter.partition(":")
    return getattr(importlib.import_module(f"rlzoo.envs.{module}"), cls)


# --------------------------------------------------------------------------- shared steps


def finish_step(
    done: Array, fresh: tuple[PyTree, PyTree], stepped: tuple[PyTree, PyTree]
) -> tuple[PyTree, PyTree, dict[str, Any]]:
    """Auto-reset: ``(obs, state, info)`` of the fresh episode where ``done``, else of the
    stepped one; ``info["final_observation"]`` is the stepped observation either way."""
    obs, state = select_tree(done, fresh, stepped)
    return obs, state, {"final_observation": stepped[0]}


def split_step_key(key: Array) -> tuple[Array, Array]:
    """(key for the suite's transition, key for the reset if the episode ends)."""
    step_key, reset_key = jax.random.split(key)
    return step_key, reset_key
