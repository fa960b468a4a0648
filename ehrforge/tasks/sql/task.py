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
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ehrforge.core.types import ABSTAIN_TOKEN, Abstain, Answer, Generation, Message, Prediction
from ehrforge.errors import DatabaseError, SQLGuardError
from ehrforge.tasks.base import Record, RewardFn, Task
from ehrforge.tasks.sql import data as sql_data
from ehrforge.tasks.sql.schema import CURRENT_TIME, schema_prompt

SYSTEM_PROMPT = """You translate questions about a MIMIC-IV hospital database into one SQLite SELECT query.
Write only the SQL. Use current_time for "now" (it is {now}).
If the question cannot be answered from this database, reply exactly: null

Tables:
{schema}"""

_FENCE = re.compile(r"```(?:sql)?\s*(.*?)(?:```|$)", re.S | re.I)


def clean_sql(text: str) -> str:
    """Pull the SQL out of a completion: code fences, 'SQL:' prefixes, trailing prose after the first ';'."""
    m = _FENCE.search(text)
    if m:
        text = m.group(1)
    text = re.sub(r"^\s*(sql|query|answer)\s*:\s*", "", text.strip(), flags=re.I)
    return text.split(";")[0].strip()


def uncertainty(gen: Generation, how: str = "max") -> float:
    """Token-entropy uncertainty of a generation (nats); 0 when the backend gives no entropies."""
    ents = gen.token_entropies or []
    if not ents:
        if gen.token_logprobs:  # HTTP backends without top-k: use surprisal of the chosen tokens instead
            ents = [-lp for lp in gen.token_logprobs]
        else:
            return 0.0
    return max(ents) if how == "max" else sum(ents) / len(ents)


@dataclass
class SQLPolicy:
    """How the raw model output becomes an answer or an abstention."""

    entropy: str = "max"
    threshold: float | None = None
    execution_filter: bool = True
    max_rows: int = 1000
    timeout_s: float = 5.0


class SQLTask(Task):
    name = "sql"
    summary = "text-to-SQL over a MIMIC-IV-shaped EHR database with abstention (EHRSQL 2024 reliability score)"
    metric = "RS10"
    max_new_tokens = 256

    def __init__(
        self,
        db: str | Path | None = None,
        *,
        source: str | None = None,
        entropy: str = "max",
        threshold: float | None = None,
        execution_filter: bool = True,
        max_rows: int = 1000,
        timeout_s: float = 5.0,
        max_new_tokens: int = 256,
    ) -> None:
        self.max_new_tokens = max_new_tokens  # gold SQL: median 109, p90 296 SmolLM2 tokens
        self.db = Path(db) if db is not None and not str(db).startswith("postgresql://") else db
        if isinstance(self.db, Path) and not self.db.exists():
            from ehrforge.errors import DatabaseError

            raise DatabaseError(f"database not found: {self.db}", "build the demo one with `ehrforge data --task sql`, or pass --db")
        self.source = source
        self.policy = SQLPolicy(entropy, threshold, execution_filter, max_rows, timeout_s)
        self._system = SYSTEM_PROMPT.format(now=CURRENT_TIME, schema=schema_prompt())

    # -- data ---------------------------------------------------------------------------------------------------
    def load(self, split: str, *, limit: int | None = None, seed: int = 0, source: str | None = None) -> list[Record]:
        records = sql_data.load_questions(split, source or self.source)
        return sql_data.subsample(records, limit, seed)

    def prompt(self, record: Record) -> list[Message]:
        return [{"role": "system", "content": self._system}, {"role": "user", "content": record["question"]}]

    def target(self, record: Record) -> str:
        return record.get("sql") or ABSTAIN_TOKEN

    # -- inference ----------------------------------------------------------------------------------------------
    def parse(self, generation: Generation, record: Record) -> Prediction:
        """Model output only (no execution): ``null`` → Abstain, otherwise Answer(sql) with its uncertainty."""
        u = uncertainty(generation, self.policy.entropy)
        confidence = math.exp(-u)
        sql = clean_sql(generation.text)
        if not sql or sql.lower().strip("'\" ") == ABSTAIN_TOKEN:
            return Abstain("the model judged the question unanswerable", confidence)
        return Answer(sql, confidence, {"uncertainty": u})

    def apply_policy(self, pred: Prediction) -> Prediction:
        """Entropy threshold then execution filter; returns an Abstain with the reason when either fires."""
        if not isinstance(pred, Answer):
            return pred
        u = pred.evidence.get("uncertainty", 0.0)
        if self.policy.threshold is not None and u > self.policy.threshold:
            return Abstain(f"uncertain: {self.policy.entropy} token entropy {u:.3f} > {self.policy.threshold:.3f}", pred.confidence)
        if self.policy.execution_filter and self.db is not None:
            result = self.run_sql(pred.value)
            if isinstance(result, Abstain):
                return Abstain(result.reason, pred.confidence)
            return Answer(pred.value, pred.confidence, {**pred.evidence, "result": result})
        return pred

    def run_sql(self, sql: str) -> Any:
        """Execute guarded, read-only SQL; an error, guard violation or empty result comes back as an Abstain."""
        from ehrforge.tasks.sql.execute import execute_readonly

        try:
            result = execute_readonly(self.db, sql, max_rows=self.policy.max_rows, timeout_s=self.policy.timeout_s)
        except SQLGuardError as exc:
            return Abstain(f"SQL rejected: {exc.message}")
        except DatabaseError as exc:
            if "not found" in exc.message:
                raise
            return Abstain(f"SQL failed: {exc.message}")
        if not result.rows:
            return Abstain("SQL returned no rows")
        return result

    def predict_raw(self, backend: Any, records: Sequence[Record], *, batch_size: int = 8, progress: Any = None) -> list[Prediction]:
        """Generations parsed, before any abstention policy (for threshold tuning)."""
        return super().predict(backend, records, batch_size=batch_size, progress=progress)

    def predict(self, backend: Any, records: Sequence[Record], *, batch_size: int = 8, progress: Any = None) -> list[Prediction]:
        return [self.apply_policy(p) for p in self.predict_raw(backend, records, batch_size=batch_size, progress=progress)]

    def ask(self, backend: Any, question: str, **_: Any) -> dict[str, Any]:
        """Answer one question end to end (the CLI ``ask`` verb and the server's ``/v1/sql/ask``)."""
        record = {"id": "ask", "question": question}
        pred = self.predict(backend, [record], batch_size=1)[0]
        if isinstance(pred, Abstain):
            return {"answer": None, "abstained": True, "reason": pred.reason, "confidence": round(pred.confidence, 4)}
        result = pred.evidence.get("result")
        if result is None and self.db is not None:  # execution filter off: still show the rows
            result = self.run_sql(pred.value)
            if isinstance(result, Abstain):
                return {"answer": {"sql": pred.value}, "abstained": True, "reason": result.reason, "confidence": round(pred.confidence, 4)}
        answer: dict[str, Any] = {"sql": pred.value}
        if result is not None:
            answer.update(columns=list(result.columns), rows=[list(r) for r in result.rows], truncated=result.truncated)
        return {"answer": answer, "abstained": False, "reason": None, "confidence": round(pred.confidence, 4)}

    # -- scoring ------------------------------------------------------------------------------------------------
    def gold_answers(self, records: Sequence[Record]) -> dict[str, str]:
        from ehrforge.tasks.sql.score import execution_answers

        self._need_db()
        return execution_answers(self.db, {r["id"]: r.get("sql") or ABSTAIN_TOKEN for r in records}, "real")

    def score(self, records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, float]:
        from ehrforge.tasks.sql.score import execution_answers, rs_table

        self._need_db()
        pred_sql = {r["id"]: (p.value if isinstance(p, Answer) else ABSTAIN_TOKEN) for r, p in zip(records, predictions)}
        real = self.gold_answers(records)
        pred = execution_answers(self.db, pred_sql, "pred")
        return rs_table(real, pred)

    def _need_db(self) -> None:
        if self.db is None:
            from ehrforge.errors import DatabaseError

            raise DatabaseError("the sql task needs a database to score or execute", "pass --db (build the demo one with `ehrforge data --task sql`)")

    def rewards(self) -> list[RewardFn]:
        from ehrforge.tasks.sql.rewards import make_execution_reward, sql_format_reward

        return [sql_format_reward] + ([make_execution_reward(self.db)] if self.db is not None else [])
