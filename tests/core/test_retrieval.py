"""Demonstration retrieval: nearest records by BM25, never the query itself, deterministic on ties."""

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
