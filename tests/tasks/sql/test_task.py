"""SQL task: prompt (golden), parse, abstention policy and the end-to-end ask path on a real SQLite database."""

import json
import math
import os
from pathlib import Path

import pytest

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.core.types import Abstain, Answer, Generation
from ehrforge.tasks.sql.task import SQLTask, clean_sql, uncertainty

GOLDEN = Path(__file__).parents[2] / "golden" / "sql"


def test_prompt_matches_golden_file():
    task = SQLTask()
    messages = task.prompt({"id": "x", "question": "How many patients were admitted in 2100?"})
    golden = GOLDEN / "prompt.json"
    if os.environ.get("EHRFORGE_REGEN_GOLDEN"):  # regenerate deliberately, then review the diff
        golden.write_text(json.dumps(messages, indent=2) + "\n")
    assert messages == json.loads(golden.read_text())


@pytest.mark.parametrize(
    "text, expected",
    [
        ("```sql\nSELECT 1 FROM patients;\n```", "SELECT 1 FROM patients"),
        ("SQL: SELECT COUNT(*) FROM admissions; -- done", "SELECT COUNT(*) FROM admissions"),
        ("  null  ", "null"),
    ],
)
def test_clean_sql(text, expected):
    assert clean_sql(text) == expected


def test_uncertainty_max_and_mean():
    gen = Generation("SELECT", tokens=["a", "b"], token_logprobs=[-0.1, -0.2], token_entropies=[0.2, 0.6])
    assert uncertainty(gen, "max") == 0.6
    assert uncertainty(gen, "mean") == pytest.approx(0.4)
    no_ent = Generation("x", tokens=["a"], token_logprobs=[-0.5])
    assert uncertainty(no_ent) == 0.5  # falls back to surprisal


def test_parse_null_is_an_abstention_value():
    task = SQLTask()
    pred = task.parse(Generation("null", tokens=["null"], token_entropies=[0.1]), {"id": "1"})
    assert isinstance(pred, Abstain) and not pred and pred.confidence == pytest.approx(math.exp(-0.1))
    ans = task.parse(Generation("SELECT 1", tokens=["S"], token_entropies=[0.3]), {"id": "1"})
    assert isinstance(ans, Answer) and ans.evidence["uncertainty"] == 0.3


def test_entropy_threshold_abstains_with_reason():
    task = SQLTask(threshold=0.5, execution_filter=False)
    sure = FakeBackend(["SELECT COUNT(*) FROM patients"], token_logprob=math.log(0.99))
    unsure = FakeBackend(["SELECT COUNT(*) FROM patients"], token_logprob=math.log(0.6))
    rec = [{"id": "1", "question": "How many patients?"}]
    assert isinstance(task.predict(sure, rec)[0], Answer)
    pred = task.predict(unsure, rec)[0]
    assert isinstance(pred, Abstain) and "entropy" in pred.reason
