"""CLI workflows across recipes, run through the real command line (in-process) on real files and models."""

import json

from typer.testing import CliRunner

from ehrforge.cli import app

runner = CliRunner()


def _run(*args):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _json_tail(output: str) -> dict:
    return json.loads(output[output.index("{"):])


def test_classify_label_filter_review_train_eval(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EHRFORGE_PROGRESS", "0")
    _run("synth", "--task", "classify", "--out", "tables.jsonl", "--n", "40")
    stats = _json_tail(_run("label", "--task", "classify", "--teacher", "simulated:0.3", "--input", "tables.jsonl", "--out", "labelled.jsonl"))
    labelled = [json.loads(line) for line in open("labelled.jsonl")]
    assert len(labelled) == 40 and all("confidence" in r for r in labelled)
    _run("label", "filter", "--in", "labelled.jsonl", "--out", "kept.jsonl", "--review", "review.jsonl", "--min-confidence", "0.8")
    kept = [json.loads(line) for line in open("kept.jsonl")]
    queued = [json.loads(line) for line in open("review.jsonl")]
    assert len(kept) + len(queued) == 40 and all(r["confidence"] >= 0.8 for r in kept)
    # A reviewer accepts the first queued item with a corrected label.
    first = dict(queued[0])
    first["reviewed_label"] = "soe" if first["suggested_label"] != "soe" else "other"
    with open("reviewed.jsonl", "w") as fh:
        fh.write(json.dumps(first) + "\n")
    _run("label", "import-review", "--labelled", "labelled.jsonl", "--reviewed", "reviewed.jsonl", "--out", "merged.jsonl")
    merged = [json.loads(line) for line in open("merged.jsonl")]
    assert {r.get("provenance") for r in merged} >= {"teacher", "human"}
    human = [r for r in merged if r.get("provenance") == "human"]
    assert len(human) == 1 and human[0]["id"] == first["id"]
    _run("train", "--task", "classify", "--data", "kept.jsonl", "--set", "task_options.head=seqcls", "--model", "bundled", "--out", "student")
    out = _run("eval", "--task", "classify", "--model", "filtered=student", "--teacher", "simulated:0.3", "--data", "tables.jsonl", "--split", "all")
    results = _json_tail(out)
    assert set(results) == {"filtered", "teacher"} and 0 <= results["filtered"]["f1"] <= 1


def test_serve_command_starts_a_real_server_that_answers_or_abstains(tiny_model_dir, tmp_path):
    """`ehrforge serve` as a user runs it: a real process on 127.0.0.1, token auth, the SQL endpoint."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from ehrforge.tasks.sql.recipe import ensure_database

    db = ensure_database(tmp_path / "ehr.sqlite", None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = "test-token-0123456789abcdef"
    env = {**os.environ, "EHRFORGE_SERVE_TOKENS": f"tester:{token}", "EHRFORGE_HOME": str(tmp_path), "EHRFORGE_PROGRESS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ehrforge", "serve", "--model", str(tiny_model_dir), "--db", str(db), "--port", str(port),
         "--task", "sql", "--audit-log", str(tmp_path / "audit.jsonl")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError("server did not start")
        question = {"question": "How many patients were admitted in 2100?"}
        assert httpx.post(f"{base}/v1/sql/ask", json=question, timeout=30).status_code == 401
        reply = httpx.post(f"{base}/v1/sql/ask", json=question, headers={"Authorization": f"Bearer {token}"}, timeout=120).json()
        assert reply["abstained"] is True and reply["reason"]  # a random tiny model never writes runnable SQL
        audit = (tmp_path / "audit.jsonl").read_text()
        assert "question_sha256" in audit and "admitted" not in audit  # hashed, never the text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
