"""Compare runs: final-score tables, robust aggregates with bootstrap intervals, and plots.

    python -m rlzoo.report runs/cartpole-ppo runs/cartpole-ppo-lr3e-4 --out=report/

Every path is searched recursively for run directories (a folder holding ``config.json`` and
``metrics.jsonl``, as written by ``python -m rlzoo.train``). Runs are grouped by (agent, env);
two runs with the same agent and env are told apart by their directory names, so two configs
of one agent compare as two agents. The output folder gets ``learning_curves.png``,
``aggregates.png``, ``performance_profile.png``, ``probability_of_improvement.png`` (with two
agents or more), ``report.md`` and ``report.json``. The statistics (stratified bootstrap,
interquartile mean, optimality gap, probability of improvement, performance profiles) are in
:mod:`rlzoo.launch.bootstrap`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlzoo.launch import bootstrap

AGGREGATE_NAMES = {
    "mean": "mean",
    "median": "median",
    "iqm": "IQM",
    "optimality_gap": "optimality gap",
}
CURVE_POINTS = 200  # training curves are thinned to at most this many x points per run


class ReportError(ValueError):
    """The inputs cannot make a report; the message says why and what to change."""


@dataclasses.dataclass
class Run:
    """One run directory, read."""

    path: Path
    agent: str
    env: str
    config: dict[str, Any]
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]
    summary: dict[str, Any] | None
    point: dict[str, Any] = dataclasses.field(default_factory=dict)  # sweep point, if any
    label: str = ""


# ----------------------------------------------------------------------------- reading runs


def is_run_dir(path: Path) -> bool:
    """A run directory holds ``config.json`` and ``metrics.jsonl``."""
    return (path / "config.json").is_file() and (path / "metrics.jsonl").is_file()


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories at or below each of ``paths``, each once, in a stable order."""
    if not paths:
        raise ReportError("no path given; pass one or more run directories or folders of runs")
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ReportError(f"{path} does not exist")
        here = []
        if path.is_dir():
            for root, dirs, _ in os.walk(path):
                if is_run_dir(Path(root)):
                    here.append(Path(root))
                    dirs.clear()  # a run directory holds no further runs (checkpoints etc.)
                else:
                    dirs.sort()
        if not here:
            raise ReportError(
                f"no run directory found at or below {path}. Searched: "
                f"{', '.join(str(p) for p in paths)}. A run directory is a folder that holds "
                "both config.json and metrics.jsonl, as written by `python -m rlzoo.train "
                "--run_dir=DIR`."
            )
        for run in here:
            found.setdefault(run.resolve(), None)
    return list(found)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a crash ends the usable log (as in rlzoo.launch.files)
    return rows


def _point_text(point: Mapping[str, Any]) -> str:
    """``lr=0.001,ent_coef=0.01`` for a sweep point (empty for a plain run)."""
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())


def load_runs(path: Path) -> list[Run]:
    """Read ``config.json``, ``metrics.jsonl`` and (when present) ``summary.json``.

    A run directory of a sweep program holds several configs (``run.sweep`` in config.json,
    a ``config`` index in every metrics row, per-seed results laid out config by config): it
    is read as one run per config.
    """
    with open(path / "config.json") as f:
        config = json.load(f)
    spec = config.get("run", {})
    rows = _read_jsonl(path / "metrics.jsonl")
    summary = None
    if (path / "summary.json").is_file():
        with open(path / "summary.json") as f:
            summary = json.load(f)
    agent = str(spec.get("agent") or (summary or {}).get("agent") or "agent")
    env = str(spec.get("env") or (summary or {}).get("env") or "env")
    points = spec.get("sweep") or [{}]
    num_seeds = int(spec.get("num_seeds") or (summary or {}).get("num_seeds") or 0)
    per_seed = (summary or {}).get("final_eval_per_seed", {})
    swept = len(points) > 1
    runs = []
    for c, point in enumerate(points):
        mine = [r for r in rows if r.get("config", 0) == c] if swept else rows
        part = None if swept else summary
        if (
            swept
            and num_seeds
            and all(len(v) == num_seeds * len(points) for v in per_seed.values())
        ):
            # Agent a of the program is seed a % num_seeds of config a // num_seeds.
            part = {
                "final_eval_per_seed": {
                    k: v[c * num_seeds : (c + 1) * num_seeds] for k, v in per_seed.items()
                }
            }
        runs.append(
            Run(
                path=path,
                agent=agent,
                env=env,
                config=config,
                train_rows=[r for r in mine if not r.get("eval")],
                eval_rows=[r for r in mine if r.get("eval")],
                summary=part,
                point=dict(point),
            )
        )
    return runs


def _distinct_folders(paths: list[Path]) -> list[str]:
    """The part of each path that tells it apart: below the common folder, and without
    trailing folders that all share (``sweep/lr1/cartpole`` and ``sweep/lr2/cartpole`` give
    ``lr1`` and ``lr2``, so one config keeps one label across envs laid out alike).
    """
    common = Path(os.path.commonpath([str(p) for p in paths]))
    parts = [p.relative_to(common).parts for p in paths]
    while all(len(q) > 1 for q in parts) and len({q[-1] for q in parts}) == 1:
        parts = [q[:-1] for q in parts]
    return ["/".join(q) for q in parts]


def _with_points(folders: list[str], points: list[str]) -> list[str]:
    return [f"{d}[{p}]" if d and p else d or p for d, p in zip(folders, points, strict=True)]


def assign_labels(runs: list[Run]) -> None:
    """Label each run by its agent; runs sharing agent and env get distinct names instead.

    The distinct name is the sweep point (``lr=0.001``) when those differ, else the run's
    directory name (with its sweep point); where those collide too, the shortest part of the
    paths that tells the runs apart (see :func:`_distinct_folders`).
    """
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.agent, run.env), []).append(run)
    for group in groups.values():
        if len(group) == 1:
            group[0].label = group[0].agent
            continue
        points = [_point_text(run.point) for run in group]
        if all(points) and len(set(points)) == len(points):
            names = points
        else:
            names = _with_points([run.path.name for run in group], points)
            if len(set(names)) < len(names):
                names = _with_points(_distinct_folders([run.path for run in group]), points)
        for run, name in zip(group, names, strict=True):
            run.label = name
    # Two agents whose runs fell back to the same folder name on one env: name the agent too.
    seen: dict[tuple[str, str], int] = {}
    for run in runs:
        seen[run.label, run.env] = seen.get((run.label, run.env), 0) + 1
    for run in runs:
        if seen[run.label, run.env] > 1:
            run.label = f"{run.agent}/{run.label}"


# ----------------------------------------------------------------------------- run contents


def _where(run: Run) -> str:
    """The run's directory, and its sweep point when it is one config of a sweep program."""
    return f"{run.path} [{_point_text(run.point)}]" if run.point else str(run.path)


def _float(value: Any) -> float:
    """A logged value as float; null (a non-finite value) becomes NaN."""
    return math.nan if value is None else float(value)


def _last_iteration_values(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    """Per-seed values of ``key`` at the last iteration that logged it (seed order)."""
    rows = [r for r in rows if key in r]
    last = max(r["iteration"] for r in rows)
    chosen = sorted((r for r in rows if r["iteration"] == last), key=lambda r: r["seed"])
    return np.array([_float(r[key]) for r in chosen])


def final_scores(run: Run, metric: str) -> tuple[np.ndarray, str, str | None]:
    """Per-seed final scores of ``run``: (scores, where they came from, a note or None).

    Order of preference: ``summary.json``'s final evaluation, the last evaluation rows of
    ``metrics.jsonl``, the last training rows (for a training metric such as
    ``episode_return``). A run without evaluation rows falls back to the final training
    ``episode_return``, with a note.
    """
    per_seed = (run.summary or {}).get("final_eval_per_seed", {})
    if metric in per_seed:
        return np.array([_float(v) for v in per_seed[metric]]), "summary.json", None
    if any(metric in r for r in run.eval_rows):
        return _last_iteration_values(run.eval_rows, metric), "last evaluation", None
    if any(metric in r for r in run.train_rows):
        return _last_iteration_values(run.train_rows, metric), "last training iteration", None
    if not run.eval_rows and any("episode_return" in r for r in run.train_rows):
        note = (
            f"{_where(run)}: no evaluation rows with {metric!r}; using the final training "
            "episode_return instead"
        )
        scores = _last_iteration_values(run.train_rows, "episode_return")
        return scores, "training episode_return (fallback)", note
    keys = sorted({k for r in run.eval_rows + run.train_rows for k in r} - {"iteration", "seed"})
    raise ReportError(
        f"{_where(run)}: metric {metric!r} is not logged (neither in summary.json nor in "
        f"metrics.jsonl). Logged metrics: {', '.join(keys) or 'none'}. Choose one with --metric."
    )


def steps_axis(run: Run) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """A map from iteration to env steps per seed for ``run``, and the axis label.

    Uses ``steps_per_iteration`` from the config when the config records it, otherwise the
    ``env_steps`` the agent logged at each iteration, otherwise num_envs x num_steps of the
    agent config; without any of these the x axis stays in iterations.
    """
    spec = run.config.get("run", {})
    explicit = run.config.get("steps_per_iteration", spec.get("steps_per_iteration"))
    if explicit:
        return (lambda it: np.asarray(it, dtype=np.float64) * float(explicit)), "env steps"
    logged: dict[int, float] = {}
    for r in run.train_rows:
        if r.get("env_steps") is not None:
            logged.setdefault(int(r["iteration"]), float(r["env_steps"]))
    agent_config = run.config.get("agent_config", {})
    batch = None
    if agent_config.get("num_envs") and agent_config.get("num_steps"):
        batch = float(agent_config["num_envs"]) * float(agent_config["num_steps"])
    if logged or batch:

        def to_steps(it: np.ndarray) -> np.ndarray:
            out = []
            for i in np.asarray(it).tolist():
                if int(i) in logged:
                    out.append(logged[int(i)])
                else:
                    out.append(i * batch if batch else math.nan)
            return np.array(out, dtype=np.float64)

        return to_steps, "env steps"
    return (lambda it: np.asarray(it, dtype=np.float64)), "iteration"


def curve(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, values [seeds, iterations]) of ``key``; NaN where a seed has no value."""
    rows = [r for r in rows if key in r]
    if not rows:
        return np.zeros(0), np.zeros((0, 0))
    iterations = np.array(sorted({int(r["iteration"]) for r in rows}))
    seeds = sorted({int(r["seed"]) for r in rows})
    col = {it: j for j, it in enumerate(iterations.tolist())}
    row = {s: i for i, s in enumerate(seeds)}
    values = np.full((len(seeds), len(iterations)), np.nan)
    for r in rows:
        values[row[int(r["seed"])], col[int(r["iteration"])]] = _float(r[key])
    return iterations, values


def _thin(iterations: np.ndarray, values: np.ndarray, points: int) -> tuple:
    if len(iterations) <= points:
        return iterations, values
    keep = np.unique(np.linspace(0, len(iterations) - 1, points).round().astype(int))
    return iterations[keep], values[:, keep]


# ----------------------------------------------------------------------------- the report


def _interval(values: np.ndarray, reps: int, confidence: float, seed: int) -> bootstrap.Interval:
    """Bootstrap interval of the mean over seeds of one run (a single task)."""
    return bootstrap.aggregate_intervals(
        values[:, None], reps=reps, confidence=confidence, seed=seed, threshold=None
    )["mean"]


def build_report(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    metric: str = "deterministic_return",
    reps: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    normalizers: Mapping[str, tuple[float, float]] | None = None,
    threshold: float | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Read the runs under ``paths``, write the report files to ``out``, return the numbers.

    ``normalizers`` adds to (or overrides) :data:`rlzoo.launch.bootstrap.DEFAULT_NORMALIZERS`.
    Aggregates use normalised scores when every env has a normaliser, raw scores otherwise.
    ``threshold`` is the optimality-gap target (default 1.0 on normalised scores; on raw
    scores the gap is left out unless a threshold is given). Raises :class:`ReportError`.
    """
    if reps < 1:
        raise ReportError(f"--reps must be positive, got {reps}")
    if not 0 < confidence < 1:
        raise ReportError(f"--confidence must lie in (0, 1), got {confidence}")
    runs = [run for p in find_runs(paths) for run in load_runs(p)]
    assign_labels(runs)
    if out is None:
        first = Path(paths[0])
        out = first / "report" if first.is_dir() else Path("report")
    out = Path(out)
    table = {**bootstrap.DEFAULT_NORMALIZERS, **(normalizers or {})}
    notes: list[str] = []

    # Final scores per (label, env); one run each after labelling.
    entries = []
    for run in runs:
        scores, source, note = final_scores(run, metric)
        if note:
            notes.append(note)
        finite = np.isfinite(scores)
        if not finite.all():
            notes.append(
                f"{_where(run)}: seed(s) {np.flatnonzero(~finite).tolist()} have non-finite "
                f"{metric}; left out"
            )
        scores = scores[finite]
        if scores.size == 0:
            notes.append(f"{_where(run)}: no finite final score; run left out of the statistics")
            continue
        ci = _interval(scores, reps, confidence, seed)
        entries.append(
            {
                "agent": run.label,
                "agent_name": run.agent,
                "env": run.env,
                "path": str(run.path),
                "sweep_point": run.point,
                "num_seeds": int(scores.size),
                "mean": float(np.mean(scores)),
                "iqm": float(bootstrap.iqm(scores)),
                "ci_low": ci.low,
                "ci_high": ci.high,
                "source": source,
                "scores": scores.tolist(),
            }
        )
    if not entries:
        raise ReportError(f"none of the runs found has a finite final {metric}; see: {notes}")

    envs = sorted({e["env"] for e in entries})
    labels = list(dict.fromkeys(e["agent"] for e in sorted(entries, key=lambda e: e["agent"])))
    normalised = all(bootstrap.has_normalizer(env, table) for env in envs)
    if not normalised:
        missing = [env for env in envs if not bootstrap.has_normalizer(env, table)]
        notes.append(
            f"no score normaliser for {', '.join(missing)}; aggregates use raw scores "
            "(pass --normalizer=ENV=MIN,MAX for each env to normalise)"
        )
    if threshold is None and normalised:
        threshold = 1.0
    if threshold is None:
        notes.append("optimality gap left out: it needs normalised scores or --threshold")

    def scores_of(label: str, scale: bool) -> dict[str, np.ndarray]:
        out_ = {}
        for e in entries:
            if e["agent"] == label:
                x = np.array(e["scores"])
                out_[e["env"]] = bootstrap.normalize(x, e["env"], table) if scale else x
        return out_

    aggregates = {}
    for label in labels:
        per_env = scores_of(label, normalised)
        intervals = bootstrap.aggregate_intervals(
            list(per_env.values()), reps, confidence, seed, threshold
        )
        aggregates[label] = {
            "envs": sorted(per_env),
            "num_runs": int(sum(v.size for v in per_env.values())),
            **{k: v.to_dict() for k, v in intervals.items()},
        }

    improvements = []
    for x in labels:
        for y in labels:
            if x == y:
                continue
            sx, sy = scores_of(x, False), scores_of(y, False)
            common = sorted(set(sx) & set(sy))
            if not common:
                continue
            poi = bootstrap.probability_of_improvement_interval(
                [sx[e] for e in common], [sy[e] for e in common], reps, confidence, seed
            )
            improvements.append({"x": x, "y": y, "envs": common, **poi.to_dict()})
    if len(labels) >= 2 and not improvements:
        notes.append("no two agents share an env; no probability of improvement")

    # Performance profiles on the aggregate scale, over a tau grid covering every score.
    pooled = np.concatenate(
        [np.concatenate(list(scores_of(a, normalised).values())) for a in labels]
    )
    lo, hi = float(pooled.min()), float(pooled.max())
    if normalised:
        lo, hi = min(lo, 0.0), max(hi, 1.0)
    pad = 0.02 * (hi - lo) if hi > lo else 1.0
    taus = np.linspace(lo - pad, hi + pad, 101)
    profiles = {}
    for label in labels:
        profile, low, high = bootstrap.performance_profile_band(
            list(scores_of(label, normalised).values()), taus, reps, confidence, seed
        )
        profiles[label] = {"fraction": profile.tolist(), "low": low.tolist(), "high": high.tolist()}

    result: dict[str, Any] = {
        "metric": metric,
        "confidence": confidence,
        "reps": reps,
        "seed": seed,
        "normalized": normalised,
        "normalizers": {env: list(table[env]) for env in envs if env in table},
        "optimality_gap_threshold": threshold,
        "runs": [
            {
                "path": str(r.path),
                "agent": r.label,
                "agent_name": r.agent,
                "env": r.env,
                "sweep_point": r.point,
            }
            for r in runs
        ],
        "per_env": entries,
        "aggregates": aggregates,
        "probability_of_improvement": improvements,
        "performance_profile": {"taus": taus.tolist(), "agents": profiles},
        "notes": notes,
    }

    out.mkdir(parents=True, exist_ok=True)
    files = []
    if plots:
        files += _plot_all(out, runs, result, metric, reps, confidence, seed)
    result["out"] = str(out)
    result["files"] = sorted([*files, "report.md", "report.json"])
    (out / "report.md").write_text(markdown(result))
    (out / "report.json").write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    for note in notes:
        print(f"rlzoo.report: note: {note}")
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# ----------------------------------------------------------------------------- markdown


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """``report.md``: the tables of ``result`` (as returned by :func:`build_report`)."""
    pct = f"{100 * result['confidence']:g}%"
    metric = result["metric"]
    lines = [
        f"# rlzoo report: {metric}",
        "",
        f"Final {metric} per seed; intervals are {pct} bootstrap percentile intervals "
        f"({result['reps']} resamples, seed {result['seed']}).",
        "",
        "## Final scores",
        "",
        f"| agent | env | seeds | mean | IQM | {pct} CI of mean | source |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for e in result["per_env"]:
        lines.append(
            f"| {e['agent']} | {e['env']} | {e['num_seeds']} | {_num(e['mean'])} | "
            f"{_num(e['iqm'])} | [{_num(e['ci_low'])}, {_num(e['ci_high'])}] | {e['source']} |"
        )
    if result["normalized"]:
        bounds = ", ".join(f"{k}: ({v[0]:g}, {v[1]:g})" for k, v in result["normalizers"].items())
        scale_text = f"normalised scores, (score - min) / (max - min) with (min, max) = {bounds}"
    else:
        scale_text = "raw scores"
    names = [n for n in AGGREGATE_NAMES if any(n in a for a in result["aggregates"].values())]
    lines += [
        "",
        "## Aggregates",
        "",
        f"Over the final scores of all runs and envs of each agent, {scale_text}; stratified "
        "bootstrap over runs within each env. Optimality gap: mean shortfall below "
        f"{_num(result['optimality_gap_threshold'], 3)} (lower is better).",
        "",
        "| agent | envs | runs | " + " | ".join(AGGREGATE_NAMES[n] for n in names) + " |",
        "|---|---:|---:|" + "---|" * len(names),
    ]
    for label, agg in result["aggregates"].items():
        cells = [
            f"{_num(agg[n]['estimate'], 3)} [{_num(agg[n]['low'], 3)}, {_num(agg[n]['high'], 3)}]"
            for n in names
        ]
        lines.append(f"| {label} | {len(agg['envs'])} | {agg['num_runs']} | " + " | ".join(cells))
        lines[-1] += " |"
    lines.append("")
    if result["probability_of_improvement"]:
        lines += [
            "## Probability of improvement",
            "",
            "P(X > Y): chance that a random run of X scores above a random run of Y on the same "
            "env (ties count 1/2), averaged over the envs both ran.",
            "",
            f"| X | Y | envs | P(X > Y) | {pct} CI |",
            "|---|---|---:|---:|---|",
        ]
        for p in result["probability_of_improvement"]:
            lines.append(
                f"| {p['x']} | {p['y']} | {len(p['envs'])} | {_num(p['estimate'], 3)} | "
                f"[{_num(p['low'], 3)}, {_num(p['high'], 3)}] |"
            )
        lines.append("")
    if result["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    lines += ["## Runs", ""] + [
        f"- {r['agent']}, {r['env']}: `{r['path']}`" for r in result["runs"]
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- plots


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ReportError(
            "plots need matplotlib: pip install -e '.[plots]' (or pass --no_plots)"
        ) from error
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _plot_all(
    out: Path,
    runs: list[Run],
    result: dict[str, Any],
    metric: str,
    reps: int,
    confidence: float,
    seed: int,
) -> list[str]:
    plt = _pyplot()
    files = [
        _plot_curves(plt, out, runs, metric, reps, confidence, seed),
        _plot_aggregates(plt, out, result),
        _plot_profiles(plt, out, result),
    ]
    if result["probability_of_improvement"]:
        files.append(_plot_improvement(plt, out, result))
    return files


def _colors(plt, labels: list[str]) -> dict[str, Any]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}


def _plot_curves(plt, out, runs, metric, reps, confidence, seed) -> str:
    envs = sorted({r.env for r in runs})
    colors = _colors(plt, sorted({r.label for r in runs}))
    fig, axes = plt.subplots(2, len(envs), figsize=(5.5 * len(envs), 8), squeeze=False)
    pct = f"{100 * confidence:g}%"
    for j, env in enumerate(envs):
        top, bottom = axes[0, j], axes[1, j]
        for run in sorted((r for r in runs if r.env == env), key=lambda r: r.label):
            to_steps, xlabel = steps_axis(run)
            rows = run.eval_rows if any(metric in r for r in run.eval_rows) else run.train_rows
            for ax, (its, vals) in (
                (top, curve(rows, metric)),
                (bottom, _thin(*curve(run.train_rows, "episode_return"), CURVE_POINTS)),
            ):
                if vals.size == 0:
                    continue
                mean, low, high = bootstrap.curve_band(vals, reps, confidence, seed)
                x = to_steps(its)
                ax.plot(x, mean, color=colors[run.label], label=run.label, marker=".")
                ax.fill_between(x, low, high, color=colors[run.label], alpha=0.2, linewidth=0)
                ax.set_xlabel(xlabel)
        top.set_title(f"{env}: evaluation {metric}")
        top.set_ylabel(f"{metric} (mean, {pct} CI)")
        bottom.set_title(f"{env}: training episode_return")
        bottom.set_ylabel(f"episode_return (mean, {pct} CI)")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=100)
    plt.close(fig)
    return "learning_curves.png"


def _plot_aggregates(plt, out, result) -> str:
    labels = list(result["aggregates"])
    names = [n for n in AGGREGATE_NAMES if n in next(iter(result["aggregates"].values()))]
    colors = _colors(plt, labels)
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.2 * len(names), 0.6 * len(labels) + 1.6), squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=True):
        for i, label in enumerate(labels):
            iv = result["aggregates"][label][name]
            ax.plot([iv["low"], iv["high"]], [i, i], color=colors[label], linewidth=8, alpha=0.6)
            ax.plot([iv["estimate"]], [i], "|", color="black", markersize=14)
        ax.set_yticks(range(len(labels)), labels if ax is axes[0, 0] else [""] * len(labels))
        ax.set_ylim(len(labels) - 0.3, -0.7)  # first agent on top
        ax.set_title(AGGREGATE_NAMES[name])
        ax.grid(axis="x", alpha=0.3)
    scale = "normalised score" if result["normalized"] else f"raw {result['metric']}"
    fig.supxlabel(f"{scale} ({100 * result['confidence']:g}% CI)")
    fig.tight_layout()
    fig.savefig(out / "aggregates.png", dpi=100)
    plt.close(fig)
    return "aggregates.png"


def _plot_profiles(plt, out, result) -> str:
    taus = np.array(result["performance_profile"]["taus"])
    agents = result["performance_profile"]["agents"]
    colors = _colors(plt, list(agents))
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, p in agents.items():
        ax.plot(taus, p["fraction"], color=colors[label], label=label)
        ax.fill_between(taus, p["low"], p["high"], color=colors[label], alpha=0.2, linewidth=0)
    scale = "normalised score" if result["normalized"] else f"raw {result['metric']}"
    ax.set_xlabel(f"{scale} threshold tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "performance_profile.png", dpi=100)
    plt.close(fig)
    return "performance_profile.png"


def _plot_improvement(plt, out, result) -> str:
    pairs = result["probability_of_improvement"]
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(pairs) + 1.4))
    for i, p in enumerate(pairs):
        ax.plot([p["low"], p["high"]], [i, i], color="tab:blue", linewidth=8, alpha=0.6)
        ax.plot([p["estimate"]], [i], "o", color="black", markersize=5)
    ax.axvline(0.5, color="gray", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(pairs)), [f"P({p['x']} > {p['y']})" for p in pairs])
    ax.set_ylim(len(pairs) - 0.3, -0.7)  # first pair on top
    ax.set_xlim(-0.03, 1.03)  # an interval at exactly 0 or 1 stays visible
    ax.set_xlabel(f"probability of improvement ({100 * result['confidence']:g}% CI)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "probability_of_improvement.png", dpi=100)
    plt.close(fig)
    return "probability_of_improvement.png"


# ----------------------------------------------------------------------------- command line


def _normalizer(text: str) -> tuple[str, tuple[float, float]]:
    try:
        env, bounds = text.rsplit("=", 1)
        low, high = (float(v) for v in bounds.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ENV=MIN,MAX (e.g. gymnax/Acrobot-v1=-500,0)"
        ) from error
    return env, (low, high)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rlzoo.report",
        description="Tables, bootstrap intervals and plots comparing rlzoo run directories.",
    )
    parser.add_argument("paths", nargs="+", help="run directories or folders holding them")
    parser.add_argument("--out", default=None, help="output folder (default: FIRST_PATH/report)")
    parser.add_argument(
        "--metric", default="deterministic_return", help="final score (an eval or train key)"
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap random seed")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval coverage")
    parser.add_argument(
        "--normalizer",
        type=_normalizer,
        action="append",
        default=[],
        metavar="ENV=MIN,MAX",
        help="score normaliser for an env (repeatable); CartPole-v1 has one built in",
    )
    parser.add_argument(
        "--threshold", type=float, default=None, help="optimality-gap target (default 1.0)"
    )
    parser.add_argument("--no_plots", action="store_true", help="write report.md/json only")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry; ``argv`` excludes the program name (default: ``sys.argv[1:]``)."""
    args = parse_args(argv)
    try:
        result = build_report(
            args.paths,
            out=args.out,
            metric=args.metric,
            reps=args.reps,
            seed=args.seed,
            confidence=args.confidence,
            normalizers=dict(args.normalizer),
            threshold=args.threshold,
            plots=not args.no_plots,
        )
    except ReportError as error:
        sys.exit(f"rlzoo.report: error: {error}")
    for e in result["per_env"]:
        print(
            f"rlzoo.report: {e['agent']:>16} {e['env']:<24} {e['num_seeds']:>3} seed(s)  "
            f"mean {e['mean']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}]  IQM {e['iqm']:.2f}"
        )
    print(f"rlzoo.report: wrote {', '.join(result['files'])} to {result['out']}")
    return result


if __name__ == "__main__":
    main()
