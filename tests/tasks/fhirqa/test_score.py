"""Scoring: micro selection P/R/F1, METEOR against nltk's reference implementation, rewards."""

from __future__ import annotations

import pytest

from ehrforge.tasks.fhirqa import meteor as meteor_mod
from ehrforge.tasks.fhirqa.score import answer_meteor, meteor_reward, parse_short_ids, selection_f1_reward, selection_prf


def test_selection_is_micro_averaged() -> None:
    # q1: 1 TP, 0 FP, 3 FN; q2: 1 TP, 1 FP, 0 FN -> P = 2/3, R = 2/5
    s = selection_prf([["a", "b", "c", "d"], ["e"]], [["a"], ["e", "x"]])
    assert s["select_precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["select_recall"] == pytest.approx(2 / 5, abs=1e-4)
    assert s["select_f1"] == pytest.approx(2 * (2 / 3) * 0.4 / (2 / 3 + 0.4), abs=1e-4)
    assert selection_prf([[]], [["a"]])["select_precision"] == 0.0


def test_meteor_matches_nltk_exact_and_stem_stages() -> None:
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import meteor_score

    ref = "lisinopril 10 mg oral tablet was prescribed on 2019-05-27"
    hyp = "the patient was prescribing lisinopril tablets on 2019-05-27"
    ours = meteor_mod.meteor(ref, hyp)
    no_syn = meteor_score([ref.split()], hyp.split(), stemmer=PorterStemmer(), wordnet=meteor_mod._NoSynonyms())
    if meteor_mod.meteor_mode() == "exact+stem":
        assert ours == pytest.approx(no_syn)
    else:
        assert ours >= no_syn - 1e-9  # synonyms can only add alignments
    assert 0.3 < ours < 1.0
    assert meteor_mod.meteor(ref, ref) > 0.99


def test_meteor_mode_is_reported_and_fallback_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHRFORGE_METEOR_NO_WORDNET", "1")
    meteor_mod._wordnet.cache_clear()
    try:
        assert meteor_mod.meteor_mode() == "exact+stem"
        assert answer_meteor(["the medication was started"], ["the medicine was begun"])["meteor_wordnet"] == 0.0
        # without synonyms, medicine/medication and begun/started do not align
        assert meteor_mod.meteor("the medication was started", "the medicine was begun") == pytest.approx(0.25, abs=1e-3)
    finally:
        meteor_mod._wordnet.cache_clear()


def test_wordnet_synonyms_when_data_is_present() -> None:
    if meteor_mod.meteor_mode() != "wordnet":
        pytest.skip("no WordNet data on this machine (apt-get install wordnet-base, or set EHRFORGE_WORDNET)")
    assert meteor_mod.meteor("the medication was started", "the medicine was begun") > 0.6


def test_ids_parsing_and_rewards() -> None:
    shorts = ["0a1b2c3d", "deadbeef", "feedface"]
    assert parse_short_ids("none", shorts) == []
    assert parse_short_ids("Relevant: DEADBEEF-1234, 0a1b2c3d.", shorts) == ["0a1b2c3d", "deadbeef"]
    cands = [[{"id": s + "-full", "short": s} for s in shorts]]
    assert selection_f1_reward(["deadbeef"], candidates=cands, relevant_ids=[["deadbeef-full", "feedface-full"]]) == [pytest.approx(0.6667)]
    good, bad = meteor_reward(["Asthma since 2001.", "no idea"], answer=["Asthma since 2001.", "Asthma since 2001."])
    assert good > 0.9 and bad == 0.0
