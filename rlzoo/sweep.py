"""Hyperparameter sweeps: seeds x configs agents per compiled program.

    python -m rlzoo.sweep --agent=ppo --env=gymnax/CartPole-v1 --num_seeds=8 \\
        --sweep.learning_rate=1e-4,3e-4,1e-3 --sweep.ent_coef=0,0.01 --run_dir=runs/sweep
    python -m rlzoo.sweep --search=random --num_samples=16 \\
        --sweep.learning_rate=loguniform(1e-4,1e-2) --sweep.clip_eps=uniform(0.1,0.3)

Traced fields (floats) of all points of a grid share one compiled program. Static fields
(sizes, counts, switches; e.g. ``--sweep.num_envs=4,16``) form groups that are compiled
and trained one after another. When a group's program would not fit in device memory
(XLA's estimate for the compiled program), its points are split in halves until it fits.
Every flag of ``rlzoo.train`` (``--config.<field>``, ``--total_steps``, ...) applies.
A killed sweep continues with ``--resume --run_dir=DIR``: finished groups are read back,
the interrupted group resumes from its last checkpoint, and the rest start.

Output, in ``--run_dir``: one run directory per program (``group-<g>[-part-<p>]``), and
``results.md`` / ``results.json``: each config's final evaluation mean, IQM and 95%
bootstrap interval of the mean over seeds, best first.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from absl import flags

from rlzoo import agents, cli
from rlzoo.analysis.stats import seed_summary
from rlzoo.core import hparams
from rlzoo.launch.callbacks import Callback, default_callbacks
from rlzoo.launch.configs import resolve_config
from rlzoo.launch.files import read_json, write_atomic, write_json
from rlzoo.launch.runner import FORMAT, BatchTooLarge, RunError, RunSpec, resume_spec, run

flags.DEFINE_enum("search", "grid", ["grid", "random"], "Grid over all values, or samples.")
flags.DEFINE_integer("num_samples", 0, "Random search: number of configs to sample.")
flags.DEFINE_integer("search_seed", 0, "Random search: seed of the sampler.")
flags.DEFINE_string(
    "metric", "", "Final evaluation metric to rank by; default the agent's score key."
)

_DISTRIBUTION = re.compile(r"^(uniform|loguniform)\(\s*([^,]+)\s*,\s*([^)]+)\s*\)$")


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One swept field: a list of values, or a distribution for random search."""

    name: str
    values: tuple[Any, ...] = ()
    distribution: tuple[str, float, float] | None = None

    def sample(self, rng: np.random.Generator) -> Any:
        if self.distribution is None:
            return self.values[rng.integers(len(self.values))]
        kind, low, high = self.distribution
        if kind == "uniform":
            return float(rng.uniform(low, high))
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets: ``(64,64),(32,32)`` -> two items."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]


def parse_dimension(config_cls: type, name: str, text: str) -> Dimension:
    """Parse ``--sweep.<name>=<text>`` against the Config field it sweeps."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if name not in fields:
        raise hparams.unknown_field_error(config_cls, name)
    match = _DISTRIBUTION.match(text.strip())
    if match:
        if hparams.is_static(fields[name]):
            raise ValueError(
                f"--sweep.{name}: {match.group(1)}(...) needs a traced float field; {name!r} "
                "is static (it fixes shapes), so give it a list of values."
            )
        low, high = float(match.group(2)), float(match.group(3))
        if not low < high or (match.group(1) == "loguniform" and low <= 0):
            raise ValueError(f"--sweep.{name}: bad range in {text!r} (need 0 < low < high)")
        return Dimension(name, distribution=(match.group(1), low, high))
    items = split_top_level(text)
    if not items:
        raise ValueError(f"--sweep.{name} is empty; give values like --sweep.{name}=a,b,c")
    return Dimension(
        name, values=tuple(hparams.parse_value(config_cls, name, item, "sweep") for item in items)
    )


def parse_sweep_flags(argv: list[str], config_cls: type) -> tuple[list[str], list[Dimension]]:
    """Take ``--sweep.<field>=...`` out of ``argv``; return the rest and the dimensions."""
    rest, texts = cli.take_prefixed(argv, "sweep")
    return rest, [parse_dimension(config_cls, name, text) for name, text in texts.items()]


def expand(
    dims: list[Dimension], search: str, num_samples: int, seed: int, config: Any
) -> list[dict[str, Any]]:
    """The list of configs (field -> value) to train."""
    if not dims:
        raise ValueError("no --sweep.<field>=... flags: nothing to sweep")
    if search == "grid":
        sampled = [d.name for d in dims if d.distribution]
        if sampled:
            raise ValueError(
                f"grid search needs lists of values, but {sampled} are distributions; use "
                "--search=random --num_samples=N"
            )
        return [
            dict(zip([d.name for d in dims], combo, strict=True))
            for combo in itertools.product(*(d.values for d in dims))
        ]
    if num_samples < 1:
        raise ValueError("random search needs --num_samples >= 1")
    rng = np.random.default_rng(seed)
    return [{d.name: d.sample(rng) for d in dims} for _ in range(num_samples)]


def group_by_static(points: list[dict[str, Any]], config: Any) -> list[tuple[dict, list[dict]]]:
    """Split configs into (static overrides, traced points) groups, one program each."""
    static = set(hparams.static_names(type(config)))
    groups: dict[tuple, tuple[dict, list[dict]]] = {}
    for point in points:
        fixed = {k: v for k, v in point.items() if k in static}
        traced = {k: v for k, v in point.items() if k not in static}
        key = tuple(sorted((k, repr(v)) for k, v in fixed.items()))
        groups.setdefault(key, (fixed, []))[1].append(traced)
    return list(groups.values())


def run_group(
    spec: RunSpec,
    callbacks: Callable[[], list[Callback]],
    resume: bool = False,
    changes: dict[str, Any] | None = None,
) -> list[dict]:
    """Train one static group; halve its points until each program fits in memory.

    On ``resume`` a group that has a run directory continues it (or, when finished, just
    reads its summary); a group that was split continues part by part; one that never
    started starts now.
    """
    run_dir = Path(spec.run_dir)
    started = resume and (run_dir / "config.json").exists()
    if resume and not started and Path(f"{spec.run_dir}-part-0").exists():
        return split_group(spec, callbacks, resume, changes)
    try:
        return [
            run(spec, resume=started, changes=changes if started else None, callbacks=callbacks())
        ]
    except BatchTooLarge as error:
        trained = any(p.name.isdigit() for p in (run_dir / "checkpoints").glob("*"))
        if len(spec.sweep) < 2 or trained:  # a run with checkpoints is never deleted
            raise
        print(f"rlzoo.sweep: {error} Splitting {len(spec.sweep)} configs into two programs.")
        shutil.rmtree(spec.run_dir, ignore_errors=True)  # the run never trained
        return split_group(spec, callbacks, resume, changes)


def split_group(
    spec: RunSpec,
    callbacks: Callable[[], list[Callback]],
    resume: bool,
    changes: dict[str, Any] | None,
) -> list[dict]:
    """The group's points in two halves, ``<run_dir>-part-0`` and ``-part-1``."""
    half = len(spec.sweep) // 2
    parts = []
    for p, points in enumerate((spec.sweep[:half], spec.sweep[half:])):
        part = dataclasses.replace(spec, sweep=points, run_dir=f"{spec.run_dir}-part-{p}")
        parts += run_group(part, callbacks, resume, changes)
    return parts


def results_table(rows: list[dict], metric: str) -> str:
    names = sorted({k for r in rows for k in r["config"]})
    header = "| rank | " + " | ".join(names) + " | mean | IQM | 95% CI of mean | seeds | run |"
    lines = [header, "|" + "---|" * (len(names) + 6)]
    for rank, r in enumerate(rows, 1):
        values = " | ".join(f"{r['config'].get(n, '')}" for n in names)
        low, high = r["ci95"]
        if r.get("diverged"):
            where = r["diverged"]
            scores = f"diverged at iteration {where['iteration']} (seed {where['seed']}) | | "
        else:
            scores = f"{r['mean']:.2f} | {r['iqm']:.2f} | [{low:.2f}, {high:.2f}] "
        lines.append(f"| {rank} | {values} | {scores}| {r['seeds']} | {r['run_dir']} |")
    return f"Ranked by final `{metric}`.\n\n" + "\n".join(lines) + "\n"


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples that config fields hold."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def open_sweep(
    base: RunSpec,
    dims: list[Dimension],
    search: str,
    num_samples: int,
    search_seed: int,
    metric: str,
    resume: bool,
    changes: dict[str, Any] | None,
) -> tuple[RunSpec, list[dict[str, Any]], str]:
    """The base spec, the configs and the metric of the sweep in ``base.run_dir``.

    A new sweep records them in ``sweep.json``; on ``resume`` they are read back from it,
    the safe ``changes`` applied (as for a run), and ``--sweep.*`` flags, if given again,
    must expand to the same configs.
    """
    root = Path(base.run_dir)
    if not resume:
        config = resolve_config(agents.get(base.agent), base.env, base.overrides)
        points = expand(dims, search, num_samples, search_seed, config)
        if root.exists() and any(root.iterdir()):
            raise ValueError(
                f"{root} is not empty; choose a new --run_dir for the sweep (or pass --resume "
                "to continue the sweep in it)"
            )
        root.mkdir(parents=True, exist_ok=True)
        record = {
            "format": FORMAT,
            "run": dataclasses.asdict(base),
            "config": hparams.to_dict(config),
            "points": [{k: hparams.to_dict_value(v) for k, v in p.items()} for p in points],
            "metric": metric,
        }
        write_json(root / "sweep.json", record)
        return base, points, metric
    try:
        stored = read_json(root / "sweep.json")
    except (OSError, ValueError) as error:
        raise RunError(
            f"--resume: {root}/sweep.json cannot be read ({error}); is --run_dir the "
            "directory of a sweep? Without --resume a new sweep starts."
        ) from error
    if stored.get("format") != FORMAT:
        raise RunError(f"--resume: {root} holds a sweep of another rlzoo run-directory format")
    spec, updated = resume_spec(stored, str(root), changes or {})
    if updated != stored:  # safe changes (a longer budget) hold for groups not yet started
        write_json(root / "sweep.json", updated)
    spec = dataclasses.replace(spec, overrides={k: _tuples(v) for k, v in spec.overrides.items()})
    points = [{k: _tuples(v) for k, v in p.items()} for p in stored["points"]]
    if dims:
        config = resolve_config(agents.get(spec.agent), spec.env, spec.overrides)
        asked = expand(dims, search, num_samples, search_seed, config)
        if [{k: hparams.to_dict_value(v) for k, v in p.items()} for p in asked] != stored["points"]:
            raise RunError(
                f"--resume: the --sweep.* flags give other configs than the sweep in {root} "
                f"({len(asked)} now, {len(points)} stored); drop them to continue the stored "
                "sweep, or start a new --run_dir."
            )
    return spec, points, metric or stored["metric"]


def group_changes(changes: dict[str, Any] | None, points: list[dict]) -> dict[str, Any] | None:
    """``changes`` for a group's run: swept fields are the sweep's, not the command line's."""
    if not changes or "overrides" not in changes:
        return changes
    swept = {k for p in points for k in p}
    kept = {k: v for k, v in changes["overrides"].items() if k not in swept}
    return {**changes, "overrides": kept}


def sweep(
    base: RunSpec,
    dims: list[Dimension],
    search: str = "grid",
    num_samples: int = 0,
    search_seed: int = 0,
    metric: str = "",
    callbacks: Callable[[], list[Callback]] = list,
    resume: bool = False,
    changes: dict[str, Any] | None = None,
) -> list[dict]:
    """Run every group of the sweep below ``base.run_dir``; returns ranked result rows.

    ``metric`` defaults to the agent's score key; ``callbacks`` makes each run's reporters.
    ``resume`` continues a killed sweep: finished groups are read, the interrupted one
    resumes from its last checkpoint, the rest start (``changes`` as for ``run``).
    """
    base, points, metric = open_sweep(
        base, dims, search, num_samples, search_seed, metric, resume, changes
    )
    root = Path(base.run_dir)
    groups = group_by_static(
        points, resolve_config(agents.get(base.agent), base.env, base.overrides)
    )
    print(
        f"rlzoo.sweep: {len(points)} configs x {base.num_seeds} seeds in {len(groups)} "
        "program group(s)"
    )
    start = time.perf_counter()
    rows = []
    for g, (fixed, traced_points) in enumerate(groups):
        spec = dataclasses.replace(
            base,
            overrides={**base.overrides, **fixed},
            sweep=traced_points,
            run_dir=str(root / f"group-{g}"),
        )
        for summary in run_group(spec, callbacks, resume, group_changes(changes, points)):
            metric = metric or summary["score_key"]
            per_seed = np.asarray(summary["final_eval_per_seed"][metric])
            seeds = summary["num_seeds"]
            for c, entry in enumerate(summary["final_eval_per_config"]):
                scores = per_seed[c * seeds : (c + 1) * seeds]
                rows.append(
                    {
                        "config": {**fixed, **entry["config"]},
                        **seed_summary(scores),
                        "diverged": entry["diverged"],  # None, or where it went non-finite
                        "seeds": seeds,
                        "per_seed": scores.tolist(),
                        "run_dir": Path(summary["run_dir"]).name,  # group-<g>[-part-<p>]
                    }
                )
    # Best first; diverged points (and any non-finite mean) last.
    rows.sort(key=lambda r: (r["diverged"] is not None or not np.isfinite(r["mean"]), -r["mean"]))
    write_json(
        root / "results.json",
        {"metric": metric, "rows": rows, "wall_seconds": time.perf_counter() - start},
    )
    write_atomic(root / "results.md", results_table(rows, metric))
    best = rows[0]
    print(
        f"rlzoo.sweep: best config {best['config']}: {metric} mean {best['mean']:.2f} "
        f"(IQM {best['iqm']:.2f}, 95% CI [{best['ci95'][0]:.2f}, {best['ci95'][1]:.2f}]); "
        f"table in {root / 'results.md'}"
    )
    return rows


_DIMS: list[Dimension] = []  # the --sweep.<field> flags, taken from argv before absl


def take_sweep_flags(argv: list[str], config_cls: type) -> list[str]:
    argv, dims = parse_sweep_flags(argv, config_cls)
    _DIMS[:] = dims
    return argv


def main(base: RunSpec) -> None:
    flags = cli.FLAGS
    sweep(
        base,
        _DIMS,
        flags.search,
        flags.num_samples,
        flags.search_seed,
        flags.metric,
        callbacks=lambda: default_callbacks(flags.progress, flags.tensorboard),
        resume=flags.resume,
        changes=cli.resume_changes(base) if flags.resume else None,
    )


def entry() -> None:
    cli.entry("rlzoo.sweep", main, extra=take_sweep_flags, kind="sweep-")


if __name__ == "__main__":
    entry()
