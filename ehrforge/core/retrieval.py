"""Demonstration retrieval: index a pool of training records, return the k most similar ones for a query.

Task-agnostic: a task says which field is the searchable text (``text_key``), may say how texts are put in a
comparable form before matching (``normalize``: the SQL task masks the values a question mentions, so questions
of the same shape meet however different their drugs and patients), and puts what comes back into its own prompt.
Two scorers (``method``):

* ``bm25``: word overlap (``bm25s``, a sparse-matrix implementation that indexes 10k questions in well under a
  second);
* ``minilm``: cosine similarity of the bundled MiniLM sentence embeddings (``ehrforge.core.encoder``), which also
  matches paraphrases ("how many days have passed since" / "how many days since"); about 25 s to embed 4.7k
  questions on two cores, once per process.

A query record is never its own demonstration: callers pass its id in ``exclude`` (during training the query *is*
in the pool, and seeing its own answer would teach copying rather than adapting).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from typing import Any, Literal

Record = dict[str, Any]
RetrievalMethod = Literal["bm25", "minilm"]
METHODS: tuple[str, ...] = ("bm25", "minilm")


class _BM25Scores:
    def __init__(self, texts: list[str]) -> None:
        import bm25s

        self._bm25 = bm25s.BM25()
        # Stopwords kept: in short clinical questions "last", "first", "not" decide the query's shape.
        self._bm25.index(self._tokenize(texts), show_progress=False)

    @staticmethod
    def _tokenize(texts: list[str]) -> list[list[str]]:
        import bm25s

        tokens = bm25s.tokenize(texts, stopwords=None, return_ids=False, show_progress=False)
        return [t or ["<empty>"] for t in tokens]  # an all-punctuation text still needs one token

    def __call__(self, queries: list[str]) -> Any:
        import numpy as np

        return np.stack([np.asarray(self._bm25.get_scores(t), dtype=np.float64) for t in self._tokenize(queries)])


class _EmbeddingScores:
    def __init__(self, texts: list[str], encoder: Any = None) -> None:
        from ehrforge.core.encoder import SentenceEncoder

        self._encoder = encoder if encoder is not None else SentenceEncoder()
        self._pool = self._encoder.embed(texts)

    def __call__(self, queries: list[str]) -> Any:
        import numpy as np

        # Rounded so that scores equal up to float noise tie, and ties keep pool order (deterministic across
        # batch compositions, which change the encoder's padding and so the last bits of an embedding).
        return np.round(self._encoder.embed(queries).astype(np.float64) @ self._pool.T.astype(np.float64), 5)


class Retriever:
    """``method`` similarity over ``normalize(record[text_key])`` of ``pool``; :meth:`nearest` returns records, best
    first.

    >>> pool = [{"id": "a", "q": "count the patients"}, {"id": "b", "q": "list the drugs of patient 7"},
    ...         {"id": "c", "q": "how many patients are there"}]
    >>> r = Retriever(pool, text_key="q")
    >>> [x["id"] for x in r.nearest("how many patients", 2)]
    ['c', 'a']
    >>> [x["id"] for x in r.nearest("how many patients", 2, exclude={"c"})]
    ['a', 'b']

    ``normalize`` is applied to pool texts and queries alike:

    >>> r = Retriever(pool, text_key="q", normalize=lambda t: t.replace("7", "NUM"))
    >>> [x["id"] for x in r.nearest("list the drugs of patient 12", 1, exclude={"c"})]
    ['b']
    """

    def __init__(self, pool: Sequence[Record], *, text_key: str = "question", id_key: str = "id",
                 method: RetrievalMethod = "bm25", normalize: Callable[[str], str] | None = None,
                 encoder: Any = None) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown retrieval method {method!r}; choose one of {', '.join(METHODS)}")
        self.pool = [r for r in pool if str(r.get(text_key) or "").strip()]
        self.text_key, self.id_key, self.method = text_key, id_key, method
        self.normalize = normalize or (lambda text: text)
        self._scores: Any = None
        self._tie_break: Any = None
        if self.pool:
            texts = [self.normalize(r[text_key]) for r in self.pool]
            self._scores = _BM25Scores(texts) if method == "bm25" else _EmbeddingScores(texts, encoder)
            if normalize is not None:
                # Many pool texts normalize alike (one template, other values); among those, the one that also
                # shares the query's words (the same drug, the same test) comes first.
                self._tie_break = _BM25Scores([r[text_key] for r in self.pool])

    def __len__(self) -> int:
        return len(self.pool)

    def fingerprint(self) -> str:
        """Changes when the pool (ids and texts) or the method does: recorded with a model trained on these
        demonstrations."""
        digest = hashlib.sha256(self.method.encode())
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
        # Scores for the whole pool, then a stable order on (-score, -raw-text score, pool index): ties never depend
        # on k or on the other queries of a batch (a top-k cut inside the scorer would).
        scored = self._scores([self.normalize(t) for t in texts])
        raw = self._tie_break(list(texts)) if self._tie_break is not None else np.zeros_like(scored)
        for scores, tie_break, skip in zip(scored, raw, exclude):
            picked = []
            for i in np.lexsort((index, -tie_break, -scores)):
                rec = self.pool[int(i)]
                if str(rec.get(self.id_key)) in skip:
                    continue
                picked.append(rec)
                if len(picked) == k:
                    break
            out.append(picked)
        return out
