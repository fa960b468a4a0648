"""A deterministic backend for unit tests of prompt/parse logic (never the only test of a feature).

In the style of ``llm``'s mock model: queue the answers you want, and inspect the prompts it was given.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable

from ehrforge.core.backends.capabilities import BackendCapability
from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Generation, Message


class FakeBackend:
    name = "fake"
    capabilities = frozenset({BackendCapability.LOGPROBS})

    def __init__(
        self,
        responses: Iterable[str] | None = None,
        *,
        respond: Callable[[list[Message]], str] | None = None,
        token_logprob: float = math.log(0.9),
    ) -> None:
        self.queue: deque[str] = deque(responses or [])
        self.respond = respond
        self.token_logprob = token_logprob
        self.prompts: list[list[Message]] = []

    def enqueue(self, *responses: str) -> None:
        self.queue.extend(responses)

    def _answer(self, messages: list[Message]) -> str:
        if self.respond is not None:
            return self.respond(messages)
        if self.queue:
            return self.queue.popleft()
        return "null"

    def generate(
        self,
        batch: list[list[Message]],
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[Generation]:
        out = []
        for messages in batch:
            self.prompts.append(messages)
            text = self._answer(messages)
            tokens = text.split() or [""]
            p = math.exp(self.token_logprob)
            # Binary entropy of a two-outcome distribution with the chosen token at probability p.
            ent = -(p * math.log(p) + (1 - p) * math.log(1 - p)) if 0 < p < 1 else 0.0
            out.append(
                Generation(
                    text=text,
                    tokens=tokens,
                    token_logprobs=[self.token_logprob] * len(tokens),
                    token_entropies=[ent] * len(tokens),
                )
            )
        return out
