"""BM25 over the catalog's text, for the FAISS backend: what shoppers type that a picture cannot show (brands).

Each product's document is its ``productDisplayName`` followed by its attribute values (``KEYWORD_FIELDS``:
gender, articleType, baseColour, ...), so "puma running shoes" and "titan watch for women" match on the brand in
the name and on the type and gender in the attributes. The index is `bm25s <https://github.com/xhluca/bm25s>`_
(Lù 2024: sparse-matrix BM25, Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and
Beyond", Lucene's variant), with English stop words removed and Snowball stems (PyStemmer) so "shoes" finds
"Shoe" and "watches" finds "Watch". It scores every document of a query at once, so a filter is applied exactly:
the top-k lexical hits are the true top-k among the rows a filter keeps.

Each lexical hit also says how much of the query it matches, its ``coverage``: the share of the query's IDF
mass held by the hit's text, a word the catalog never uses counting at its full IDF (df = 0).
BM25 alone cannot say that: its best hit for "addidas shoes" is some shoe, matching "shoe" only, and scaled by
its list's best it looked like a full match to the fusion (``fashion_core.fusion``), which weighs it by this.

A ``Bm25Lexicon`` is aligned with the rows of the index that built it (``ids``): its scores are a float32 array
over those rows. The FAISS backend builds it from its payloads whenever it saves, and stores it beside the
vectors (``lexical/``); a lexicon whose saved ids are not the index's rows is stale and is rebuilt instead.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import Stemmer

from fashion_core.catalog.schema import KEYWORD_FIELDS

log = logging.getLogger(__name__)
# bm25s sets its own logger to DEBUG on import, which prints "Building index from tokens" under any CLI.
logging.getLogger("bm25s").setLevel(logging.WARNING)

LEXICAL_DIR = "lexical"  # inside a FAISS index directory
IDS_FILE = "ids.npy"
TEXT_FIELDS: tuple[str, ...] = ("productDisplayName", *KEYWORD_FIELDS)
_STEMMER = Stemmer.Stemmer("english")
# "T-shirt" and "Tshirts" are one word to a shopper: joined before tokenizing (bm25s drops 1-letter tokens).
_JOIN = re.compile(r"\b(\w)-(?=\w)")


def product_text(payload: dict[str, Any]) -> str:
    """The document of one product: its name and its attribute values, space-separated."""
    return " ".join(str(payload.get(name) or "") for name in TEXT_FIELDS).strip()


def query_terms(query: str) -> list[str]:
    """The query's distinct analysed words (``tokenize``), in order: what a hit's coverage is counted over."""
    return list(dict.fromkeys(tokenize([query])[0]))


def lucene_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """float64 IDF of terms held by ``df`` of ``n_docs`` documents, Lucene's (bm25s's "lucene" method, the
    lexicon's): log(1 + (N - df + 0.5) / (df + 0.5)); > 0, largest for df = 0."""
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


def coverage_of(present: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """float32 (hits,) share of the query's weight each hit holds: ``present`` (hits, terms) bool, whether the
    hit's text holds the term; ``weights`` (terms,) each term's weight (IDF, or 1 per word). 1 for no terms."""
    total = float(np.sum(weights))
    if total <= 0:
        return np.ones(len(present), dtype=np.float32)
    return (np.asarray(present, dtype=np.float64) @ np.asarray(weights, dtype=np.float64) / total).astype(np.float32)


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased word tokens (2+ characters), English stop words removed, Snowball-stemmed: one list per text."""
    joined = [_JOIN.sub(r"\1", text) for text in texts]
    return bm25s.tokenize(joined, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


class Bm25Lexicon:
    """BM25 scores of a query over every row of an index (rows in ``ids`` order)."""

    def __init__(self, ids: np.ndarray, retriever: bm25s.BM25) -> None:
        self.ids = ids
        self.retriever = retriever

    @classmethod
    def build(cls, ids: np.ndarray, payloads: Sequence[dict[str, Any]]) -> Bm25Lexicon:
        """Index ``payloads`` (one per row of ``ids``, int64 product ids)."""
        retriever = bm25s.BM25()
        retriever.index(tokenize([product_text(p) for p in payloads]), show_progress=False)
        return cls(np.asarray(ids, dtype=np.int64).copy(), retriever)

    def scores(self, query: str) -> np.ndarray:
        """float32 BM25 score of ``query`` for each row (0 = no query term in the row's text)."""
        tokens = self.retriever.get_tokens_ids(tokenize([query])[0])
        if not tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)

    def term_weights(self, terms: Sequence[str]) -> np.ndarray:
        """float64 (terms,) IDF of each analysed term over the rows (``lucene_idf``; a term no row holds, df 0,
        the largest): df read off bm25s's term-document matrix (CSC, one column per vocabulary term)."""
        indptr = self.retriever.scores["indptr"]
        vocab = self.retriever.vocab_dict
        df = [int(indptr[vocab[t] + 1] - indptr[vocab[t]]) if t in vocab else 0 for t in terms]
        return lucene_idf(np.array(df, dtype=np.int64), len(self.ids))

    def coverage(self, query: str, rows: np.ndarray) -> np.ndarray:
        """float32 (len(rows),) share of ``query``'s IDF mass (``term_weights`` of ``query_terms``) that each
        row's text holds, 0..1: 1 = every query word (or stop words only), 0 = none."""
        terms = query_terms(query)
        rows = np.asarray(rows, dtype=np.int64)
        present = np.zeros((len(rows), len(terms)), dtype=bool)
        scores = self.retriever.scores
        vocab = self.retriever.vocab_dict
        for j, term in enumerate(terms):
            if term in vocab:
                t = vocab[term]
                present[:, j] = np.isin(rows, scores["indices"][scores["indptr"][t]:scores["indptr"][t + 1]])
        return coverage_of(present, self.term_weights(terms))

    def top(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the (at most) ``k`` best-scoring documents among those ``mask`` keeps (bool per row; None =
        all), best first, ties by id; documents sharing no term with the query are never returned.
        Returns (rows int64, scores float32)."""
        scores = self.scores(query)
        keep = scores > 0
        if mask is not None:
            keep &= mask
        rows = np.flatnonzero(keep)
        if len(rows) > k:
            rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
        rows = rows[np.lexsort((self.ids[rows], -scores[rows]))]
        return rows, scores[rows]

    def save(self, directory: Path) -> None:
        """Write the lexicon to ``directory`` (replaced whole: a new copy is written beside it, then swapped)."""
        directory = Path(directory)
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.retriever.save(str(tmp), show_progress=False)
        np.save(tmp / IDS_FILE, self.ids)
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path, ids: np.ndarray) -> Bm25Lexicon | None:
        """The lexicon saved in ``directory`` if it was built over exactly these rows; None when missing or stale
        (the caller rebuilds it from the payloads)."""
        directory = Path(directory)
        if not (directory / IDS_FILE).is_file():
            return None
        saved = np.load(directory / IDS_FILE)
        if not np.array_equal(saved, ids):
            log.info("lexical index in %s is stale (%d rows, index has %d): rebuilt", directory, len(saved), len(ids))
            return None
        return cls(saved, bm25s.BM25.load(str(directory), show_progress=False))
