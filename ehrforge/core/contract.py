"""The task plug-in contract. Every recipe (sql, fhirqa, classify, extract, calc, …) is one :class:`Task`.

A task knows how to *load* its records, turn one into a chat *prompt*, give the *target* completion used for
supervised fine-tuning, *parse* a model's generation into an :class:`Answer` or :class:`Abstain`, *score* a list of
predictions with its own metric, and list the *rewards* used by GRPO. Records are plain dicts with a string ``id``
(so they round-trip through JSONL and ``datasets``).

A task declares, like a plugin of simonw/llm:

* ``Options`` - a typed settings model (unknown keys are errors); ``--set task_options.x=…`` and a YAML
  ``task_options:`` block are validated against it, every problem listed at once;
* ``capabilities`` - the optional hooks it implements (see :class:`Capability`). The CLI verbs, the server and the
  evaluation loop dispatch on these, never on a task's name;
* ``ask_fields`` - the context fields an ``ask`` needs besides the question (e.g. a patient id, a note).

The lifecycle steps in ``ehrforge.core`` only talk to this interface. It lives in ``core`` so that imports run one
way (``cli``/``serve`` -> ``tasks`` -> ``core``): core never imports a task, and training is dispatched by
``ehrforge.core.training.train``, not by the base class calling back into core.
"""

from __future__ import annotations

import hashlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from ehrforge.core.settings import Settings, build
from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Abstain, Generation, Message, Prediction
from ehrforge.errors import EhrforgeError, UnknownNameError

Record = dict[str, Any]
#: TRL-style reward: ``(completions, **columns) -> list[float | None]`` (None: this row cannot be scored).
RewardFn = Callable[..., list[float | None]]


#: the longest question an ``ask`` passes to a model (a 100 KB paste is refused with a reason, not truncated)
MAX_QUESTION_CHARS = 4000


class Capability(str, Enum):
    """Optional hooks a task implements. Each names the method that provides it."""

    #: ``build_data(rebuild)``: a data-building step (``ehrforge data``), e.g. the synthetic EHR database
    DATA = "data"
    #: ``check_ready()`` opens a resource (a database) at start-up, so a bad one fails before any work
    RESOURCES = "resources"
    #: ``synthesize(out, n, teacher, seed)``: synthetic training data (``ehrforge synth``)
    SYNTH = "synth"
    #: ``train(records, base_model, out, settings, stage)`` is the task's own (e.g. an encoder head, or stacking);
    #: ``ehrforge.core.training.train`` calls it instead of core SFT/GRPO
    CUSTOM_TRAINING = "custom_training"
    #: ``load_predictor(folder, manifest)``: trained folders run by a non-chat predictor (an encoder head)
    PREDICTOR = "predictor"
    #: ``tune(backend, dev, batch_size) -> Tuning``: a decision threshold tuned on a dev split before scoring
    TUNE = "tune"
    #: ``demo(cfg)``: the recipe end to end on bundled data (``ehrforge demo``)
    DEMO = "demo"
    #: prompts include retrieved demonstrations (``ehrforge.core.retrieval``)
    RETRIEVAL = "retrieval"
    #: ``stand_in_teacher(noise, sources, seed)``: an offline simulated teacher (``--teacher simulated[:noise]``),
    #: for controlled-noise experiments; always named as a stand-in in results
    STAND_IN_TEACHER = "stand_in_teacher"


class TaskOptions(Settings):
    """Options every task accepts; a task's own ``Options`` subclasses this. Frozen: they are what the user asked
    for and never change after they are built (what a run learns goes into :class:`TunedState`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: generation budget per answer; None = the task's default
    max_new_tokens: int | None = Field(None, ge=1, le=8192)


@dataclass(frozen=True)
class TunedState:
    """What a run learned or restored about a task beside what the user asked for: a threshold tuned on dev and its
    curve, a resource it resolved (the database it built), the prompt options a trained folder was made with.
    Immutable: every change is a new value, so saving and restoring it is plain assignment.

    >>> state = TunedState().updated(threshold=0.5)
    >>> state.get("threshold"), "curve" in state, state.updated(curve=[1]).as_dict()
    (0.5, False, {'threshold': 0.5, 'curve': [1]})
    """

    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def updated(self, **changes: Any) -> "TunedState":
        return TunedState({**self.values, **changes})

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True)
class Tuning:
    """What :meth:`Task.tune` chose on dev: the state to predict with (the task's own is never written by tuning;
    the caller decides whether to use it, save it with a model, or drop it) and a report for the results table."""

    state: TunedState
    report: Mapping[str, Any]


class UnsupportedError(UnknownNameError):
    """A verb asked of a task that lacks the capability."""


class Task(ABC):
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: the headline metric key in :meth:`score`'s result
    metric: ClassVar[str] = ""
    #: default generation budget for this task's answers (``options.max_new_tokens`` overrides it)
    default_max_new_tokens: ClassVar[int] = DEFAULT_MAX_NEW_TOKENS
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: context an ``ask`` needs besides the question: name -> help text (all required)
    ask_fields: ClassVar[dict[str, str]] = {}
    #: training stages a task offers; GRPO is offered whenever the task has rewards
    training_stages: ClassVar[tuple[str, ...]] = ("sft", "grpo")
    #: the recipe's measured SFT settings (``sft:`` keys), applied beneath the YAML file and ``--set``
    sft_defaults: ClassVar[dict[str, Any]] = {}
    #: the model ``ask``/``serve`` use when no ``--model`` is given: ``bundled`` or a shipped trained folder's alias
    default_model: ClassVar[str] = "bundled"

    def __init__(self, **options: Any) -> None:
        self.options = build(self.Options, options, prefix="task_options.", hint=self.options_hint())
        self.state = TunedState()
        self.setup()

    @classmethod
    def options_hint(cls) -> str:
        return f"{cls.name} task options: {', '.join(cls.Options.model_fields) or 'none'}"

    def setup(self) -> None:
        """Derive helpers from ``self.options`` (called once by ``__init__``); the options are already valid."""

    def user_set(self, name: str) -> bool:
        """Whether the user gave option ``name`` a value (a flag, ``--set`` or the YAML file); an explicit None is
        "not given", as a flag left out is."""
        return name in self.options.model_fields_set and getattr(self.options, name) is not None

    def setting(self, name: str) -> Any:
        """The value this run uses for option ``name``, by the one precedence: what the user set > the tuned state
        (dev tuning, a trained folder's manifest, a resolved resource) > the option's default."""
        if self.user_set(name) or name not in self.state:
            return getattr(self.options, name)
        return self.state.get(name)

    def __getattr__(self, name: str) -> Any:
        # Options read as attributes (task.db, task.context_tokens) keep recipe code short; they read setting().
        options = self.__dict__.get("options")
        if options is not None and name in type(options).model_fields and "state" in self.__dict__:
            return self.setting(name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    @property
    def max_new_tokens(self) -> int:
        return self.setting("max_new_tokens") or self.default_max_new_tokens

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def require(self, capability: Capability, verb: str, hint: str) -> None:
        """Fail with one line when a verb needs a capability this task lacks."""
        if capability not in self.capabilities:
            raise UnsupportedError(f"the {self.name} task has no {capability.value} step ({verb})", hint)

    # -- the recipe ---------------------------------------------------------------------------------------------
    @abstractmethod
    def load(self, split: str, *, limit: int | None = None, seed: int = 0, source: str | None = None) -> list[Record]:
        """Records of a split (``train``/``valid``/``test``); ``source`` may be any file or folder in the task's
        format, including a split the project has never seen."""

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

    def gold(self, record: Record) -> Any:
        """The gold answer written beside each prediction in ``--predictions-out`` (None where unknown)."""
        try:
            return self.target(record)
        except (KeyError, TypeError, ValueError, EhrforgeError):  # unlabelled records have no gold
            return None

    def sft_example(self, record: Record) -> dict[str, Any]:
        """A conversational prompt/completion row for TRL (loss on the completion only, any chat template)."""
        return {"prompt": self.prompt(record), "completion": [{"role": "assistant", "content": self.target(record)}]}

    def grpo_example(self, record: Record) -> dict[str, Any]:
        """A GRPO row: the prompt plus every column the reward functions need."""
        return {"prompt": self.prompt(record), **{k: v for k, v in record.items() if k != "prompt"}}

    # -- the prompt format recorded with a trained model (litgpt's saved prompt style) ---------------------------
    def prompt_fingerprint(self) -> str:
        """Text that changes whenever the prompt changes; tasks with templates or prompt options extend it."""
        return inspect.getsource(type(self).prompt)

    def prompt_format(self) -> dict[str, str]:
        """``{"name", "hash"}`` saved in every trained folder; a mismatch on load warns."""
        style = (self.setting("prompt") if "prompt" in type(self.options).model_fields else None) or "default"
        digest = hashlib.sha256(self.prompt_fingerprint().encode()).hexdigest()[:12]
        return {"name": f"{self.name}/{style}", "hash": digest}

    def manifest_extras(self) -> dict[str, Any]:
        """Task state saved with a trained model (e.g. a tuned threshold); restored by :meth:`restore`."""
        return {}

    def restore(self, manifest: dict[str, Any]) -> None:
        """Fold what a trained model's manifest recorded into :attr:`state` (called by the model loader); options
        the user set keep their value (:meth:`setting`)."""

    # -- training -----------------------------------------------------------------------------------------------
    def stages(self) -> tuple[str, ...]:
        """The stages ``ehrforge train --stage`` accepts for this task."""
        return tuple(s for s in self.training_stages if s != "grpo" or self.rewards())

    # -- inference ----------------------------------------------------------------------------------------------
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

    def missing_ask_fields(self, context: dict[str, Any]) -> list[str]:
        """Names of required ``ask`` context fields that are absent or empty."""
        return [name for name in self.ask_fields if not str(context.get(name) or "").strip()]

    def ask_record(self, question: str, **context: Any) -> Record:
        """The record an ``ask`` predicts on; tasks that need more than the question override this."""
        return {"id": "ask", "question": question, **context}

    def unanswerable_input(self, question: str, **context: Any) -> Abstain | None:
        """An abstention for input no model should see: an empty or huge question, a missing context field."""
        if not isinstance(question, str) or not question.strip():
            return Abstain("the question is empty: ask it in plain language")
        if len(question) > MAX_QUESTION_CHARS:
            return Abstain(f"the question is {len(question)} characters long (limit {MAX_QUESTION_CHARS}): shorten it")
        missing = self.missing_ask_fields(context)
        if missing:
            return Abstain(f"missing {', '.join(missing)}: {self.ask_fields[missing[0]]}")
        return None

    def ask(self, backend: Any, question: str, **context: Any) -> dict[str, Any]:
        """Answer one free-text question (CLI ``ask``, server ``/v1/<task>/ask``). Bad input (empty, huge, a
        missing context field) is an abstention naming the problem, never an exception."""
        refused = self.unanswerable_input(question, **context)
        if refused is not None:
            return reply_from_prediction(refused)
        return reply_from_prediction(self.predict(backend, [self.ask_record(question, **context)], batch_size=1)[0])

    def results_table(self, results: dict[str, dict[str, float]], title: str = "") -> Any:
        """How ``ehrforge eval`` shows this task's results (one row per model by default)."""
        from ehrforge.core.report import metrics_table

        return metrics_table(results, title=title)


def reply_from_prediction(pred: Prediction) -> dict[str, Any]:
    """The JSON shape every ``ask`` returns: ``{answer, abstained, reason, confidence}``."""
    if isinstance(pred, Abstain):
        return {"answer": None, "abstained": True, "reason": pred.reason, "confidence": round(pred.confidence, 4)}
    return {"answer": pred.value, "abstained": False, "reason": None, "confidence": round(pred.confidence, 4)}
