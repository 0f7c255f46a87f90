#!/usr/bin/env bash
# The test command: installs everything from the project's files into .venv, makes sure Redis is up, runs
# ruff, the stale-stub check and pytest. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. "$ROOT/scripts/setup-env.sh"
bash "$ROOT/scripts/ensure-redis.sh"
bash "$ROOT/scripts/ensure-chromium.sh"
ruff check .
python -m pytest "$@"
