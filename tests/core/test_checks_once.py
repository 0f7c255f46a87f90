"""Rules every edge shares, each in one function: k, the model version an index was built by."""

from __future__ import annotations

import pytest

from fashion_core.errors import InvalidInputError, ModelMismatchError
from fashion_core.search import MAX_K, SearchEngine, check_k
from fashion_core.stores.base import IndexMeta


def test_k_is_one_rule_with_the_callers_name_and_limit() -> None:
    assert check_k(1) == 1 and check_k(MAX_K) == MAX_K and check_k(200, 200) == 200
    for k, limit, name, message in ((0, MAX_K, "k", "k must be positive, got 0"),
                                    (-3, MAX_K, "-k", "-k must be positive, got -3"),
                                    (MAX_K + 1, MAX_K, "k", f"k must be between 1 and {MAX_K}, got {MAX_K + 1}"),
                                    (201, 200, "k", "k must be between 1 and 200, got 201")):
        with pytest.raises(InvalidInputError) as raised:
            check_k(k, limit, name)
        assert str(raised.value) == message


def test_an_index_is_built_by_another_model_only_when_it_records_another_version() -> None:
    meta = IndexMeta(name="products", backend="faiss", dim=8, model_id="m", model_version="v1")
    assert not meta.built_by_another_model("v1") and meta.built_by_another_model("v2")
    assert not IndexMeta(name="old", backend="faiss", dim=8).built_by_another_model("v2")  # none recorded


class _Encoder:
    class info:  # noqa: N801 - stands in for a ModelInfo
        model_id, version, dim = "other-model", "v2", 8


class _Index:
    name, backend = "products", "faiss"
    meta = IndexMeta(name="products", backend="faiss", dim=8, model_id="m", model_version="v1")


def test_the_engine_refuses_an_index_of_another_model() -> None:
    with pytest.raises(ModelMismatchError, match="built by model m \\(v1\\) but queries are encoded by other-model"):
        SearchEngine(_Encoder(), _Index())  # type: ignore[arg-type]
    SearchEngine(_Encoder(), _Index(), allow_model_mismatch=True)  # type: ignore[arg-type]
