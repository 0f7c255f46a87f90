"""Search over an index with an encoder: text->image, image->image, more-like-this, zero-shot classify.

The query service, the CLI and the web gateway all go through this one class; the encoder may be in-process
or the gRPC encoder client, the index any backend.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fashion_core.errors import FashionSearchError, InvalidInputError, NotFoundError
from fashion_core.index.base import SearchHit, VectorIndex
from fashion_core.index.filters import SearchFilter
from fashion_core.model.encoder import Encoder, ImageInput, check_texts
from fashion_core.zeroshot import DEFAULT_TEMPLATES, LabelScore, classify

log = logging.getLogger(__name__)
MAX_K = 1000


class ModelMismatchError(FashionSearchError):
    """The index was built by another model than the one encoding queries."""


class SearchEngine:
    def __init__(self, encoder: Encoder, index: VectorIndex, allow_model_mismatch: bool = False) -> None:
        self.encoder = encoder
        self.index = index
        meta = index.meta
        if meta is not None and meta.model_version and meta.model_version != encoder.info.version:
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

    def _filter(self, flt: SearchFilter | None) -> SearchFilter | None:
        if flt is None or flt.is_empty:
            return flt
        try:
            return flt.canonical(self.facets())
        except InvalidInputError:
            return flt.canonical(self.facets(refresh=True))  # the index may have grown since

    @staticmethod
    def _check_k(k: int) -> None:
        if not 0 < k <= MAX_K:
            raise InvalidInputError(f"k must be between 1 and {MAX_K}, got {k}")

    def search_text(self, query: str, k: int = 10, flt: SearchFilter | None = None) -> list[SearchHit]:
        self._check_k(k)
        (text,) = check_texts([query])
        flt = self._filter(flt)
        return self.index.search(self.encoder.encode_texts([text])[0], k, flt)

    def search_image(self, image: ImageInput, k: int = 10, flt: SearchFilter | None = None) -> list[SearchHit]:
        self._check_k(k)
        flt = self._filter(flt)
        return self.index.search(self.encoder.encode_images([image])[0], k, flt)

    def more_like_this(self, product_id: int, k: int = 10, flt: SearchFilter | None = None) -> list[SearchHit]:
        """Nearest products to an indexed product's image, the product itself excluded."""
        self._check_k(k)
        found = self.index.retrieve([product_id], with_vectors=True)
        if product_id not in found:
            raise NotFoundError(f"product {product_id} is not in the index")
        _, vector = found[product_id]
        hits = self.index.search(vector, k + 1, self._filter(flt))
        return [h for h in hits if h.id != product_id][:k]

    def get_product(self, product_id: int) -> dict[str, Any]:
        found = self.index.retrieve([product_id])
        if product_id not in found:
            raise NotFoundError(f"product {product_id} is not in the index")
        return found[product_id][0]

    def classify(self, image: ImageInput, labels: Sequence[str],
                 templates: Sequence[str] = DEFAULT_TEMPLATES) -> list[LabelScore]:
        return classify(self.encoder, image, labels, templates)
