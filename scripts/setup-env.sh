#!/usr/bin/env bash
# Creates .venv and installs the project with its dev tools. Sourced by demo.sh and test.sh.
# FASHION_TORCH overrides the torch requirement (e.g. a CUDA build on a GPU machine).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FASHION_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
stamp="$VENV/.fashion-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/requirements-torch.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  python -m pip install -q --upgrade pip
  # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
  python -m pip install -q ${FASHION_TORCH:-$(cat "$ROOT/scripts/requirements-torch.txt")}
  python -m pip install -q -e "$ROOT[dev]"
  echo "$want" > "$stamp"
fi
