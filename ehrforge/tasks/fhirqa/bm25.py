"""BM25 (Okapi) relevance over a question's condensed resource lines: the retrieval baseline for task 1.

The "documents" are the candidate lines of one question (or one patient's record); IDF comes from those lines, so a
word every resource shares (the resource type of a one-type record) weighs little. Scores are divided by the best
line's score, so one threshold (tuned on dev like any other scorer's) means the same thing for every question: 1.0
is the best line, 0.0 shares no word with the question. A question sharing no word with any line selects nothing.

No package is needed (``bm25s`` would add a dependency for ~30 lines of numpy). Short ids, dates and the resource's
type name are not words of the question, so they are dropped from the lines before indexing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from ehrforge.core.backends.capabilities import BackendCapability

#: Question words that say nothing about which resource is meant.
STOPWORDS = frozenset(
    "a an the of is was were what which when did does do how has have had patient patient's the in on for to any "
    "ever given most recent last first still currently taking value record she he her his their they this that "
    "and or with from been be are by at as it its there recorded".split()
)
_WORD = re.compile(r"[a-z][a-z0-9]+|[0-9]{4}")
_SHORT_ID = re.compile(r"^[0-9a-f-]{8,}\s+", re.I)


def words(text: str) -> list[str]:
    """Lower-cased content words (years kept; other numbers, stopwords and one-letter tokens dropped).

    >>> words("When was Asthma first recorded in 2019?")
    ['asthma', '2019']
    """
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def line_words(line: str) -> list[str]:
    """The words of a condensed line without its leading short id.

    >>> line_words("6a4160eb Condition: Asthma; active")
    ['condition', 'asthma', 'active']
    """
    return words(_SHORT_ID.sub("", line))


def bm25_scores(query: Sequence[str], docs: Sequence[Sequence[str]], *, k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 of ``query`` against each tokenised doc (IDF with the +1 smoothing that keeps it positive).

    >>> s = bm25_scores(["asthma"], [["asthma", "active"], ["hypertension"]])
    >>> s[0] > 0 and s[1] == 0
    True
    """
    n = len(docs)
    if n == 0:
        return []
    avg_len = sum(len(d) for d in docs) / n or 1.0
    df = Counter(w for d in docs for w in set(d))
    scores = []
    for doc in docs:
        tf = Counter(doc)
        norm = k1 * (1 - b + b * len(doc) / avg_len)
        total = 0.0
        for w in set(query):
            if tf[w]:
                idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                total += idf * tf[w] * (k1 + 1) / (tf[w] + norm)
        scores.append(total)
    return scores


class BM25Relevance:
    """A relevance scorer (``score_questions``) for :meth:`FHIRQATask.select`: BM25 relative to the best line."""

    name = "bm25"
    capabilities = frozenset({BackendCapability.SCORE})

    def score_questions(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        out = []
        for question, lines in items:
            raw = bm25_scores(words(question), [line_words(line) for line in lines])
            best = max(raw, default=0.0)
            out.append([s / best if best > 0 else 0.0 for s in raw])
        return out
