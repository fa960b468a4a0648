"""Which training questions the SQL prompt shows as demonstrations, and how questions are compared to find them.

EHRSQL questions come from a few hundred templates filled with values (a patient id, a drug, a lab test, a date).
Compared as they are, a question's nearest neighbours are the ones that share its *values* (the same patient, the
same drug) rather than its *shape*, and the model copies the wrong query shape. :func:`question_shape` masks the
values before comparison: every phrase that appears as a string literal in some training query ("glucose",
"sodium, urine", "iv drip") becomes ``VAL``, and every number becomes ``ID`` (five digits or more: a patient or
admission id), ``YEAR`` (four digits from 1900 to 2199) or ``NUM``, so that "admitted in 2100" and "aged 60 or
above" are different shapes and a year is never put where an age was. The lexicon comes from the demonstration
pool's own SQL, so nothing outside the training data is needed, and a user's database with other drug names still
works (their names simply stay unmasked).

On the EHRSQL v1.0 dev part (387 questions), the nearest demonstration has the gold query's shape (literals
removed) for 25 % of answerable questions with BM25 on the raw questions, 33 % with BM25 on masked ones, and 45 %
with MiniLM embeddings of masked ones (72 % have a same-shape query anywhere in train); the draft of the last one,
executed as the answer, is right for 45 % (43 % before numbers were typed): benchmarks/sql_retrieval.py.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from ehrforge.core.retrieval import Retriever

Record = dict[str, Any]

_LITERAL = re.compile(r"'([^']*)'")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ID = re.compile(r"\d{5,}")
_YEAR = re.compile(r"(?:19|20|21)\d\d")
_NUMERIC_LITERAL = re.compile(r"[\d\-: %.]*")
#: shorter literals ("m", "po") are also ordinary words or word pieces; masking them would erase question words
MIN_VALUE_CHARS = 3


def value_lexicon(sqls: Iterable[str]) -> list[str]:
    """The distinct non-numeric string literals of ``sqls``, lower-cased, longest first (so that "sodium, urine"
    is masked before "sodium").

    >>> value_lexicon(["SELECT 1 FROM t WHERE label = 'Sodium, urine' AND x = 'sodium'", "... = '2100-01-01'", "'po'"])
    ['sodium, urine', 'sodium']
    """
    values = set()
    for sql in sqls:
        for literal in _LITERAL.findall(sql or ""):
            value = literal.strip().lower()
            if len(value) >= MIN_VALUE_CHARS and not _NUMERIC_LITERAL.fullmatch(value):
                values.add(value)
    return longest_first(values)


def longest_first(values: Iterable[str]) -> list[str]:
    """Masking order: longer phrases before the phrases they contain, ties alphabetical.

    >>> longest_first(["sodium", "sodium, urine", "po"])
    ['sodium, urine', 'sodium', 'po']
    """
    return sorted(set(values), key=lambda v: (-len(v), v))


def number_kind(text: str) -> str:
    """What a number in a question stands for, judged by its form.

    >>> [number_kind(n) for n in ("10021487", "2100", "60", "1.5", "3000")]
    ['id', 'year', 'num', 'num', 'num']
    """
    if _ID.fullmatch(text):
        return "id"
    return "year" if _YEAR.fullmatch(text) else "num"


class QuestionShape:
    """Masks a question's values (see the module docstring), lists them, and puts one question's values into a
    similar question's SQL.

    >>> shape = QuestionShape(["sodium, urine", "glucose"])
    >>> shape("When did patient 10021487 last have a Sodium, urine test since 06/06/2100?")
    'when did patient ID last have a VAL test since NUM/NUM/YEAR?'
    >>> QuestionShape([])("count patients older than 40")
    'count patients older than NUM'
    >>> shape.values("glucose of patient 7 in 2100")
    [('val', 'glucose'), ('num', '7'), ('year', '2100')]
    """

    def __init__(self, lexicon: Sequence[str]) -> None:
        # One alternation, longest first: a regex engine tries alternatives in order, so the longest value wins.
        values = "|".join(re.escape(v) for v in lexicon) or r"(?!x)x"
        self._pattern = re.compile(f"({values})|({_NUMBER.pattern})")

    def __call__(self, question: str) -> str:
        return self._pattern.sub(lambda m: "VAL" if m.group(1) else number_kind(m.group(2)).upper(), question.lower())

    def values(self, question: str) -> list[tuple[str, str]]:
        """The question's values in order, each as ``(kind, text)``: kind "val" or a :func:`number_kind`."""
        return [("val", m.group(1)) if m.group(1) else (number_kind(m.group(2)), m.group(2))
                for m in self._pattern.finditer(question.lower())]

    def adapt(self, demo_question: str, demo_sql: str, question: str) -> str | None:
        """``demo_sql`` with the demonstration's values replaced by ``question``'s, matched in order; None when the
        two questions do not list the same kinds of values in the same order, or one demonstration value would
        become two different ones (the draft would be a guess).

        >>> shape = QuestionShape(["aspirin", "heparin"])
        >>> shape.adapt("When was aspirin first given to patient 10018081?",
        ...             "SELECT starttime FROM prescriptions WHERE subject_id = 10018081 AND drug = 'aspirin' LIMIT 1",
        ...             "When was heparin first given to patient 10021487?")
        "SELECT starttime FROM prescriptions WHERE subject_id = 10021487 AND drug = 'heparin' LIMIT 1"
        >>> shape.adapt("aspirin for patient 1", "SELECT 1", "patient 2") is None
        True
        """
        theirs, ours = self.values(demo_question), self.values(question)
        if [kind for kind, _ in theirs] != [kind for kind, _ in ours]:
            return None
        mapping: dict[tuple[str, str], str] = {}
        for old, (_, new) in zip(theirs, ours):
            if mapping.setdefault(old, new) != new:
                return None
        if not mapping:
            return demo_sql
        # One pass over the SQL so that a replaced value is never replaced again; string values only inside
        # quotes, numbers only as whole numbers (not inside identifiers or decimals).
        alternatives = sorted(mapping, key=lambda item: -len(item[1]))
        pattern = re.compile("|".join(
            "'" + re.escape(text) + "'" if kind == "val" else r"(?<![\w.])" + re.escape(text) + r"(?![\w.])"
            for kind, text in alternatives), re.IGNORECASE)

        def replace(match: re.Match) -> str:
            found = match.group(0)
            if found.startswith("'"):
                return "'" + mapping[("val", found[1:-1].lower())] + "'"
            return mapping.get((number_kind(found), found), found)

        return pattern.sub(replace, demo_sql)


class DemonstrationPool:
    """The labelled train records a prompt draws on: the ``k`` nearest demonstrations of a question, and a *draft*
    (the first of the nearest whose values line up, adapted to the question by :meth:`QuestionShape.adapt`)."""

    #: how many nearest records a draft may come from
    DRAFT_CANDIDATES = 3

    def __init__(self, pool: Sequence[Record], *, method: str = "minilm", mask_values: bool = True,
                 values: Iterable[str] = ()) -> None:
        """``values``: more phrases to mask beside the pool's own literals (a shipped lexicon)."""
        labelled = [r for r in pool if r.get("sql")]
        self.shape = QuestionShape(longest_first([*value_lexicon(r["sql"] for r in labelled), *(v.lower() for v in values)]))
        self.retriever = Retriever(labelled, method=method, normalize=self.shape if mask_values else None)  # type: ignore[arg-type]

    def nearest(self, question: str, k: int, *, exclude: Collection[str] = ()) -> list[Record]:
        return self.retriever.nearest(question, k, exclude=exclude)

    def draft(self, question: str, *, exclude: Collection[str] = ()) -> str | None:
        for demo in self.nearest(question, self.DRAFT_CANDIDATES, exclude=exclude):
            adapted = self.shape.adapt(demo["question"], demo["sql"], question)
            if adapted is not None:
                return adapted
        return None


def demonstration_retriever(pool: Sequence[Record], *, method: str = "minilm", mask_values: bool = True) -> Retriever:
    """The retriever over labelled ``pool`` records (``question``/``sql``) with the task's comparison settings."""
    return DemonstrationPool(pool, method=method, mask_values=mask_values).retriever
