"""Search over an index with an encoder: text->image, image->image, more-like-this, zero-shot classify.

The query service, the CLI and the web gateway all go through this one class; the encoder may be in-process
or the gRPC encoder client, the index any backend.

Text queries have three modes: "dense" (the query's embedding against the image embeddings), "lexical" (BM25
over each product's name and attribute values: the index's ``search_lexical``) and "hybrid" (both rankings, each
the true top-``depth`` among the items the filter keeps, fused by ``fashion_core.fusion``). Image queries and
more-like-this stay dense.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

from fashion_core.errors import InvalidInputError, ModelMismatchError, NotFoundError
from fashion_core.fusion import RRF_C, fuse
from fashion_core.model.base import Encoder, ImageInput, check_texts
from fashion_core.settings import FusionMethod, SearchMode, Settings
from fashion_core.stores.base import SearchHit, VectorIndex, stored_vector
from fashion_core.stores.filters import SearchFilter
from fashion_core.zeroshot import DEFAULT_TEMPLATES, LabelScore, classify

log = logging.getLogger(__name__)
MAX_K = 1000
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)


@dataclass(frozen=True)
class TextSearchConfig:
    """How text queries are answered: the mode when a caller names none, and how hybrid fuses (each ranking's
    top ``depth`` items, fused by ``method`` with these weights, each lexical hit weighed by its coverage of the
    query to ``coverage_power``: ``fashion_core.fusion.fuse``)."""

    default_mode: SearchMode = Settings.model_fields["search_mode"].default
    method: FusionMethod = Settings.model_fields["fusion_method"].default
    depth: int = Settings.model_fields["fusion_depth"].default
    dense_weight: float = Settings.model_fields["fusion_dense_weight"].default
    lexical_weight: float = Settings.model_fields["fusion_lexical_weight"].default
    coverage_power: float = Settings.model_fields["fusion_coverage_power"].default

    @classmethod
    def from_settings(cls, settings: Settings) -> TextSearchConfig:
        return cls(default_mode=settings.search_mode, method=settings.fusion_method, depth=settings.fusion_depth,
                   dense_weight=settings.fusion_dense_weight, lexical_weight=settings.fusion_lexical_weight,
                   coverage_power=settings.fusion_coverage_power)


def check_mode(mode: str | None) -> SearchMode | None:
    """``mode`` if it is one of SEARCH_MODES (None or "" = the configured default: None). Raises InvalidInputError."""
    if not mode:
        return None
    for known in SEARCH_MODES:
        if known == mode:
            return known
    raise InvalidInputError(f"unknown search mode {mode!r}: {', '.join(SEARCH_MODES)}")


def check_k(k: int, limit: int = MAX_K, name: str = "k") -> int:
    """``k`` if it is a result count in 1..``limit``; raises InvalidInputError naming it as ``name``. The one rule
    for k: the engine checks every search with it, and the edges that must answer before a search runs (the
    gateway's smaller page limit, the CLI before it loads a model) call it too."""
    if k <= 0:
        raise InvalidInputError(f"{name} must be positive, got {k}")
    if k > limit:
        raise InvalidInputError(f"{name} must be between 1 and {limit}, got {k}")
    return k


class SearchEngine:
    def __init__(self, encoder: Encoder, index: VectorIndex, allow_model_mismatch: bool = False,
                 text: TextSearchConfig | None = None) -> None:
        self.encoder = encoder
        self.index = index
        self.text = text or TextSearchConfig()
        meta = index.meta
        if meta is not None and meta.built_by_another_model(encoder.info.version):
            message = (f"index {meta.name!r} was built by model {meta.model_id} ({meta.model_version}) but queries "
                       f"are encoded by {encoder.info.model_id} ({encoder.info.version}); re-index first")
            if not allow_model_mismatch:
                raise ModelMismatchError(message)
            log.warning(message)
        self._facets: dict[str, list[str]] | None = None

    def facets(self, refresh: bool = False) -> dict[str, list[str]]:
        if self._facets is None or refresh:
            self._facets = self.index.facets()
        return self._facets

    def resolve_filter(self, flt: SearchFilter | None) -> SearchFilter | None:
        """``flt`` as the searches apply it: each value spelt as the index holds it ("black" is "Black"), each
        once. Raises InvalidInputError for a value the index does not hold."""
        if flt is None or flt.is_empty:
            return flt
        try:
            return flt.canonical(self.facets())
        except InvalidInputError:
            return flt.canonical(self.facets(refresh=True))  # the index may have grown since

    def search_text(self, query: str, k: int = 10, flt: SearchFilter | None = None,
                    mode: str | None = None) -> list[SearchHit]:
        """Top ``k`` products for a text query among those ``flt`` keeps, by ``mode`` (dense, lexical or hybrid;
        None = the configured default). Each hit's ``matched`` names the ranking(s) that found it. A lexical
        search returns only products sharing a word with the query (maybe fewer than k). Raises
        InvalidInputError for a bad query, k, mode, filter value, or a lexical mode on an index without text."""
        check_k(k)
        (text,) = check_texts([query])
        asked = check_mode(mode)
        mode = asked or self.text.default_mode
        if asked is None and mode != "dense" and not self.has_lexical:
            mode = "dense"  # the default on an index without text; asking for lexical there is an error
        flt = self.resolve_filter(flt)
        if mode == "dense":
            return self._dense(text, k, flt)
        if mode == "lexical":
            return self._lexical(text, k, flt)
        depth = max(k, self.text.depth)
        hybrid = getattr(self.index, "search_hybrid", None)
        in_engine = getattr(self.index, "hybrid_in_engine", None)
        # The backend fuses itself (Qdrant's query API) where its fusion is this one: RRF, unweighted (Qdrant weighs
        # RRF by dividing ranks, fashion_core.fusion by multiplying scores), coverage ignored, and where its dense
        # part is its search's (a gender filter on Qdrant's companion collections is not).
        t = self.text
        if hybrid is not None and t.method == "rrf" and t.dense_weight == t.lexical_weight == 1 \
                and not t.coverage_power and (in_engine is None or in_engine(flt)):
            return hybrid(self.encoder.encode_texts([text])[0], text, k, flt, depth, RRF_C,
                          (t.dense_weight, t.lexical_weight))
        return fuse(self._dense(text, depth, flt), self._lexical(text, depth, flt), k, self.text.method,
                    self.text.dense_weight, self.text.lexical_weight, coverage_power=self.text.coverage_power)

    @property
    def has_lexical(self) -> bool:
        """Whether the index answers lexical (BM25) searches."""
        return hasattr(self.index, "search_lexical")

    def _dense(self, text: str, k: int, flt: SearchFilter | None) -> list[SearchHit]:
        hits = self.index.search(self.encoder.encode_texts([text])[0], k, flt)
        return [SearchHit(h.id, h.score, h.payload, "dense") for h in hits]

    def _lexical(self, text: str, k: int, flt: SearchFilter | None) -> list[SearchHit]:
        search = getattr(self.index, "search_lexical", None)
        if search is None:
            raise InvalidInputError(f"index {self.index.name!r} ({self.index.backend}) has no lexical index: "
                                    "search it in dense mode")
        return [SearchHit(h.id, h.score, h.payload, "lexical", h.coverage) for h in search(text, k, flt)]

    def search_image(self, image: ImageInput, k: int = 10, flt: SearchFilter | None = None) -> list[SearchHit]:
        check_k(k)
        flt = self.resolve_filter(flt)
        return self.index.search(self.encoder.encode_images([image])[0], k, flt)

    def more_like_this(self, product_id: int, k: int = 10, flt: SearchFilter | None = None) -> list[SearchHit]:
        """Nearest products to an indexed product's image, the product itself excluded."""
        check_k(k)
        found = self.index.retrieve([product_id], with_vectors=True)
        if product_id not in found:
            raise NotFoundError(f"product {product_id} is not in the index")
        hits = self.index.search(stored_vector(found[product_id]), k + 1, self.resolve_filter(flt))
        return [h for h in hits if h.id != product_id][:k]

    def get_product(self, product_id: int) -> dict[str, Any]:
        found = self.index.retrieve([product_id])
        if product_id not in found:
            raise NotFoundError(f"product {product_id} is not in the index")
        return found[product_id][0]

    def classify(self, image: ImageInput, labels: Sequence[str],
                 templates: Sequence[str] = DEFAULT_TEMPLATES) -> list[LabelScore]:
        return classify(self.encoder, image, labels, templates)
