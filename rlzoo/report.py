"""Compare runs from the command line: tables, bootstrap intervals and plots.

    python -m rlzoo.report runs/cartpole-ppo runs/cartpole-ppo-lr3e-4 --out=report/

Every path is searched recursively for run directories. The output folder gets
``learning_curves.png``, ``aggregates.png``, ``performance_profile.png``,
``probability_of_improvement.png`` (with two agents or more), ``report.md`` and
``report.json``. The work is done by :mod:`rlzoo.analysis.report` (reading runs, tables),
:mod:`rlzoo.analysis.plots` and :mod:`rlzoo.analysis.stats` (statistics, by rliable).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from rlzoo.analysis.report import ReportError, build_report


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
        "--metric",
        default=None,
        help="final score, an eval or train key (default: each run's score_key, "
        "e.g. eval/deterministic_return)",
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
