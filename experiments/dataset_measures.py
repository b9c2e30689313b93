"""Dataset measures of a suite's levels: size, behaviour return, TQ and SACo.

For every Minari dataset under ``--minari_path`` (for example the ``minari`` folder that
``experiments/offline_suite.py --out=DIR`` writes): transitions, episodes, the mean
episode return and its normalised score (the dataset's own random and expert reference
returns), TQ (trajectory quality: that mean on the scale random 0, expert 1) and SACo
(unique state-action pairs over those of the dataset with the most, each coordinate
binned at ``--resolution`` in the data's own units; ``rlzoo.data.metrics``).

    python experiments/offline_suite.py --env=brax/hopper ... --out=/tmp/off/hopper
    python experiments/dataset_measures.py --minari_path=/tmp/off/hopper/minari \
        --record_name=dataset_measures_hopper
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from common import record

LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert")


def level_order(dataset_id: str) -> tuple[int, str]:
    """``rlzoo/<env>/<level>-v0``: the suite's levels in their usual order, others after."""
    level = dataset_id.split("/")[-1].rsplit("-v", 1)[0]
    return (LEVELS.index(level) if level in LEVELS else len(LEVELS), dataset_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minari_path", required=True)
    parser.add_argument("--resolution", type=float, default=0.1)
    parser.add_argument("--record_name", default="dataset_measures")
    args = parser.parse_args()
    root = Path(args.minari_path)
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    from rlzoo.data import load_dataset
    from rlzoo.data.metrics import episode_returns, trajectory_quality, unique_state_actions
    from rlzoo.data.minari_store import minari_info

    ids = sorted(str(p.parent.relative_to(root)) for p in root.glob("**/data"))
    if not ids:
        raise SystemExit(f"no Minari datasets under {root}")
    ids.sort(key=level_order)
    rows = []
    for dataset_id in ids:
        data = load_dataset(f"minari:{dataset_id}")
        info = minari_info(dataset_id)
        low, high = info["random_return"], info["expert_return"]
        returns = episode_returns(data)
        rows.append(
            {
                "dataset_id": dataset_id,
                "env_id": info["env_id"],
                "transitions": int(np.asarray(data["rewards"]).shape[0]),
                "episodes": int(returns.size),
                "mean_return": float(returns.mean()),
                "score": 100 * (float(returns.mean()) - low) / (high - low),
                "tq": trajectory_quality(data, low, high),
                "unique_pairs": unique_state_actions(data, args.resolution),
                "random_return": low,
                "expert_return": high,
            }
        )
    most = max(r["unique_pairs"] for r in rows)
    lines = [
        "| dataset | transitions | episodes | mean episode return | normalised score | TQ | SACo |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        r["saco"] = r["unique_pairs"] / most
        lines.append(
            f"| `{r['dataset_id']}` | {r['transitions']:,} | {r['episodes']} | "
            f"{r['mean_return']:.1f} | {r['score']:.1f} | {r['tq']:.2f} | {r['saco']:.2f} |"
        )
    table = "\n".join(lines) + (
        f"\n\nReference returns: random {rows[0]['random_return']:.1f}, expert "
        f"{rows[0]['expert_return']:.1f}. SACo: unique (s, a) cells of side "
        f"{args.resolution:g} over the most any of these datasets has ({most:,})."
    )
    print(table)
    record(args.record_name, {"args": vars(args), "rows": rows, "table": table})


if __name__ == "__main__":
    main()
