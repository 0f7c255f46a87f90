#!/usr/bin/env bash
# The main job on the embedded default: install into .venv, then `fashion-search demo` (synthetic catalog,
# model, local index, example text/image searches with filters, grid PNGs under out/demo/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. "$ROOT/scripts/setup-env.sh"
fashion-search demo "$@"
