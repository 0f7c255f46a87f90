"""Lexical (BM25) and hybrid search for the Qdrant backend, computed by Qdrant itself.

Each point's payload carries ``LEXICAL_FIELD``: its document (``lexical.product_text``: name and attribute
values) analysed by the same tokenizer as the FAISS backend's lexicon (``lexical.tokenize``: stop words out,
Snowball stems), space-joined. The collection has a full-text payload index on that field with BM25 scoring
(``TextIndexParams(scoring=bm25)``), and a query is ranked by Qdrant's ``TextQuery`` over it (Robertson &
Zaragoza 2009; k1 = 1.2, b = 0.75), with the search's filter applied in the same query: the true top-k among
matching points. The field holds already-analysed words, so Qdrant's default word tokenizer (the only one its
embedded local mode scores) finds the same terms on a server and embedded.

Why not ``Document(model="qdrant/bm25")`` into a sparse vector: in the embedded local mode qdrant-client
computes that with fastembed, which downloads its model from the Hugging Face hub (none reachable here); only
a Qdrant server >= 1.15.3 infers it itself. The text index works in both, offline.

Hybrid search is one ``query_points`` call: two ``Prefetch`` es (the dense vector, the ``TextQuery``; each
filtered, ``depth`` deep) fused by Qdrant's reciprocal rank fusion (``RrfQuery``); its constant is set so the
scores equal ``fashion_core.fusion``'s (Qdrant ranks from 0: 1 / (k + rank0) = 1 / (c + rank1) at k = c + 1).
The two prefetch rankings come back in the same batch, so each hit says which of them found it.

A lexical hit's ``coverage`` (the share of the query's IDF mass its text holds, as the FAISS backend's
``lexical.Bm25Lexicon.coverage``) is counted here from its analysed words, fetched with the hit and stripped, and
each query word's document frequency, a count of the points whose text holds it (Lucene's IDF over them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from fashion_core.stores.lexical import coverage_of, lucene_idf, product_text, query_terms, tokenize

LEXICAL_FIELD = "lexical_text"
# what searches return: the product's payload, never the analysed words
PAYLOAD = models.PayloadSelectorExclude(exclude=[LEXICAL_FIELD])


def analysed(texts: Sequence[str]) -> list[str]:
    """Each text's tokens (lexical.tokenize), space-joined: what the text index stores and is queried with."""
    return [" ".join(tokens) for tokens in tokenize(texts)]


def with_lexical_text(payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The payloads with ``LEXICAL_FIELD`` added (new dicts)."""
    return [{**p, LEXICAL_FIELD: text} for p, text in zip(payloads, analysed([product_text(p) for p in payloads]),
                                                           strict=True)]


def create_text_index(client: QdrantClient, collection: str) -> None:
    """The BM25-scored full-text index on ``LEXICAL_FIELD`` (default word tokenizer: the words are analysed)."""
    client.create_payload_index(collection, LEXICAL_FIELD, models.TextIndexParams(
        type=models.TextIndexType.TEXT, scoring=models.TextScoringParams(type=models.TextScoringType.BM25)))


def text_query(query: str) -> models.TextQuery | None:
    """The BM25 query of ``query``'s analysed words; None when none is left (stop words only)."""
    (words,) = analysed([query])
    return models.TextQuery(text=models.TextQueryInput(query=words)) if words else None


def lacks_text_index(exc: Exception) -> bool:
    """Whether a failed text query failed for want of the text index (a collection created before it existed:
    embedded Qdrant raises ValueError, a server answers 400 naming the field or its missing text index)."""
    message = str(exc).lower()
    return LEXICAL_FIELD in message or "text index" in message


def coverage(client: QdrantClient, collection: str, query: str, texts: Iterable[str]) -> np.ndarray:
    """float32 share of ``query``'s IDF mass (``lexical.lucene_idf`` over the collection's points, a word none
    holds at df 0) that each analysed text (``LEXICAL_FIELD``'s value) holds; one count per query word."""
    terms = query_terms(query)
    present = np.array([[t in words for t in terms] for words in (set(text.split()) for text in texts)],
                       dtype=bool).reshape(-1, len(terms))
    n = client.count(collection, exact=True).count
    df = [client.count(collection, count_filter=models.Filter(must=[models.FieldCondition(
        key=LEXICAL_FIELD, match=models.MatchText(text=t))]), exact=True).count for t in terms]
    return coverage_of(present, lucene_idf(np.array(df), n))
