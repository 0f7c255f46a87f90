"""benchmarks/ann_scale.py at a toy size: every method runs, and its recall is measured against exact search.

The figures themselves are the benchmark's job; this guards the harness (filters translated for each engine,
ground truth, ratios) so a README table never comes from a script that quietly measures the wrong thing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def ann_scale():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import ann_scale

        yield ann_scale
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.slow
def test_every_method_runs_with_every_filter(ann_scale, tmp_path) -> None:
    args = argparse.Namespace(size="6000", queries=20, budget=0.02, methods=",".join(ann_scale.ALL_METHODS), ef=None,
                              qdrant_max=1_500)
    rows = ann_scale.run(args)
    by_method: dict[str, dict[str, float]] = {}
    for method, _items, fname, _sel, _build, _mb, q1, q8, _ratio, recall in rows:
        by_method.setdefault(method.split(" ")[0], {})[fname] = float(recall)
        assert q1 > 0 and q8 > 0
    assert set(by_method) == set(ann_scale.ALL_METHODS)
    filters = set(by_method["brute"])
    assert len(filters) == 5 and "none" in filters
    for method, recalls in by_method.items():
        assert set(recalls) == filters, method  # every filter measured for every method
        if method in ("brute", "faiss-flat", "qdrant-local"):
            assert all(r == 1.0 for r in recalls.values()), (method, recalls)  # exact methods are exact
        else:
            assert min(recalls.values()) >= 0.8, (method, recalls)
    # The selective filter has few matches: every engine must return exactly the true top-k, never short.
    rare = next(f for f in filters if f.startswith("Girls"))
    assert all(recalls[rare] == 1.0 for recalls in by_method.values())


def test_qdrant_filter_translation_matches_the_catalog_filter(ann_scale) -> None:
    from fashion_core.index import SearchFilter

    assert ann_scale.edge_filter(None) is None
    flt = ann_scale.edge_filter(SearchFilter.build(gender="Men,Boys", articleType="Heels", year_min=2010))
    text = repr(flt)
    assert "gender" in text and "Boys" in text and "Heels" in text and "2010" in text
