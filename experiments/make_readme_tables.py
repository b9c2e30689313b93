"""Copy the tables written by the experiment scripts into README.md.

Each script records ``experiments/results/<name>.json`` with a markdown ``table``. The
README holds ``<!-- results:<name> -->`` ... ``<!-- /results:<name> -->`` markers; this
script replaces what lies between them with the table plus the command, machine and
date it came from, so no number in the README is typed by hand.

    python experiments/make_readme_tables.py
"""

from __future__ import annotations

import json
import re

from common import RESULTS, ROOT


def block(name: str) -> str:
    data = json.loads((RESULTS / f"{name}.json").read_text())
    m = data["machine"]
    source = (
        f"`{data['command']}` on {m['cores']} x {m['cpu']} ({m['memory_gib']} GiB), "
        f"{data['date'][:10]}, jax {data['versions']['jax']}; "
        f"raw numbers: `experiments/results/{name}.json`"
    )
    if "rerun_command" in data:  # the script's flags changed since; the same run today
        source += f"; the same run with today's script: `{data['rerun_command']}`"
    return f"{data['table']}\n\nProduced by {source}."


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(r"(<!-- results:([\w.-]+) -->)\n(?:.*?\n)?(<!-- /results:\2 -->)", re.S)

    def replace(match: re.Match) -> str:
        name = match.group(2)
        if not (RESULTS / f"{name}.json").exists():
            return match.group(0)
        return f"{match.group(1)}\n{block(name)}\n{match.group(3)}"

    readme.write_text(pattern.sub(replace, text))
    print("README tables updated:", ", ".join(m[1] for m in pattern.findall(text)))


if __name__ == "__main__":
    main()
