"""Values that flow through every recipe: messages, generations and answers (or abstentions)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

#: A chat message, OpenAI style: {"role": "system"|"user"|"assistant", "content": str}.
Message = dict[str, str]


@dataclass(frozen=True)
class Generation:
    """What a backend returns for one prompt.

    ``token_logprobs`` are the log-probabilities of the chosen tokens; ``token_entropies`` the entropy (nats) of the
    full next-token distribution at each step. HTTP backends fill ``token_logprobs`` when the server supports
    ``logprobs`` and approximate entropies from ``top_logprobs``; the local backend fills both exactly.
    """

    text: str
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float] | None = None
    token_entropies: list[float] | None = None
    prompt_tokens: int = 0
    finish_reason: str = "stop"

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)

    def mean_logprob(self) -> float | None:
        if not self.token_logprobs:
            return None
        return sum(self.token_logprobs) / len(self.token_logprobs)

    def sequence_prob(self) -> float | None:
        """Probability of the whole generated sequence (product of token probabilities)."""
        if self.token_logprobs is None:
            return None
        return math.exp(sum(self.token_logprobs))


@dataclass(frozen=True)
class Abstain:
    """The model declines to answer. A real value, never an empty string.

    ``reason`` is short and free of patient text (e.g. "high token entropy 0.41 > 0.30", "SQL error", "empty
    result"); ``confidence`` is the model's confidence in the answer it would have given, in [0, 1].
    """

    reason: str
    confidence: float = 0.0
    #: the answer a decision threshold held back (kept in memory for scoring "what if we had answered"; never
    #: shown to a user: ``reply_from_prediction`` and the server read only reason and confidence). Keyword-only, so
    #: subclasses (e.g. fhirqa's SelectionAbstain) keep their positional fields.
    withheld: Any = field(default=None, repr=False, compare=False, kw_only=True)

    def __bool__(self) -> bool:  # so `if prediction:` reads as "did it answer?"
        return False


@dataclass(frozen=True)
class Answer:
    """A committed answer: ``value`` is task specific (SQL string, label, number, span list, text)."""

    value: Any
    confidence: float = 1.0
    evidence: dict[str, Any] = field(default_factory=dict)


Prediction = Union[Answer, Abstain]

#: The literal the EHRSQL task uses for "no answer".
ABSTAIN_TOKEN = "null"
#: the generation budget of one call when neither the task nor the run sets one (every backend's default)
DEFAULT_MAX_NEW_TOKENS = 256


def is_abstain(p: object) -> bool:
    return isinstance(p, Abstain)
