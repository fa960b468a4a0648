"""From a model's text to SQL and an uncertainty: used by the task, its rewards and the abstention policy."""

from __future__ import annotations

import math
import re

from ehrforge.core.types import Generation

_FENCE = re.compile(r"```(?:sql)?\s*(.*?)(?:```|$)", re.S | re.I)


def clean_sql(text: str) -> str:
    """Pull the SQL out of a completion: code fences, 'SQL:' prefixes, trailing prose after the first ';'.

    >>> clean_sql("```sql\\nSELECT 1;\\n``` done")
    'SELECT 1'
    """
    m = _FENCE.search(text)
    if m:
        text = m.group(1)
    text = re.sub(r"^\s*(sql|query|answer)\s*:\s*", "", text.strip(), flags=re.I)
    return first_statement(text).strip()


def first_statement(text: str) -> str:
    """The text up to the first ``;`` that ends a statement, found by the SQL tokenizer: a ``;`` inside a string
    literal, a quoted name or a comment does not end one. Text the tokenizer cannot read (an unclosed quote) is cut
    at the first ``;`` after the last closed token, so trailing prose still goes.

    >>> first_statement("SELECT * FROM patients WHERE gender = 'a;b'; and prose")
    "SELECT * FROM patients WHERE gender = 'a;b'"
    >>> first_statement("SELECT 1 -- why; because\\n; SELECT 2")
    'SELECT 1 -- why; because\\n'
    """
    from sqlglot.tokens import Tokenizer, TokenType

    try:
        tokens = Tokenizer().tokenize(text)
    except Exception:  # sqlglot's TokenError: e.g. an unterminated string; fall back to the plain character
        return text.split(";")[0]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            return text[: token.start]
    return text


def sql_span(text: str) -> tuple[int, int]:
    """Where :func:`clean_sql`'s SQL lies in ``text`` (start, end); the whole text when it is not found verbatim.

    >>> t = "```sql\\nSELECT 1;\\n``` done"
    >>> start, end = sql_span(t); t[start:end]
    'SELECT 1'
    """
    sql = clean_sql(text)
    if not sql:
        return 0, len(text)
    m = _FENCE.search(text)
    at = text.find(sql, m.start(1) if m else 0)
    return (at, at + len(sql)) if at >= 0 else (0, len(text))


def span_values(tokens: list[str], values: list[float]) -> list[float]:
    """The values of the tokens that overlap the SQL span of the concatenated tokens (fences, a ``SQL:`` prefix
    and prose after the first ``;`` left out); all values when the tokens do not spell the text.

    >>> span_values(["```", "sql", "\\n", "SELECT", " 1", ";", "```", " Hope", " this"], [9, 9, 9, 0.1, 0.2, 5, 9, 7, 7])
    [0.1, 0.2]
    """
    if len(tokens) != len(values) or not tokens:
        return list(values)
    text = "".join(tokens)
    start, end = sql_span(text)
    out, pos = [], 0
    for tok, value in zip(tokens, values):
        if pos < end and pos + len(tok) > start:
            out.append(value)
        pos += len(tok)
    return out or list(values)


def uncertainty(gen: Generation, how: str = "max") -> float:
    """Token-entropy uncertainty of the SQL in a generation (nats): only tokens of the SQL span count, not code
    fences or trailing prose; 0 when the backend gives no entropies. Non-finite per-token values (a backend's NaN)
    count as maximally uncertain rather than vanishing from a max or mean.

    >>> uncertainty(Generation("x", tokens=["a", "b"], token_entropies=[0.2, float("nan")]))
    inf
    >>> uncertainty(Generation("SELECT 1; ok", tokens=["SELECT", " 1", ";", " ok"], token_entropies=[0.1, 0.3, 2.0, 4.0]))
    0.3
    """
    ents = gen.token_entropies or []
    if not ents:
        if gen.token_logprobs:  # HTTP backends without top-k: use surprisal of the chosen tokens instead
            ents = [-lp for lp in gen.token_logprobs]
        else:
            return 0.0
    ents = span_values(list(gen.tokens), list(ents))
    ents = [e if math.isfinite(e) else math.inf for e in ents]
    return max(ents) if how == "max" else sum(ents) / len(ents)
