#!/usr/bin/env bash
# The main job on the embedded default: install into .venv, then `fashion-search demo`: the real catalog when
# one is found (--catalog, FASHION_CATALOG or ../shared/datasets/fashion-product-images-small), its model
# (trained once, cached), a local index, text and image searches with filters, grid PNGs under out/demo/;
# otherwise the synthetic catalog and model, saying how to get the real one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. "$ROOT/scripts/setup-env.sh"
fashion-search demo "$@"
