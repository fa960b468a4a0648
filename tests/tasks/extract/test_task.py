"""ExtractTask: loading, generative prompt/parse (FakeBackend), scoring through predict, rewards, options."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.core.types import Abstain, Answer, Generation
from ehrforge.errors import ConfigError, DataError
from ehrforge.tasks import get_task
from ehrforge.tasks.extract.task import ExtractTask, entity_f1_reward, json_format_reward

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "extract"
REC = {"id": "r1", "text": "Cocaine - induced seizures and cocaine abuse .",
       "entities": [{"start": 0, "end": 7, "label": "Chemical", "text": "Cocaine"},
                    {"start": 18, "end": 26, "label": "Disease", "text": "seizures"}]}


def test_registered_and_options_validated():
    task = get_task("extract", dataset="ncbi_disease")
    assert isinstance(task, ExtractTask) and task.entities == ["Disease"] and task.relation is None
    assert get_task("extract", entities="Disease,Chemical").relation.name == "CID"
    with pytest.raises(ConfigError) as err:
        ExtractTask(dataset="bc5", student="gpt")
    assert "did you mean 'bc5cdr'" in str(err.value) and "student" in str(err.value)


def test_prompt_matches_golden():
    messages = ExtractTask().prompt(REC)
    assert messages == json.loads((GOLDEN / "prompt.json").read_text())


def test_target_round_trips_through_parse():
    task = ExtractTask()
    rec = {**REC, "relations": [{"head": 0, "tail": 1, "type": "CID"}]}
    pred = task.parse(Generation(text=task.target(rec)), rec)
    assert isinstance(pred, Answer)
    assert task.score([rec], [pred])["entity_f1"] == 1.0 and task.score([rec], [pred])["relation_f1"] == 1.0


def test_parse_places_every_occurrence_and_drops_unknowns():
    task = ExtractTask()
    gen = Generation(text='{"entities": [{"text": "cocaine", "label": "Chemical"}, {"text": "fever", "label": "Disease"},'
                          ' {"text": "seizures", "label": "Symptom"}]}', token_logprobs=[-0.1, -0.3])
    pred = task.parse(gen, REC)
    assert [e["start"] for e in pred.value["entities"]] == [31]  # case-sensitive, whole word
    assert pred.evidence["dropped_mentions"] == 2
    assert 0 < pred.confidence < 1


def test_unparseable_answer_abstains():
    pred = ExtractTask().parse(Generation(text="The entities are cocaine and seizures."), REC)
    assert isinstance(pred, Abstain)


def test_predict_and_score_with_fake_backend():
    task = ExtractTask()
    backend = FakeBackend(['{"entities": [{"text": "Cocaine", "label": "Chemical"}]}', "nonsense"])
    preds = task.predict(backend, [REC, REC])
    assert "Text: Cocaine - induced seizures" in backend.prompts[0][-1]["content"]
    s = task.score([REC, REC], preds)
    assert (s["entity_precision"], s["entity_recall"], s["abstained"]) == (1.0, 0.25, 1.0)


def test_rewards_are_trl_style():
    comps = [[{"role": "assistant", "content": '{"entities": [{"text": "seizures", "label": "Disease"}]}'}], "x"]
    assert entity_f1_reward(comps, text=[REC["text"]] * 2, entities=[REC["entities"]] * 2) == [pytest.approx(2 / 3), 0.0]
    assert json_format_reward(comps) == [1.0, 0.0]
    row = ExtractTask().grpo_example(REC)
    assert {"prompt", "text", "entities"} <= set(row)


def test_load_sample_with_limit_is_reproducible():
    task = ExtractTask(dataset="sample")
    a, b = task.load("valid", limit=10, seed=1), task.load("valid", limit=10, seed=1)
    assert [r["id"] for r in a] == [r["id"] for r in b] and len(a) == 10


def test_entity_filter_remaps_relations(tmp_path):
    rec = {"text": "a b c", "entities": [{"start": 0, "end": 1, "label": "Disease"}, {"start": 2, "end": 3, "label": "Chemical"},
                                         {"start": 4, "end": 5, "label": "Disease"}],
           "relations": [{"head": 1, "tail": 2, "type": "CID"}]}
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    both = ExtractTask().load("valid", source=str(path))[0]
    assert both["relations"] == [{"head": 1, "tail": 2, "type": "CID"}]
    only_disease = ExtractTask(entities="Disease").load("valid", source=str(path))[0]
    assert len(only_disease["entities"]) == 2 and only_disease["relations"] == []


def test_test_split_is_held_out_and_missing_corpus_has_a_hint(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="held out"):
        ExtractTask().load("test")
    monkeypatch.delenv("EHRFORGE_DATA", raising=False)
    monkeypatch.setattr("ehrforge.tasks.extract.task.data_root", lambda explicit: None)
    with pytest.raises(DataError, match="dataset=sample"):
        ExtractTask().load("train")


def test_real_corpus_loads(shared_data):
    recs = ExtractTask(dataset="ncbi_disease", data_dir=str(shared_data)).load("valid")
    assert len(recs) == 923 and sum(len(r["entities"]) for r in recs) == 787


def test_base_model_must_be_an_encoder(tiny_model_dir, tiny_encoder_dir):
    task = ExtractTask()
    assert task.encoder_base("bundled") is None
    assert task.encoder_base(str(tiny_encoder_dir)) == str(tiny_encoder_dir)
    with pytest.raises(ConfigError, match="student=decoder"):
        task.encoder_base(str(tiny_model_dir))


@pytest.mark.parametrize("module", ["conll", "score", "synth", "template_teacher", "ner", "relations", "task"])
def test_doctests(module):
    import importlib

    result = doctest.testmod(importlib.import_module(f"ehrforge.tasks.extract.{module}"))
    assert result.failed == 0


def test_ask_extracts_from_free_text():
    backend = FakeBackend(['{"entities": [{"text": "lithium", "label": "Chemical"}]}'])
    reply = ExtractTask().ask(backend, "Tremor after lithium.")
    assert reply["abstained"] is False
    assert reply["answer"]["entities"] == [{"start": 13, "end": 20, "label": "Chemical", "text": "lithium"}]
