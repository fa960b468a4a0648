"""The ``sql`` recipe: text-to-SQL over an EHR database that abstains when it should (EHRSQL 2024).

Inference is generate → parse → abstention policy:

1. the model may answer the literal ``null`` (it learned unanswerable questions in SFT);
2. *token-entropy threshold*: the max (or mean) entropy of the generated SQL tokens above a threshold tuned on the
   dev split to maximise RS(c) → abstain;
3. *execution filter*: the SQL must pass the guard and execute read-only with a non-empty result, else abstain.

Every abstention is an :class:`Abstain` with a reason and the model's confidence (``exp(-uncertainty)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from ehrforge.core.sft import ALL_LINEAR_LAYERS
from ehrforge.core.types import ABSTAIN_TOKEN, Abstain, Answer, Generation, Message, Prediction
from ehrforge.core.settings import finite
from ehrforge.core.contract import Capability, Record, RewardFn, Task, TaskOptions, Tuning, reply_from_prediction
from ehrforge.tasks.sql.abstention import PolicyContext, apply_policy, model_said_null
from ehrforge.tasks.sql.parse import clean_sql, uncertainty
from ehrforge.tasks.sql import data as sql_data
from ehrforge.tasks.sql.schema import CURRENT_TIME, schema_prompt

SYSTEM_PROMPT = """You translate questions about a MIMIC-IV hospital database into one SQLite SELECT query.
Write only the SQL. Use current_time for "now" (it is {now}).
If the question cannot be answered from this database, reply exactly: null

Tables:
{schema}"""

#: The student prompt: no schema (a fine-tuned model has learned it, and the schema dominated every training
#: example's tokens: docs/sql.md).
#: Retrieved demonstrations (question -> SQL turns before the question) carry the tables and idioms instead.
COMPACT_PROMPT = """Translate the question about a MIMIC-IV hospital database into one SQLite SELECT query.
Write only the SQL. Use current_time for "now" (it is {now}). If the database cannot answer it, reply exactly: null"""

PROMPTS = {"schema": SYSTEM_PROMPT, "compact": COMPACT_PROMPT}
#: the options that decide what a prompt looks like: saved with a trained model and restored when it is loaded
PROMPT_OPTIONS = ("prompt", "k", "retrieval", "mask_values", "draft")
LEGACY_RETRIEVAL = {"retrieval": "bm25", "mask_values": False, "draft": False}
#: what the system prompt adds when questions come with drafts, and how a draft follows its question
DRAFT_INSTRUCTION = "\nThe question may come with a draft: a similar question's SQL with this question's values put in. Correct it where the question differs."
DRAFT_LINE = "\nDraft: {sql}"

class SQLOptions(TaskOptions):
    #: the EHR database: a SQLite/DuckDB file or a postgresql:// URL; None = the cached synthetic demo database
    db: str | None = None
    #: where the questions come from: an EHRSQL version folder, a JSON/JSONL file; None = the bundled subset
    source: str | None = None
    #: how per-token entropies become one uncertainty score
    entropy: Literal["max", "mean"] = "max"
    #: fixed abstention threshold (nats, finite, >= 0); None = tune on a dev split (or use the model's tuned one)
    threshold: float | None = Field(None, ge=0)
    #: the penalty c of RS(c) the threshold is tuned for
    target_penalty: int = Field(10, ge=0)
    #: abstain when the SQL violates the guard, errors, or returns no rows
    execution_filter: bool = True
    #: stage 2 of the recipe: self-training on pseudo-labelled unanswerable questions
    self_training: bool = True
    #: system prompt: "compact" (instruction only, the student's) or "schema" (with the full schema, zero-shot)
    prompt: Literal["schema", "compact"] = "compact"
    #: retrieved demonstrations (train question -> SQL) shown before the question; 0 = none. 3 by default: best on
    #: dev both zero-shot and trained (docs/sql.md, benchmarks/results/sql_ablation.json); a k=3 training example is
    #: a median 669 tokens and up to 1,740 in the demo (BM25 demonstrations); with a draft on the question up to
    #: 2,052 on EHRSQL train, hence the task's sft.max_seq_len of 2560
    k: int = Field(3, ge=0, le=16)
    #: how demonstrations are found: "minilm" (bundled sentence embeddings) or "bm25" (word overlap)
    retrieval: Literal["bm25", "minilm"] = "minilm"
    #: compare questions with their values masked (numbers, and phrases that are string literals in train SQL), so
    #: the nearest demonstrations share the question's shape rather than its patient or drug (demonstrations.py)
    mask_values: bool = True
    #: add a draft to each question: the nearest demonstration's SQL with this question's values put in (when their
    #: values line up), for the model to copy or correct (demonstrations.py; docs/sql.md "Drafts")
    draft: bool = True
    max_rows: int = Field(1000, ge=1, le=1_000_000)  # bounded: a huge value would overflow every query's LIMIT
    timeout_s: float = Field(5.0, gt=0, le=600)

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        return finite(value, "threshold")


def json_cell(value: Any) -> Any:
    """A result cell as JSON can carry it: a blob becomes a short description, a non-finite number its name (JSON has
    neither, and one such cell would otherwise fail the whole response).

    >>> [json_cell(v) for v in (b"AB", float("inf"), 3, "x", None)]
    ['<blob, 2 bytes>', 'inf', 3, 'x', None]
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<blob, {len(bytes(value))} bytes>"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def check_tuned(tuned: dict[str, Any]) -> None:
    """A trained folder's tuned policy must be one this task could have written: a finite threshold >= 0 (or none)
    and a known entropy reduction; anything else is one error naming the field, never a silent load.

    >>> check_tuned({"threshold": 0.7, "entropy": "max"})
    >>> check_tuned({"threshold": float("nan")})
    Traceback (most recent call last):
    ...
    ehrforge.errors.ModelError: manifest field tuned.threshold is not a finite number >= 0 (a corrupt or edited manifest) — re-copy the folder or retrain it with `ehrforge train`
    """
    from ehrforge.errors import ModelError

    hint = "re-copy the folder or retrain it with `ehrforge train`"
    threshold = tuned.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold) or threshold < 0):
        raise ModelError("manifest field tuned.threshold is not a finite number >= 0 (a corrupt or edited manifest)", hint)
    if "entropy" in tuned and tuned["entropy"] not in ("max", "mean"):
        raise ModelError("manifest field tuned.entropy is not 'max' or 'mean' (a corrupt or edited manifest)", hint)


class SQLTask(Task):
    name = "sql"
    summary = "text-to-SQL over a MIMIC-IV-shaped EHR database with abstention (EHRSQL 2024 reliability score)"
    metric = "RS10"
    # long enough for the longest gold SQL of EHRSQL train, so no answer is cut before it is scored (docs/sql.md,
    # "Generation budget"; benchmarks/results/sql_budget.json)
    default_max_new_tokens = 384
    Options = SQLOptions
    #: the dev ablation's trained arm (docs/sql.md): LoRA on every linear layer, a moderate learning rate (a high one
    #: collapsed the student), sequences long enough for k=3 demonstrations and a draft. One sequence per micro-batch,
    #: four accumulated, every decoder layer recomputed: long k=3 batches are what blows a laptop's memory
    #: (docs/speed.md; the measurements are in benchmarks/results/sql_memory.json).
    sft_defaults = {"learning_rate": 2e-4, "lora_r": 16, "lora_alpha": 32, "lora_target_modules": list(ALL_LINEAR_LAYERS),
                    "max_seq_len": 2560, "batch_size": 1, "grad_accum": 4, "checkpoint_every": 1}
    capabilities = frozenset({Capability.DATA, Capability.RESOURCES, Capability.TUNE, Capability.DEMO, Capability.RETRIEVAL})
    #: the shipped student (docs/sql.md, "bundled-sql"); `--model bundled` asks the untrained base model
    default_model = "bundled-sql"

    def __init__(self, db: str | Path | None = None, **options: Any) -> None:
        super().__init__(db=str(db) if db is not None else None, **options)

    def setup(self) -> None:
        self._pool: Any = None
        self._pool_key: tuple[str, bool] | None = None
        # A --db that does not exist yet is fine here: `ehrforge data --db PATH` creates it, and every other verb
        # opens it in check_ready() before any model loads.

    @staticmethod
    def is_url(db: Any) -> bool:
        from ehrforge.tasks.sql.urls import is_database_url

        return is_database_url(db)

    @property
    def db(self) -> str | Path | None:
        db = self.setting("db")
        return None if db is None else db if self.is_url(db) else Path(db)

    def policy_context(self, **overrides: Any) -> PolicyContext:
        o = self.options
        values = {"db": self.db, "entropy": self.setting("entropy"), "threshold": self.setting("threshold"), "execution_filter": o.execution_filter,
                  "max_rows": o.max_rows, "timeout_s": o.timeout_s, **overrides}
        return PolicyContext(**values)

    # -- capabilities ---------------------------------------------------------------------------------------------
    def build_data(self, *, rebuild: bool = False) -> str:
        """The synthetic MIMIC-IV-shaped database, seeded with the entities the questions ask about."""
        from ehrforge.tasks.sql.recipe import ensure_database

        return str(ensure_database(self.setting("db"), self.source, rebuild=rebuild))

    def check_ready(self) -> None:
        """Open the database now (default: the cached demo one, built on first use), so a bad ``--db`` fails at
        start-up with one line instead of turning every question into an "abstention"."""
        from ehrforge.tasks.sql.execute import check_database

        if self.setting("db") is None:
            self.state = self.state.updated(db=self.build_data())
        check_database(self.db)

    def demo(self, cfg: Any, **kwargs: Any) -> dict[str, Any]:
        from ehrforge.tasks.sql.recipe import run_sql_recipe

        return run_sql_recipe(cfg, task=self, **kwargs)

    def tune(self, backend: Any, dev: Sequence[Record], *, batch_size: int = 8, label: str = "") -> Tuning | None:
        """The entropy threshold for RS(target_penalty) on ``dev`` (and its curve) as a new state; None when the
        user fixed ``threshold`` or there is no database to execute on."""
        from ehrforge.core.progress import progress_bar
        from ehrforge.tasks.sql.abstention import tune_threshold

        if self.user_set("threshold") or self.db is None:
            return None
        with progress_bar(f"{label or 'model'}: dev predictions", len(dev)) as adv:
            raw = self.predict_raw(backend, dev, batch_size=batch_size, progress=adv)
        choice = tune_threshold(self, dev, raw, self.options.target_penalty)
        report = choice.as_dict()
        return Tuning(self.state.updated(threshold=choice.threshold, curve=report["curve"]), report)

    def manifest_extras(self) -> dict[str, Any]:
        tuned: dict[str, Any] = {"threshold": self.setting("threshold"), "entropy": self.setting("entropy")}
        if self.state.get("curve") and "threshold" in self.state:
            tuned["curve"] = self.state.get("curve")
        return {"tuned": tuned, "prompt_options": {name: self.setting(name) for name in PROMPT_OPTIONS}}

    def restore(self, manifest: dict[str, Any]) -> None:
        """The tuned threshold, and the prompt the model was trained with (unless set explicitly)."""
        tuned = manifest.get("tuned") or {}
        check_tuned(tuned)
        changes: dict[str, Any] = {}
        if not self.user_set("threshold") and "threshold" in tuned and tuned.get("entropy", self.setting("entropy")) == self.setting("entropy"):
            changes.update(threshold=tuned["threshold"], curve=tuned.get("curve"))
        saved = manifest.get("prompt_options")
        if saved:
            # A model saved before demonstrations had a choice of retrieval was trained on BM25 over raw questions.
            saved = {**LEGACY_RETRIEVAL, **saved}
        for name, value in (saved or {}).items():
            if name in PROMPT_OPTIONS and not self.user_set(name):
                changes[name] = value
        self.state = self.state.updated(**changes)

    def prompt_fingerprint(self) -> str:
        options = " ".join(f"{name}={self.setting(name)}" for name in PROMPT_OPTIONS)
        return super().prompt_fingerprint() + self.system_prompt() + "\n" + options

    # -- data ---------------------------------------------------------------------------------------------------
    def load(self, split: str, *, limit: int | None = None, seed: int = 0, source: str | None = None) -> list[Record]:
        records = sql_data.load_questions(split, source or self.source)
        return sql_data.subsample(records, limit, seed)

    def system_prompt(self) -> str:
        text = PROMPTS[self.setting("prompt")].format(now=CURRENT_TIME, schema=schema_prompt())
        return text + DRAFT_INSTRUCTION if self.setting("draft") else text

    def demonstration_pool(self) -> Any:
        """The labelled train questions of ``source``, indexed as ``retrieval``/``mask_values`` say (built once per
        setting): where demonstrations and drafts come from. The bundled question set adds the shipped draft bank
        (one train question per query skeleton, ``draft_bank``): its own 400 train questions cover too few
        templates for the drafts the shipped student was trained on."""
        key = (self.setting("retrieval"), self.setting("mask_values"))
        if self._pool is None or self._pool_key != key:
            from ehrforge.tasks.sql.demonstrations import DemonstrationPool

            records, values = self.load("train"), []
            if self.source is None:
                from ehrforge.tasks.sql.draft_bank import shipped_draft_bank, with_bank

                records, values = with_bank(records, shipped_draft_bank())
            self._pool = DemonstrationPool(records, method=key[0], mask_values=key[1], values=values)
            self._pool_key = key
        return self._pool

    def retriever(self) -> Any:
        return self.demonstration_pool().retriever

    def demonstrations(self, record: Record) -> list[Record]:
        """The ``k`` nearest train questions, never the record itself (in training it is in the pool)."""
        if self.setting("k") == 0:
            return []
        return self.retriever().nearest(record["question"], self.setting("k"), exclude={str(record.get("id"))})

    def question_turn(self, record: Record, *, exclude: set[str]) -> str:
        """The question as the user turn: with its draft when drafts are on and one lines up. ``exclude``: ids whose
        SQL must not become the draft (the record itself: in training, its own gold SQL)."""
        if not self.setting("draft"):
            return record["question"]
        draft = self.demonstration_pool().draft(record["question"], exclude=exclude)
        return record["question"] if draft is None else record["question"] + DRAFT_LINE.format(sql=draft)

    def prompt(self, record: Record) -> list[Message]:
        own = str(record.get("id"))
        messages: list[Message] = [{"role": "system", "content": self.system_prompt()}]
        for demo in reversed(self.demonstrations(record)):  # the most similar one right before the question
            messages += [{"role": "user", "content": demo["question"]}, {"role": "assistant", "content": demo["sql"]}]
        # Only the asked question carries a draft: drafts on the demonstrations too made k=3 prompts up to 3,217
        # tokens (11 of 64 training examples over 2,048) and scored no better zero-shot (docs/sql.md).
        return messages + [{"role": "user", "content": self.question_turn(record, exclude={own})}]

    def target(self, record: Record) -> str:
        return record.get("sql") or ABSTAIN_TOKEN

    # -- inference ----------------------------------------------------------------------------------------------
    def parse(self, generation: Generation, record: Record) -> Prediction:
        """Model output only (no execution): ``null`` → Abstain, otherwise Answer(sql) with its uncertainty."""
        u = uncertainty(generation, self.setting("entropy"))
        confidence = math.exp(-u) if math.isfinite(u) else 0.0
        return model_said_null(Answer(clean_sql(generation.text), confidence, {"uncertainty": u}), self.policy_context())

    def apply_policy(self, pred: Prediction) -> Prediction:
        """The abstention policy (``abstention.POLICY``) on one parsed prediction."""
        return apply_policy(pred, self.policy_context())

    def run_sql(self, sql: str) -> Any:
        """Execute guarded, read-only SQL with the policy's limits; an error, guard violation or empty result comes
        back as an Abstain."""
        pred = apply_policy(Answer(sql, 1.0), self.policy_context(threshold=None, execution_filter=True))
        return pred if isinstance(pred, Abstain) else pred.evidence["result"]

    def predict_raw(self, backend: Any, records: Sequence[Record], *, batch_size: int = 8, progress: Any = None) -> list[Prediction]:
        """Generations parsed, before any abstention policy (for threshold tuning)."""
        return super().predict(backend, records, batch_size=batch_size, progress=progress)

    def predict(self, backend: Any, records: Sequence[Record], *, batch_size: int = 8, progress: Any = None) -> list[Prediction]:
        return [self.apply_policy(p) for p in self.predict_raw(backend, records, batch_size=batch_size, progress=progress)]

    def unanswerable_input(self, question: str, **context: Any) -> Abstain | None:
        """The base checks (empty, too long, missing context) plus text that is not valid UTF-8: bytes a shell
        passed undecodable (surrogate escapes) or already replaced by U+FFFD would reach the model as noise."""
        refused = super().unanswerable_input(question, **context)
        if refused is not None:
            return refused
        try:
            question.encode("utf-8")
        except UnicodeEncodeError:
            return Abstain("the question is not valid UTF-8 text: re-type it or save it as UTF-8")
        if "\ufffd" in question:
            return Abstain("the question contains undecodable bytes (U+FFFD): re-type it or save it as UTF-8")
        return None

    def ask(self, backend: Any, question: str, **_: Any) -> dict[str, Any]:
        """Answer one question end to end (the CLI ``ask`` verb and the server's ``/v1/sql/ask``)."""
        refused = self.unanswerable_input(question)
        if refused is not None:
            return reply_from_prediction(refused)
        pred = self.predict(backend, [self.ask_record(question)], batch_size=1)[0]
        if isinstance(pred, Abstain):
            return {"answer": None, "abstained": True, "reason": pred.reason, "confidence": round(pred.confidence, 4)}
        result = pred.evidence.get("result")
        if result is None and self.db is not None:  # execution filter off: still show the rows
            result = self.run_sql(pred.value)
            if isinstance(result, Abstain):
                return {"answer": {"sql": pred.value}, "abstained": True, "reason": result.reason, "confidence": round(pred.confidence, 4)}
        answer: dict[str, Any] = {"sql": pred.value}
        if result is not None:
            answer.update(columns=list(result.columns), rows=[[json_cell(v) for v in r] for r in result.rows], truncated=result.truncated)
        return {"answer": answer, "abstained": False, "reason": None, "confidence": round(pred.confidence, 4)}

    # -- scoring ------------------------------------------------------------------------------------------------
    def gold_answers(self, records: Sequence[Record]) -> dict[str, str]:
        from ehrforge.tasks.sql.score import execution_answers

        self._need_db()
        return execution_answers(self.db, {r["id"]: r.get("sql") or ABSTAIN_TOKEN for r in records}, "real")

    def score(self, records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, float]:
        from ehrforge.tasks.sql.score import execution_answers, rs_table

        self._need_db()
        real = self.gold_answers(records)
        pred = execution_answers(self.db, self._sql_of(records, predictions), "pred")
        table = rs_table(real, pred)
        # The same generations with the entropy threshold lifted (the rest of the policy still on): how good the SQL
        # itself is, apart from how the threshold trades answers for abstentions. Only held-back SQL runs again.
        held = [(r, p.withheld) for r, p in zip(records, predictions) if isinstance(p, Abstain) and p.withheld is not None]
        unthresholded = self.policy_context(threshold=None)
        lifted = [apply_policy(withheld, unthresholded) for _, withheld in held]
        lifted_answers = execution_answers(self.db, self._sql_of([r for r, _ in held], lifted), "pred")
        table["execution_accuracy_no_threshold"] = rs_table(real, {**pred, **lifted_answers})["execution_accuracy"]
        return table

    @staticmethod
    def _sql_of(records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, str]:
        return {r["id"]: (p.value if isinstance(p, Answer) else ABSTAIN_TOKEN) for r, p in zip(records, predictions)}

    def executed_answers(self, records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, str]:
        """Canonical executed answers of the predictions, as the scorer compares them (threshold tuning)."""
        from ehrforge.tasks.sql.score import execution_answers

        self._need_db()
        return execution_answers(self.db, self._sql_of(records, predictions), "pred")

    def _need_db(self) -> None:
        if self.db is None:
            from ehrforge.errors import DatabaseError

            raise DatabaseError("the sql task needs a database to score or execute", "pass --db (build the demo one with `ehrforge data --task sql`)")

    def rewards(self) -> list[RewardFn]:
        from ehrforge.tasks.sql.rewards import make_execution_reward, sql_format_reward

        return [sql_format_reward] + ([make_execution_reward(self.db)] if self.db is not None else [])
