#!/usr/bin/env bash
# The test command: installs everything from the project's files into .venv, makes sure Redis is up, runs
# ruff, trains the models the tests share with the demo (once per machine: cached by recipe fingerprint, so
# no training runs inside a test's timeout) and pytest. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. "$ROOT/scripts/setup-env.sh"
bash "$ROOT/scripts/ensure-redis.sh"
bash "$ROOT/scripts/ensure-chromium.sh"
ruff check .
fashion-search prepare-models
python -m pytest "$@"
