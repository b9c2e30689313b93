#!/usr/bin/env bash
# Create a separate virtual environment for the rejax peer benchmark.
#
# rejax 0.1.3 unpacks five values from `env.step`, which is the gymnax 0.0.x API, so it
# cannot share the main environment (gymnax 1.x returns six). This venv pins
# gymnax==0.0.9 and the same jax/jaxlib/flax as the main environment.
#
# Usage: experiments/peers/setup_rejax_venv.sh [VENV_DIR]
#   VENV_DIR defaults to ${REJAX_VENV:-.venv-rejax}, relative to the repository root.
# Safe to run repeatedly: an existing venv whose packages already match is left alone.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV_DIR="${1:-${REJAX_VENV:-.venv-rejax}}"
case "$VENV_DIR" in
  /*) ;;
  *) VENV_DIR="$REPO_ROOT/$VENV_DIR" ;;
esac
PYTHON="${PYTHON:-python3.11}"

# Pinned set. jax 0.9.2 is the newest jax that works with rejax 0.1.3 + gymnax 0.0.9
# and matches the main environment.
PINS=(
  "rejax==0.1.3"
  "gymnax==0.0.9"
  "jax==0.9.2"
  "jaxlib==0.9.2"
  "flax==0.12.6"
)

if [ ! -x "$VENV_DIR/bin/python" ]; then
  echo "creating venv at $VENV_DIR"
  "$PYTHON" -m venv "$VENV_DIR"
fi

check() {
  "$VENV_DIR/bin/python" - "$@" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
ok = True
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        ok = False
sys.exit(0 if ok else 1)
PY
}

if check "${PINS[@]}"; then
  echo "rejax venv at $VENV_DIR already up to date"
else
  "$VENV_DIR/bin/python" -m pip install --quiet --upgrade pip
  "$VENV_DIR/bin/python" -m pip install --quiet "${PINS[@]}"
fi

"$VENV_DIR/bin/python" - <<'PY'
from importlib.metadata import version
for n in ("rejax", "gymnax", "jax", "jaxlib", "flax", "optax", "distrax"):
    print(f"{n}=={version(n)}")
PY
