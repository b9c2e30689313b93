"""The report's plots, as PNG files.

``aggregates.png``, ``performance_profile.png`` and ``probability_of_improvement.png`` are
drawn by ``rliable.plot_utils`` from the numbers :func:`rlzoo.analysis.report.build_report`
computed; ``learning_curves.png`` (one column per env and step unit: evaluation score above,
training ``rollout/episode_return`` below, mean over seeds with a bootstrap band) is drawn
here. matplotlib is imported when plotting, never at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rlzoo.analysis import stats
from rlzoo.analysis.report import TRAIN_RETURN, Run, curve

CURVE_POINTS = 200  # training curves are thinned to at most this many points per run
DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _colors(plt, labels: list[str]) -> dict[str, Any]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}


def _save(plt, fig, out: Path, name: str) -> str:
    fig.savefig(out / name, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return name


def _scale_text(result: dict[str, Any]) -> str:
    return "normalised score" if result["normalized"] else f"raw {result['metric']}"


def write_plots(out: Path, runs: list[Run], result: dict[str, Any]) -> list[str]:
    """Write every plot of ``result`` (from ``build_report``) to ``out``; their file names."""
    plt = _pyplot()
    colors = _colors(plt, sorted({r.label for r in runs}))
    files = [
        learning_curves(plt, out, runs, result, colors),
        aggregates(plt, out, result, colors),
        performance_profiles(plt, out, result, colors),
    ]
    if result["probability_of_improvement"]:
        files.append(probability_of_improvement(plt, out, result, colors))
    return files


# ----------------------------------------------------------------------------- learning curves


def _thin(steps: np.ndarray, values: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    if len(steps) <= points:
        return steps, values
    keep = np.unique(np.linspace(0, len(steps) - 1, points).round().astype(int))
    return steps[keep], values[:, keep]


def _band(ax, steps, values, color, label, result) -> None:
    """Mean over seeds of ``values`` [seeds, steps] with its bootstrap band."""
    if values.size == 0:
        return
    mean, low, high = stats.curve_band(
        values, reps=result["reps"], confidence=result["confidence"], seed=result["seed"]
    )
    ax.plot(steps, mean, color=color, label=label, marker=".")
    ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)


def learning_curves(plt, out: Path, runs: list[Run], result: dict[str, Any], colors) -> str:
    """Per (env, step unit): evaluation score (top) and training return (bottom) vs steps."""
    columns = sorted({(r.env, r.step_unit) for r in runs})
    fig, axes = plt.subplots(2, len(columns), figsize=(5.5 * len(columns), 8), squeeze=False)
    pct = f"{100 * result['confidence']:g}%"
    for j, (env, unit) in enumerate(columns):
        top, bottom = axes[0, j], axes[1, j]
        mine = sorted(
            (r for r in runs if (r.env, r.step_unit) == (env, unit)), key=lambda r: r.label
        )
        for run in mine:
            logged_in_eval = any(run.metric in r for r in run.eval_rows)
            rows = run.eval_rows if logged_in_eval else run.train_rows
            _band(top, *curve(rows, run.metric), colors[run.label], run.label, result)
            training = _thin(*curve(run.train_rows, TRAIN_RETURN), CURVE_POINTS)
            _band(bottom, *training, colors[run.label], run.label, result)
        metrics = ", ".join(sorted({r.metric for r in mine}))
        top.set_title(f"{env}: evaluation {metrics}")
        top.set_ylabel(f"{metrics} (mean, {pct} CI)")
        bottom.set_title(f"{env}: training {TRAIN_RETURN}")
        bottom.set_ylabel(f"{TRAIN_RETURN} (mean, {pct} CI)")
        for ax in (top, bottom):
            ax.set_xlabel(unit.replace("_", " "))
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(plt, fig, out, "learning_curves.png")


# ----------------------------------------------------------------------------- rliable's plots


def aggregates(plt, out: Path, result: dict[str, Any], colors) -> str:
    """Each aggregate with its interval, one panel per aggregate (rliable)."""
    from rliable import plot_utils

    labels = list(result["aggregates"])
    first = result["aggregates"][labels[0]]
    names = [n for n in stats.AGGREGATE_NAMES if n in first]
    points, intervals = {}, {}
    for label, agg in result["aggregates"].items():
        points[label] = np.array([agg[n]["estimate"] for n in names])
        intervals[label] = np.array(
            [[agg[n]["low"] for n in names], [agg[n]["high"] for n in names]]
        )
    fig, _ = plot_utils.plot_interval_estimates(
        points,
        intervals,
        metric_names=[stats.AGGREGATE_NAMES[n] for n in names],
        algorithms=labels[::-1],  # rliable draws the first at the bottom; list top-down
        colors=colors,
        row_height=0.5,
        xlabel_y_coordinate=-0.5 / len(labels) - 0.1,  # below the tick labels, however many rows
        xlabel=f"{_scale_text(result)} ({100 * result['confidence']:g}% CI)",
    )
    return _save(plt, fig, out, "aggregates.png")


def performance_profiles(plt, out: Path, result: dict[str, Any], colors) -> str:
    """Fraction of runs above each threshold, with bootstrap bands (rliable)."""
    from rliable import plot_utils

    agents = result["performance_profile"]["agents"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(
        {label: np.array(p["fraction"]) for label, p in agents.items()},
        np.array(result["performance_profile"]["taus"]),
        performance_profile_cis={
            label: (np.array(p["low"]), np.array(p["high"])) for label, p in agents.items()
        },
        ax=ax,
        colors=colors,
        xlabel=f"{_scale_text(result)} threshold tau",
        ylabel="fraction of runs with score > tau",
        labelsize="large",
        ticklabelsize="medium",
        legend=True,
        legendsize="small",
    )
    return _save(plt, fig, out, "performance_profile.png")


def probability_of_improvement(plt, out: Path, result: dict[str, Any], colors) -> str:
    """P(X > Y) with its interval for each ordered pair of agents (rliable)."""
    from rliable import plot_utils

    pairs = result["probability_of_improvement"][::-1]  # first pair on top (rliable: bottom)
    sep = "\t"  # between X and Y in rliable's pair keys; labels may hold commas
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(pairs) + 1.4))
    plot_utils.plot_probability_of_improvement(
        {f"{p['x']}{sep}{p['y']}": p["estimate"] for p in pairs},
        {f"{p['x']}{sep}{p['y']}": (p["low"], p["high"]) for p in pairs},
        pair_separator=sep,
        ax=ax,
        colors=[colors[p["x"]] for p in pairs],
        xlabel=f"P(X > Y) ({100 * result['confidence']:g}% CI)",
        left_ylabel="X",
        right_ylabel="Y",
        ticklabelsize="medium",
        labelsize="large",
    )
    ax.axvline(0.5, color="gray", linestyle="--", linewidth=1)
    ax.set_xlim(-0.03, 1.03)  # an interval at exactly 0 or 1 stays visible
    return _save(plt, fig, out, "probability_of_improvement.png")
