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
    return text.split(";")[0].strip()


def uncertainty(gen: Generation, how: str = "max") -> float:
    """Token-entropy uncertainty of a generation (nats); 0 when the backend gives no entropies. Non-finite
    per-token values (a backend's NaN) count as maximally uncertain rather than vanishing from a max or mean.

    >>> uncertainty(Generation("x", tokens=["a", "b"], token_entropies=[0.2, float("nan")]))
    inf
    """
    ents = gen.token_entropies or []
    if not ents:
        if gen.token_logprobs:  # HTTP backends without top-k: use surprisal of the chosen tokens instead
            ents = [-lp for lp in gen.token_logprobs]
        else:
            return 0.0
    ents = [e if math.isfinite(e) else math.inf for e in ents]
    return max(ents) if how == "max" else sum(ents) / len(ents)
