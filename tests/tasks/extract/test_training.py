"""Training and inference on a real (tiny, locally built) BERT encoder: NER + relations, resume, eval path."""

from __future__ import annotations

import json

import pytest

from ehrforge.core.io import read_jsonl
from ehrforge.core.types import Answer
from ehrforge.errors import DataError, ModelError
from ehrforge.tasks.extract.extractor import MANIFEST, EncoderExtractor, train_extractor
from ehrforge.tasks.extract.ner import EncoderConfig, NERPredictor, train_ner
from ehrforge.tasks.extract.relations import marked_text, relation_examples, train_relations
from ehrforge.tasks.extract.synth import RelationSpec, synthesize
from ehrforge.tasks.extract.task import ExtractTask

FAST = EncoderConfig(max_steps=6, batch_size=8, learning_rate=1e-3, max_len=48, save_steps=3, warmup_ratio=0.0)


@pytest.fixture(scope="module")
def notes(tmp_path_factory, sample_lexicon_teacher):
    out = tmp_path_factory.mktemp("notes") / "notes.jsonl"
    synthesize(out, teacher=sample_lexicon_teacher, n=40, seed=0)
    return read_jsonl(out).records


def test_relation_examples_mark_pairs_and_labels(notes):
    rows = relation_examples(notes, RelationSpec())
    assert rows and {r["label"] for r in rows} == {0, 1}
    assert all(r["text"].count("@") >= 2 and r["text"].count("#") >= 2 for r in rows)
    assert marked_text("a b", {"start": 2, "end": 3}, {"start": 0, "end": 1}) == "# a # @ b @"


def test_train_extractor_and_predict_through_the_task(notes, tiny_encoder_dir, tmp_path):
    out = ExtractTask(entities="Chemical,Disease", encoder=str(tiny_encoder_dir)).train(notes, None, tmp_path / "student", FAST)
    card = json.loads((out / "ehrforge_model.json").read_text())
    assert card["task"] == "extract" and card["predictor"].endswith(":EncoderExtractor")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["relation"]["name"] == "CID" and manifest["train_records"] == 40
    # the relation classifier has its own, gentler settings (the NER ones collapsed it to "unrelated")
    assert manifest["relation_config"]["epochs"] >= 3 and manifest["relation_config"]["learning_rate"] <= 2e-4
    ner_meta = json.loads((out / "ner" / "ehrforge_train.json").read_text())
    assert ner_meta["steps"] == 6 and ner_meta["train_loss"] > 0
    assert not (out / "ner.checkpoints").exists() and not (out / "ner.tmp").exists()

    task = ExtractTask()
    from ehrforge.core.loader import load_model

    model = load_model(str(out), task)
    assert isinstance(model, EncoderExtractor)
    preds = task.predict(model, notes[:10])
    assert len(preds) == 10 and all(isinstance(p, Answer) for p in preds)
    for rec, p in zip(notes[:10], preds):
        for e in p.value["entities"]:  # predicted spans are real slices of the input text
            assert rec["text"][e["start"] : e["end"]] == e["text"] and e["label"] in ("Chemical", "Disease")
        for r in p.value["relations"]:
            assert p.value["entities"][r["head"]]["label"] == "Chemical"
    scores = task.score(notes[:10], preds)
    assert 0.0 <= scores["entity_f1"] <= 1.0 and "relation_f1" in scores


def test_ner_learns_on_the_tiny_encoder(notes, tiny_encoder_dir, tmp_path):
    """Not a quality claim (see the benchmark for that): enough steps must beat an untrained head on its own data."""
    cfg = EncoderConfig(max_steps=60, batch_size=8, learning_rate=3e-3, max_len=48, save_steps=1000, warmup_ratio=0.0,
                        freeze_embeddings=False)
    path = train_ner(notes, tmp_path / "ner", entity_labels=["Chemical", "Disease"], base=str(tiny_encoder_dir), cfg=cfg)
    meta = json.loads((path / "ehrforge_train.json").read_text())
    assert meta["train_loss"] < 1.0  # starts at ln(5) ≈ 1.6 for 5 tags
    task = ExtractTask()
    preds = [Answer({"entities": ents}) for ents, _ in NERPredictor(path).predict(notes)]
    assert task.score(notes, preds)["entity_f1"] > 0.2


def test_second_run_with_same_data_is_skipped_and_other_data_retrains(notes, tiny_encoder_dir, tmp_path):
    path = train_ner(notes[:16], tmp_path / "ner", entity_labels=["Disease"], base=str(tiny_encoder_dir), cfg=FAST)
    stamp = (path / "ehrforge_train.json").stat().st_mtime_ns
    train_ner(notes[:16], tmp_path / "ner", entity_labels=["Disease"], base=str(tiny_encoder_dir), cfg=FAST)
    assert (path / "ehrforge_train.json").stat().st_mtime_ns == stamp
    train_ner(notes[:17], tmp_path / "ner", entity_labels=["Disease"], base=str(tiny_encoder_dir), cfg=FAST)
    assert json.loads((path / "ehrforge_train.json").read_text())["train_records"] == 17


def test_interrupted_training_resumes_from_checkpoint(notes, tiny_encoder_dir, tmp_path):
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise KeyboardInterrupt

    import ehrforge.tasks.extract.ner as ner_mod

    real = ner_mod.training_progress_callback
    ner_mod.training_progress_callback = lambda d: Kill()
    try:
        with pytest.raises(KeyboardInterrupt):
            train_ner(notes, tmp_path / "ner", entity_labels=["Chemical", "Disease"], base=str(tiny_encoder_dir), cfg=FAST)
    finally:
        ner_mod.training_progress_callback = real
    assert any((tmp_path / "ner.checkpoints").glob("checkpoint-3"))
    assert not (tmp_path / "ner").exists()  # no folder that looks finished
    path = train_ner(notes, tmp_path / "ner", entity_labels=["Chemical", "Disease"], base=str(tiny_encoder_dir), cfg=FAST)
    assert json.loads((path / "ehrforge_train.json").read_text())["steps"] == 6


def test_relation_training_refuses_data_without_both_classes(notes, tiny_encoder_dir, tmp_path):
    no_rel = [{**r, "relations": []} for r in notes]
    with pytest.raises(DataError, match="related"):
        train_relations(no_rel, tmp_path / "re", base=str(tiny_encoder_dir), cfg=FAST)


def test_real_corpus_without_relations_trains_ner_only(tiny_encoder_dir, tmp_path):
    task = ExtractTask(dataset="sample")
    out = task.train(task.load("train", limit=24), str(tiny_encoder_dir), tmp_path / "m", FAST)
    assert json.loads((out / MANIFEST).read_text())["relation"] is None and not (out / "relations").exists()
    assert EncoderExtractor(out).relations is None


def test_incomplete_folder_is_not_a_model(tmp_path):
    (tmp_path / "ner").mkdir()
    with pytest.raises(ModelError):
        EncoderExtractor(tmp_path)
    with pytest.raises(ModelError):
        NERPredictor(tmp_path / "ner")


@pytest.mark.slow
def test_minilm_student_learns_synthetic_notes(tmp_path, sample_lexicon_teacher):
    """The real packaged encoder on 300 synthetic notes; held-out notes must be tagged well, and the relation
    classifier (given the gold entities) must beat the trivial "every Chemical-Disease pair is related" baseline."""
    from ehrforge.tasks.extract.relations import RelationPredictor, candidate_pairs
    from ehrforge.tasks.extract.score import score_extraction

    synthesize(tmp_path / "n.jsonl", teacher=sample_lexicon_teacher, n=400, seed=5)
    notes = read_jsonl(tmp_path / "n.jsonl").records
    train, held = notes[:300], notes[300:]
    out = train_extractor(train, tmp_path / "s", entity_labels=["Chemical", "Disease"], relation=RelationSpec(),
                          cfg=EncoderConfig(epochs=3))
    task = ExtractTask()
    assert task.score(held, task.predict(EncoderExtractor(out), held))["entity_f1"] > 0.7
    spec = RelationSpec()
    gold_ents = [r["entities"] for r in held]
    rels = RelationPredictor(out / "relations").predict([r["text"] for r in held], gold_ents)
    learned = score_extraction(held, [{"entities": e, "relations": r} for e, r in zip(gold_ents, rels)])["relation_f1"]
    everything = [{"entities": e, "relations": [{"head": h, "tail": t, "type": spec.name} for h, t in candidate_pairs(e, spec)]}
                  for e in gold_ents]
    baseline = score_extraction(held, everything)["relation_f1"]
    assert learned > baseline + 0.1, (learned, baseline)


def test_decoder_student_uses_core_sft(tiny_model_dir, tmp_path):
    from ehrforge.core.sft import SFTSettings

    task = ExtractTask(dataset="sample", student="decoder")
    out = task.train(task.load("train", limit=4), str(tiny_model_dir), tmp_path / "dec",
                     SFTSettings(max_steps=2, batch_size=2, lora_r=2, save_steps=100, max_seq_len=2048))
    assert (out / "adapter_config.json").exists()
    assert json.loads((out / "ehrforge_model.json").read_text())["task"] == "extract"


def test_training_is_reproducible(notes, tiny_encoder_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    a = train_ner(notes[:16], tmp_path / "a", entity_labels=["Disease"], base=str(tiny_encoder_dir), cfg=FAST)
    b = train_ner(notes[:16], tmp_path / "b", entity_labels=["Disease"], base=str(tiny_encoder_dir), cfg=FAST)
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
