#!/usr/bin/env bash
# The test command: installs everything from the project's files into .venv, makes sure Redis is up, runs
# ruff and mypy, trains the models the tests share with the demo (once per machine: cached by recipe fingerprint, so
# no training runs inside a test's timeout) and pytest. Extra arguments go to pytest.
#
# Without arguments the real recipe (trained only where the real catalog is found) trains beside the tests that
# do not need it: those mostly wait on servers, workers and subprocesses, so training soaks up the idle cores
# (at a lower priority) instead of adding its minutes to the run; the real-data tests run once it is done.
set -euo pipefail
# Waiting OpenMP threads sleep instead of spinning: the real recipe's two torch threads beside the tests spun
# away most of their CPU (one training step of the real recipe beside a busy core: 0.18 steps/s spinning, 1.90
# sleeping; alone 2.89 and 2.70). The thread count and so the numbers stay the same.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. "$ROOT/scripts/setup-env.sh"
typecheck() { mypy; }  # the packages of [tool.mypy] in pyproject.toml (generated proto stubs excluded)
if [ $# -gt 0 ]; then
  bash "$ROOT/scripts/ensure-redis.sh"
  bash "$ROOT/scripts/ensure-chromium.sh"
  ruff check .
  typecheck
  fashion-search prepare-models
  exec python -m pytest "$@"
fi
# The real recipe starts as soon as the environment is installed (it is the run's critical path: the servers'
# and the browser's set-up, ruff and mypy run beside it), at a lower priority than the synthetic recipe and the
# tests, which need their cores at once, and on one thread: the run is CPU-bound on 2 cores, and one thread trains
# at ~85% of two's speed for half their CPU (2.4 against 2.7-3.1 steps/s alone), leaving a core to the suite
# (from a fresh clone on 2026-12-02 with two threads: 856 and 883 s in all, the recipe 761 s of it).
log="$(mktemp -t fashion-real-recipe.XXXXXX.log)"
echo "training the real recipe beside the tests on one thread (log: $log)"
FASHION_TRAIN_THREADS="${FASHION_TRAIN_THREADS:-1}" nice -n 5 fashion-search prepare-models --recipes real >"$log" 2>&1 &
trainer=$!
trap 'kill "$trainer" 2>/dev/null || true' EXIT  # a failure before the wait must not leave it training
bash "$ROOT/scripts/ensure-redis.sh"
bash "$ROOT/scripts/ensure-chromium.sh"
ruff check .
typecheck
fashion-search prepare-models --recipes synthetic
status=0
python -m pytest --ignore=tests/real || status=$?
if ! wait "$trainer"; then
  cat "$log"
  echo "the real recipe failed to train" >&2
  exit 1
fi
tail -n 8 "$log"
python -m pytest tests/real || status=$?
exit "$status"
