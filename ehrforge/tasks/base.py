"""The task plug-in interface. Every recipe (sql, fhirqa, classify, extract, calc) is one :class:`Task`.

A task knows how to *load* its records, turn one into a chat *prompt*, give the *target* completion used for
supervised fine-tuning, *parse* a model's generation into an :class:`Answer` or :class:`Abstain`, *score* a list of
predictions with its own metric, and list the *rewards* used by GRPO. Records are plain dicts with a string ``id``
(so they round-trip through JSONL and ``datasets``). The lifecycle steps in ``ehrforge.core`` only talk to this
interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from ehrforge.core.types import Generation, Message, Prediction

Record = dict[str, Any]
#: TRL-style reward: ``(completions, **columns) -> list[float]``.
RewardFn = Callable[..., list[float]]


class Task(ABC):
    name: str = ""
    summary: str = ""
    #: the headline metric key in :meth:`score`'s result
    metric: str = ""
    #: generation budget for this task's answers
    max_new_tokens: int = 256

    @abstractmethod
    def load(self, split: str, *, limit: int | None = None, seed: int = 0, source: str | None = None) -> list[Record]:
        """Records of a split (``train``/``valid``/``test``); ``source`` overrides the default data location."""

    @abstractmethod
    def prompt(self, record: Record) -> list[Message]:
        """Chat messages asking the model for this record's answer."""

    @abstractmethod
    def target(self, record: Record) -> str:
        """The gold completion text (what SFT teaches the model to write)."""

    @abstractmethod
    def parse(self, generation: Generation, record: Record) -> Prediction:
        """Turn a generation into an Answer or an Abstain."""

    @abstractmethod
    def score(self, records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, float]:
        """The task's own metrics (headline key: :attr:`metric`)."""

    def rewards(self) -> list[RewardFn]:
        """Reward functions for GRPO (none by default)."""
        return []

    def sft_example(self, record: Record) -> dict[str, Any]:
        """A conversational prompt/completion row for TRL (loss on the completion only, any chat template)."""
        return {"prompt": self.prompt(record), "completion": [{"role": "assistant", "content": self.target(record)}]}

    def grpo_example(self, record: Record) -> dict[str, Any]:
        """A GRPO row: the prompt plus every column the reward functions need."""
        return {"prompt": self.prompt(record), **{k: v for k, v in record.items() if k != "prompt"}}

    def ask(self, backend: Any, question: str, **context: Any) -> dict[str, Any]:
        """Answer one free-text question (CLI ``ask``, server ``/v1/<task>/ask``); tasks needing context override."""
        record = {"id": "ask", "question": question, **context}
        return reply_from_prediction(self.predict(backend, [record], batch_size=1)[0])

    def results_table(self, results: dict[str, dict[str, float]], title: str = "") -> Any:
        """How ``ehrforge eval`` shows this task's results (one row per model by default)."""
        from ehrforge.core.evaluate import metrics_table

        return metrics_table(results, title=title)

    def predict(self, backend: Any, records: Sequence[Record], *, batch_size: int = 8, progress: Any = None) -> list[Prediction]:
        """Generate and parse. Tasks with multi-step inference (execution checks, retrieval) override this."""
        preds: list[Prediction] = []
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            gens = backend.generate([self.prompt(r) for r in chunk], max_new_tokens=self.max_new_tokens)
            preds.extend(self.parse(g, r) for g, r in zip(gens, chunk))
            if progress is not None:
                progress(len(chunk))
        return preds


def reply_from_prediction(pred: Prediction) -> dict[str, Any]:
    """The JSON shape every ``ask`` returns: ``{answer, abstained, reason, confidence}``."""
    from ehrforge.core.types import Abstain

    if isinstance(pred, Abstain):
        return {"answer": None, "abstained": True, "reason": pred.reason, "confidence": round(pred.confidence, 4)}
    return {"answer": pred.value, "abstained": False, "reason": None, "confidence": round(pred.confidence, 4)}
