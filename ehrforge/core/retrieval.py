"""Demonstration retrieval: index a pool of training records, return the k most similar ones for a query.

Task-agnostic: a task says which field is the searchable text (``text_key``) and puts what comes back into its own
prompt. Scoring is BM25 (``bm25s``, a sparse-matrix implementation that indexes 10k questions in well under a
second). A query record is never its own demonstration: callers pass its id in ``exclude`` (during training the
query *is* in the pool, and seeing its own answer would teach copying rather than adapting).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import Any

Record = dict[str, Any]


class Retriever:
    """BM25 over ``record[text_key]`` of ``pool``; :meth:`nearest` returns records, best first.

    >>> pool = [{"id": "a", "q": "count the patients"}, {"id": "b", "q": "list the drugs of patient 7"},
    ...         {"id": "c", "q": "how many patients are there"}]
    >>> r = Retriever(pool, text_key="q")
    >>> [x["id"] for x in r.nearest("how many patients", 2)]
    ['c', 'a']
    >>> [x["id"] for x in r.nearest("how many patients", 2, exclude={"c"})]
    ['a', 'b']
    """

    def __init__(self, pool: Sequence[Record], *, text_key: str = "question", id_key: str = "id") -> None:
        self.pool = [r for r in pool if str(r.get(text_key) or "").strip()]
        self.text_key, self.id_key = text_key, id_key
        self._bm25: Any = None
        if self.pool:
            import bm25s

            self._bm25 = bm25s.BM25()
            # Stopwords kept: in short clinical questions "last", "first", "not" decide the query's shape.
            self._bm25.index(self._tokenize([r[text_key] for r in self.pool]), show_progress=False)

    def __len__(self) -> int:
        return len(self.pool)

    @staticmethod
    def _tokenize(texts: list[str]) -> list[list[str]]:
        import bm25s

        tokens = bm25s.tokenize(texts, stopwords=None, return_ids=False, show_progress=False)
        return [t or ["<empty>"] for t in tokens]  # an all-punctuation text still needs one token

    def fingerprint(self) -> str:
        """Changes when the pool does (ids and texts): recorded with a model trained on these demonstrations."""
        digest = hashlib.sha256()
        for r in self.pool:
            digest.update(f"{r.get(self.id_key)}\x00{r[self.text_key]}\x01".encode())
        return digest.hexdigest()[:12]

    def nearest(self, text: str, k: int, *, exclude: Collection[str] = ()) -> list[Record]:
        """The ``k`` pool records most similar to ``text`` (fewer when the pool is small), skipping ids in
        ``exclude``; ties keep pool order, so the result is deterministic."""
        return self.nearest_many([text], k, exclude=[exclude])[0]

    def nearest_many(self, texts: Sequence[str], k: int, *, exclude: Sequence[Collection[str]] | None = None) -> list[list[Record]]:
        if k <= 0 or not self.pool or not texts:
            return [[] for _ in texts]
        import numpy as np

        exclude = exclude or [()] * len(texts)
        index = np.arange(len(self.pool))
        out = []
        for tokens, skip in zip(self._tokenize(list(texts)), exclude):
            # Scores for the whole pool, then a stable order on (-score, pool index): ties never depend on k or
            # on the other queries of a batch (a top-k cut inside bm25s would).
            scores = np.asarray(self._bm25.get_scores(tokens), dtype=np.float64)
            picked = []
            for i in np.lexsort((index, -scores)):
                rec = self.pool[int(i)]
                if str(rec.get(self.id_key)) in skip:
                    continue
                picked.append(rec)
                if len(picked) == k:
                    break
            out.append(picked)
        return out
