"""Demonstration retrieval: nearest records by BM25 or MiniLM embeddings, never the query itself, deterministic on ties."""

import pytest

from ehrforge.core.retrieval import Retriever

POOL = [
    {"id": "1", "question": "How many patients were admitted in 2100?"},
    {"id": "2", "question": "What is the gender of patient 10001?"},
    {"id": "3", "question": "How many patients were discharged in 2100?"},
    {"id": "4", "question": "List the drugs prescribed to patient 10001 last month"},
    {"id": "5", "question": ""},  # no text: not indexed
]


def test_nearest_ranks_by_shared_terms_and_skips_empty_texts():
    r = Retriever(POOL)
    assert len(r) == 4
    got = [x["id"] for x in r.nearest("how many patients were admitted this year", 2)]
    assert got == ["1", "3"]


def test_query_record_is_never_its_own_demonstration():
    r = Retriever(POOL)
    # the training-time case: the query is in the pool with its own id
    got = [x["id"] for x in r.nearest(POOL[0]["question"], 3, exclude={"1"})]
    assert "1" not in got and got[0] == "3" and len(got) == 3


def test_k_zero_small_pool_and_empty_pool():
    r = Retriever(POOL)
    assert r.nearest("patients", 0) == []
    assert len(r.nearest("patients", 10)) == 4  # never more than the pool holds
    assert Retriever([]).nearest("anything", 3) == []


def test_batch_matches_single_queries_and_is_deterministic():
    r = Retriever(POOL)
    queries = ["gender of patient 10001", "drugs prescribed last month"]
    many = r.nearest_many(queries, 2, exclude=[{"2"}, set()])
    assert many == [r.nearest(queries[0], 2, exclude={"2"}), r.nearest(queries[1], 2)]
    assert many == r.nearest_many(queries, 2, exclude=[{"2"}, set()])


def test_fingerprint_changes_with_the_pool():
    assert Retriever(POOL).fingerprint() == Retriever(list(POOL)).fingerprint()
    assert Retriever(POOL).fingerprint() != Retriever(POOL[:3]).fingerprint()


def test_normalize_applies_to_pool_and_query_alike():
    # masking the numbers lets the question's shape decide, not the patient and year it shares with another one
    import re

    pool = [{"id": "gender", "question": "gender of patient 10001 in 2100"},
            {"id": "age", "question": "age of patient 20002 in 2101"}]
    query = "age of patient 10001 in 2100"
    assert Retriever(pool).nearest(query, 1)[0]["id"] == "gender"
    masked = Retriever(pool, normalize=lambda text: re.sub(r"\d+", "NUM", text))
    assert masked.nearest(query, 1)[0]["id"] == "age"


def test_minilm_matches_paraphrases_bm25_cannot():
    # no word in common with the right answer but the meaning: only sentence embeddings find it
    pool = [{"id": "a", "question": "what sex is the person"}, {"id": "b", "question": "list the medicines given"}]
    query = "which drugs were administered"
    dense = Retriever(pool, method="minilm")
    assert dense.nearest(query, 1)[0]["id"] == "b"
    assert dense.nearest(query, 1, exclude={"b"})[0]["id"] == "a"
    assert dense.nearest_many([query, "gender of the patient"], 1) == [[pool[1]], [pool[0]]]
    assert dense.fingerprint() != Retriever(pool).fingerprint()  # the method is part of what a model saw


def test_unknown_method_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="bm25, minilm"):
        Retriever(POOL, method="tfidf")


def test_among_texts_that_normalize_alike_the_one_sharing_the_query_words_wins():
    import re

    pool = [{"id": "other drug", "question": "was patient 1 given aspirin"},
            {"id": "same drug", "question": "was patient 2 given heparin"}]
    shape = lambda text: re.sub(r"aspirin|heparin", "VAL", re.sub(r"\d+", "NUM", text))  # noqa: E731
    for method in ("bm25", "minilm"):
        r = Retriever(pool, method=method, normalize=shape)
        assert [x["id"] for x in r.nearest("was patient 3 given heparin", 2)] == ["same drug", "other drug"], method
