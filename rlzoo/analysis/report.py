"""Compare run directories: final-score tables, aggregates with intervals, report files.

Every path is searched recursively for run directories (a folder holding ``config.json`` and
``metrics/``, or ``metrics.jsonl`` in format 2, as written by ``python -m rlzoo.train``). Runs
are grouped
by (agent, env); runs sharing agent and env are told apart by sweep point or directory name,
so two configs of one agent compare as two agents. A sweep's run directory (``run.sweep`` in
config.json) is read as one run per sweep point.

:func:`build_report` writes ``report.md`` and ``report.json`` and, through
:mod:`rlzoo.analysis.plots`, the plots. The statistics are :mod:`rlzoo.analysis.stats`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlzoo.analysis import stats
from rlzoo.analysis.logs import MetricsLog

FORMATS = (2, 3)  # the run-directory formats this module reads (2 logged metrics.jsonl)
TRAIN_RETURN = "rollout/episode_return"  # training score: fallback and lower curve panel
ROW_KEYS = {"iteration", "seed", "config", "step", "eval"}  # row fields that are no metric


class ReportError(ValueError):
    """The inputs cannot make a report; the message says why and what to change."""


@dataclasses.dataclass
class Run:
    """One run directory (or one sweep point of one), read."""

    path: Path
    agent: str
    env: str
    config: dict[str, Any]  # config.json
    score_key: str  # the metric the run is scored by unless --metric says otherwise
    step_unit: str  # what the rows' ``step`` counts (env_steps, gradient_steps, ...)
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]
    summary: dict[str, Any] | None
    point: dict[str, Any] = dataclasses.field(default_factory=dict)  # sweep point, if any
    label: str = ""  # set by assign_labels
    metric: str = ""  # the metric this report scores it by; set by build_report


# ----------------------------------------------------------------------------- finding runs


def is_run_dir(path: Path) -> bool:
    """A run directory holds ``config.json`` and ``metrics/`` (``metrics.jsonl`` in format 2)."""
    logged = (path / "metrics").is_dir() or (path / "metrics.jsonl").is_file()
    return (path / "config.json").is_file() and logged


def _runs_below(path: Path) -> list[Path]:
    found = []
    for root, dirs, _ in os.walk(path):
        if is_run_dir(Path(root)):
            found.append(Path(root))
            dirs.clear()  # a run directory holds no further runs (checkpoints etc.)
        else:
            dirs.sort()
    return found


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories at or below each of ``paths``, each once, in a stable order."""
    if not paths:
        raise ReportError("no path given; pass one or more run directories or folders of runs")
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ReportError(f"{path} does not exist")
        here = _runs_below(path) if path.is_dir() else []
        if not here:
            raise ReportError(
                f"no run directory found at or below {path}. Searched: "
                f"{', '.join(str(p) for p in paths)}. A run directory is a folder that holds "
                "both config.json and metrics/ (or metrics.jsonl), as written by "
                "`python -m rlzoo.train --run_dir=DIR`."
            )
        for run in here:
            found.setdefault(run.resolve(), None)
    return list(found)


# ----------------------------------------------------------------------------- reading runs


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ReportError(f"{path} is not valid JSON ({error})") from error


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


def read_config(path: Path) -> dict[str, Any]:
    """``config.json`` of the run directory ``path``; refuses formats not in :data:`FORMATS`."""
    config = _read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("format") not in FORMATS:
        raise ReportError(
            f'{path} was written by an older rlzoo (config.json has no "format" among '
            f"{FORMATS}); re-run it with this version to report on it"
        )
    return config


def point_text(point: Mapping[str, Any]) -> str:
    """``lr=0.001,ent_coef=0.01`` for a sweep point (empty for a plain run)."""
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())


def _point_summary(
    summary: dict[str, Any] | None, c: int, num_points: int, num_seeds: int
) -> dict[str, Any] | None:
    """The part of a sweep's ``summary.json`` that belongs to sweep point ``c``.

    Agent a of the program is seed a % num_seeds of point a // num_seeds; per-seed lists of
    another length cannot be split and are dropped (the metrics rows are used instead).
    """
    per_seed = (summary or {}).get("final_eval_per_seed", {})
    if not num_seeds or any(len(v) != num_seeds * num_points for v in per_seed.values()):
        return None
    part = {k: v[c * num_seeds : (c + 1) * num_seeds] for k, v in per_seed.items()}
    return {"final_eval_per_seed": part}


def load_runs(path: Path) -> list[Run]:
    """Read ``config.json``, the metrics and (when present) ``summary.json``.

    A sweep's run directory holds several sweep points (``run.sweep`` in config.json, a
    ``config`` index in every metrics row, per-seed results laid out point by point): it is
    read as one run per point.
    """
    config = read_config(path)
    spec, info = config.get("run", {}), config.get("agent", {})
    summary = _read_json(path / "summary.json") if (path / "summary.json").is_file() else None
    points = spec.get("sweep") or [{}]
    num_seeds = int(spec.get("num_seeds") or (summary or {}).get("num_seeds") or 0)
    if config["format"] == 2:
        rows = _read_jsonl(path / "metrics.jsonl")
    else:
        rows = MetricsLog(path / "metrics").rows(num_seeds, int(info["steps_per_iteration"]))
    swept = len(points) > 1
    runs = []
    for c, point in enumerate(points):
        mine = [r for r in rows if r.get("config", 0) == c] if swept else rows
        runs.append(
            Run(
                path=path,
                agent=str(spec.get("agent") or "agent"),
                env=str(spec.get("env") or "env"),
                config=config,
                score_key=str((summary or {}).get("score_key") or info.get("score_key") or ""),
                step_unit=str(info.get("step_unit") or "steps"),
                train_rows=[r for r in mine if not r.get("eval")],
                eval_rows=[r for r in mine if r.get("eval")],
                summary=_point_summary(summary, c, len(points), num_seeds) if swept else summary,
                point=dict(point),
            )
        )
    return runs


def read_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Every run at or below ``paths``, labelled (see :func:`assign_labels`)."""
    runs = [run for p in find_runs(paths) for run in load_runs(p)]
    assign_labels(runs)
    return runs


# ----------------------------------------------------------------------------- labels


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


def _group_names(group: list[Run]) -> list[str]:
    """Distinct names for runs sharing agent and env (see :func:`assign_labels`)."""
    points = [point_text(run.point) for run in group]
    if all(points) and len(set(points)) == len(points):
        return points
    names = _with_points([run.path.name for run in group], points)
    if len(set(names)) < len(names):
        names = _with_points(_distinct_folders([run.path for run in group]), points)
    return names


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
        names = [group[0].agent] if len(group) == 1 else _group_names(group)
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


def where(run: Run) -> str:
    """The run's directory, and its sweep point when it is one point of a sweep."""
    return f"{run.path} [{point_text(run.point)}]" if run.point else str(run.path)


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
    the metrics, the last training rows (for a training metric such as
    ``rollout/episode_return``). A run without evaluation rows falls back to the final
    training ``rollout/episode_return``, with a note.
    """
    per_seed = (run.summary or {}).get("final_eval_per_seed", {})
    if metric in per_seed:
        return np.array([_float(v) for v in per_seed[metric]]), "summary.json", None
    if any(metric in r for r in run.eval_rows):
        return _last_iteration_values(run.eval_rows, metric), "last evaluation", None
    if any(metric in r for r in run.train_rows):
        return _last_iteration_values(run.train_rows, metric), "last training iteration", None
    if not run.eval_rows and any(TRAIN_RETURN in r for r in run.train_rows):
        note = (
            f"{where(run)}: no evaluation rows with {metric!r}; using the final training "
            f"{TRAIN_RETURN} instead"
        )
        scores = _last_iteration_values(run.train_rows, TRAIN_RETURN)
        return scores, f"training {TRAIN_RETURN} (fallback)", note
    keys = sorted({k for r in run.eval_rows + run.train_rows for k in r} - ROW_KEYS)
    raise ReportError(
        f"{where(run)}: metric {metric!r} is not logged (neither in summary.json nor in "
        f"the logged metrics). Logged metrics: {', '.join(keys) or 'none'}. Choose one with "
        "--metric."
    )


def curve(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values [seeds, steps]) of ``key``; NaN where a seed has no value.

    ``steps`` is the rows' ``step`` (in the run's :attr:`Run.step_unit`).
    """
    rows = [r for r in rows if key in r]
    if not rows:
        return np.zeros(0), np.zeros((0, 0))
    steps = np.array(sorted({r["step"] for r in rows}), dtype=np.float64)
    seeds = sorted({int(r["seed"]) for r in rows})
    col = {s: j for j, s in enumerate(steps.tolist())}
    row = {s: i for i, s in enumerate(seeds)}
    values = np.full((len(seeds), len(steps)), np.nan)
    for r in rows:
        values[row[int(r["seed"])], col[float(r["step"])]] = _float(r[key])
    return steps, values


# ----------------------------------------------------------------------------- the numbers


def _final_entry(
    run: Run, reps: int, confidence: float, seed: int, notes: list[str]
) -> dict[str, Any] | None:
    """One row of the final-score table (None when the run has no finite final score)."""
    scores, source, note = final_scores(run, run.metric)
    if note:
        notes.append(note)
    finite = np.isfinite(scores)
    if not finite.all():
        notes.append(
            f"{where(run)}: seed(s) {np.flatnonzero(~finite).tolist()} have non-finite "
            f"{run.metric}; left out"
        )
    scores = scores[finite]
    if scores.size == 0:
        notes.append(f"{where(run)}: no finite final score; run left out of the statistics")
        return None
    ci = stats.mean_interval(scores, reps, confidence, seed)
    return {
        "agent": run.label,
        "agent_name": run.agent,
        "env": run.env,
        "metric": run.metric,
        "path": str(run.path),
        "sweep_point": run.point,
        "num_seeds": int(scores.size),
        "mean": ci.estimate,
        "iqm": stats.iqm(scores),
        "ci_low": ci.low,
        "ci_high": ci.high,
        "source": source,
        "scores": scores.tolist(),
    }


def _scores_by_agent(
    entries: list[dict[str, Any]], normalizers: Mapping[str, tuple[float, float]] | None
) -> dict[str, dict[str, np.ndarray]]:
    """label -> env -> final scores, normalised when ``normalizers`` is given."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for e in sorted(entries, key=lambda e: e["agent"]):
        x = np.array(e["scores"])
        if normalizers is not None:
            x = stats.normalize_scores(x, e["env"], normalizers)
        out.setdefault(e["agent"], {})[e["env"]] = x
    return out


def _aggregates(
    scores: dict[str, dict[str, np.ndarray]],
    reps: int,
    confidence: float,
    seed: int,
    threshold: float | None,
) -> dict[str, Any]:
    out = {}
    for label, per_env in scores.items():
        intervals = stats.aggregate_intervals(
            list(per_env.values()), reps, confidence, seed, threshold
        )
        out[label] = {
            "envs": sorted(per_env),
            "num_runs": int(sum(v.size for v in per_env.values())),
            **{k: v.to_dict() for k, v in intervals.items()},
        }
    return out


def _improvements(
    scores: dict[str, dict[str, np.ndarray]], reps: int, confidence: float, seed: int
) -> list[dict[str, Any]]:
    """P(X > Y) for every ordered pair of agents sharing an env, over the envs they share.

    Each unordered pair is bootstrapped once: P(Y > X) = 1 - P(X > Y) in every resample (ties
    count 1/2), so its interval is the mirror image.
    """
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    labels = list(scores)
    for i, x in enumerate(labels):
        for y in labels[i + 1 :]:
            common = sorted(set(scores[x]) & set(scores[y]))
            if not common:
                continue
            poi = stats.probability_of_improvement(
                [scores[x][e] for e in common],
                [scores[y][e] for e in common],
                reps,
                confidence,
                seed,
            )
            mirrored = {"estimate": 1 - poi.estimate, "low": 1 - poi.high, "high": 1 - poi.low}
            pairs[x, y] = {"x": x, "y": y, "envs": common, **poi.to_dict()}
            pairs[y, x] = {"x": y, "y": x, "envs": common, **mirrored}
    return [pairs[x, y] for x in labels for y in labels if (x, y) in pairs]


def _profiles(
    scores: dict[str, dict[str, np.ndarray]],
    normalised: bool,
    reps: int,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    """Performance profiles over a tau grid covering every score (and [0, 1] if normalised)."""
    pooled = np.concatenate([x for per_env in scores.values() for x in per_env.values()])
    lo, hi = float(pooled.min()), float(pooled.max())
    if normalised:
        lo, hi = min(lo, 0.0), max(hi, 1.0)
    pad = 0.02 * (hi - lo) if hi > lo else 1.0
    taus = np.linspace(lo - pad, hi + pad, 101)
    agents = {}
    for label, per_env in scores.items():
        profile, low, high = stats.performance_profile(
            list(per_env.values()), taus, reps, confidence, seed
        )
        agents[label] = {"fraction": profile.tolist(), "low": low.tolist(), "high": high.tolist()}
    return {"taus": taus.tolist(), "agents": agents}


def _scale(
    envs: list[str],
    table: Mapping[str, tuple[float, float]],
    threshold: float | None,
    notes: list[str],
) -> tuple[bool, float | None]:
    """Whether aggregates use normalised scores, and the optimality-gap threshold."""
    missing = [env for env in envs if not stats.has_normalizer(env, table)]
    if missing:
        notes.append(
            f"no score normaliser for {', '.join(missing)}; aggregates use raw scores "
            "(pass --normalizer=ENV=MIN,MAX for each env to normalise)"
        )
    normalised = not missing
    if threshold is None and normalised:
        threshold = 1.0
    if threshold is None:
        notes.append("optimality gap left out: it needs normalised scores or --threshold")
    return normalised, threshold


def _metric_names(runs: list[Run], metric: str | None, notes: list[str]) -> str:
    """Set every run's :attr:`Run.metric`; the metric (or metrics) the report is about."""
    for run in runs:
        run.metric = metric or run.score_key
        if not run.metric:
            raise ReportError(f"{where(run)}: no score_key in config.json; pass --metric")
    names = sorted({run.metric for run in runs})
    if len(names) > 1:
        notes.append(
            f"the runs are scored by different metrics ({', '.join(names)}), each by its own "
            "score_key; pass --metric to score all by one"
        )
    return " / ".join(names)


def build_report(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    metric: str | None = None,
    reps: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    normalizers: Mapping[str, tuple[float, float]] | None = None,
    threshold: float | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Read the runs under ``paths``, write the report files to ``out``, return the numbers.

    ``metric`` (default: each run's own ``score_key``) is the final score. ``normalizers``
    adds to (or overrides) :data:`rlzoo.analysis.stats.DEFAULT_NORMALIZERS`. Aggregates use
    normalised scores when every env has a normaliser, raw scores otherwise. ``threshold`` is
    the optimality-gap target (default 1.0 on normalised scores; on raw scores the gap is left
    out unless a threshold is given). Raises :class:`ReportError`.
    """
    if reps < 1:
        raise ReportError(f"--reps must be positive, got {reps}")
    if not 0 < confidence < 1:
        raise ReportError(f"--confidence must lie in (0, 1), got {confidence}")
    runs = read_runs(paths)
    if out is None:
        first = Path(paths[0])
        out = first / "report" if first.is_dir() else Path("report")
    out = Path(out)
    notes: list[str] = []
    metric_name = _metric_names(runs, metric, notes)
    entries = [e for run in runs if (e := _final_entry(run, reps, confidence, seed, notes))]
    if not entries:
        raise ReportError(f"none of the runs found has a finite final score; see: {notes}")
    table = {**stats.DEFAULT_NORMALIZERS, **(normalizers or {})}
    envs = sorted({e["env"] for e in entries})
    normalised, threshold = _scale(envs, table, threshold, notes)
    scaled = _scores_by_agent(entries, table if normalised else None)
    raw = _scores_by_agent(entries, None)
    improvements = _improvements(raw, reps, confidence, seed)
    if len(raw) >= 2 and not improvements:
        notes.append("no two agents share an env; no probability of improvement")
    result: dict[str, Any] = {
        "metric": metric_name,
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
                "metric": r.metric,
                "step_unit": r.step_unit,
                "sweep_point": r.point,
            }
            for r in runs
        ],
        "per_env": entries,
        "aggregates": _aggregates(scaled, reps, confidence, seed, threshold),
        "probability_of_improvement": improvements,
        "performance_profile": _profiles(scaled, normalised, reps, confidence, seed),
        "notes": notes,
    }
    _write(out, runs, result, plots)
    for note in notes:
        print(f"rlzoo.report: note: {note}")
    return result


def _write(out: Path, runs: list[Run], result: dict[str, Any], plots: bool) -> None:
    """Write the plots (unless ``plots`` is false), ``report.md`` and ``report.json``."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    if plots:
        from rlzoo.analysis import plots as plotting  # matplotlib only when plotting

        files += plotting.write_plots(out, runs, result)
    result["out"] = str(out)
    result["files"] = sorted([*files, "report.md", "report.json"])
    (out / "report.md").write_text(markdown(result))
    (out / "report.json").write_text(json.dumps(jsonable(result), indent=2) + "\n")


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# ----------------------------------------------------------------------------- markdown


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _interval_text(iv: Mapping[str, float], digits: int = 3) -> str:
    return f"{_num(iv['estimate'], digits)} [{_num(iv['low'], digits)}, {_num(iv['high'], digits)}]"


def _final_table(result: dict[str, Any], pct: str) -> list[str]:
    lines = [
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
    return [*lines, ""]


def _aggregate_table(result: dict[str, Any]) -> list[str]:
    if result["normalized"]:
        bounds = ", ".join(f"{k}: ({v[0]:g}, {v[1]:g})" for k, v in result["normalizers"].items())
        scale = f"normalised scores, (score - min) / (max - min) with (min, max) = {bounds}"
    else:
        scale = "raw scores"
    aggregates = result["aggregates"]
    names = [n for n in stats.AGGREGATE_NAMES if any(n in a for a in aggregates.values())]
    lines = [
        "## Aggregates",
        "",
        f"Over the final scores of all runs and envs of each agent, {scale}. Mean and median "
        "are of the per-env means, IQM of all runs; stratified bootstrap over runs within each "
        "env (rliable). Optimality gap: mean shortfall below "
        f"{_num(result['optimality_gap_threshold'], 3)} (lower is better).",
        "",
        "| agent | envs | runs | " + " | ".join(stats.AGGREGATE_NAMES[n] for n in names) + " |",
        "|---|---:|---:|" + "---|" * len(names),
    ]
    for label, agg in aggregates.items():
        cells = " | ".join(_interval_text(agg[n]) for n in names)
        lines.append(f"| {label} | {len(agg['envs'])} | {agg['num_runs']} | {cells} |")
    return [*lines, ""]


def _improvement_table(result: dict[str, Any], pct: str) -> list[str]:
    if not result["probability_of_improvement"]:
        return []
    lines = [
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
    return [*lines, ""]


def markdown(result: dict[str, Any]) -> str:
    """``report.md``: the tables of ``result`` (as returned by :func:`build_report`)."""
    pct = f"{100 * result['confidence']:g}%"
    lines = [
        f"# rlzoo report: {result['metric']}",
        "",
        f"Final {result['metric']} per seed; intervals are {pct} bootstrap percentile "
        f"intervals ({result['reps']} resamples, seed {result['seed']}).",
        "",
        *_final_table(result, pct),
        *_aggregate_table(result),
        *_improvement_table(result, pct),
    ]
    if result["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in result["notes"]], ""]
    lines += [
        "## Runs",
        "",
        *[f"- {r['agent']}, {r['env']}: `{r['path']}`" for r in result["runs"]],
    ]
    return "\n".join(lines) + "\n"
