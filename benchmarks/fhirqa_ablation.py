"""fhirqa recipe ablations on the dev patients only (never the test ones): how to train the two students.

    flock /tmp/ehrforge-heavy.lock python benchmarks/fhirqa_ablation.py        # the committed run (~30 min, 2 cores)
    python benchmarks/fhirqa_ablation.py --model tiny --ce-arms "epochs=0.1" --answer-arms "n=8" --tag tiny

Same split as ``benchmarks/fhirqa.py`` (``patient_split``): dev questions come from 2 Synthea patients no model
trains on; the test patients are not loaded into any score here, so the settings chosen from this file do not
peek at the benchmark's test figures.

* task 1, the MiniLM cross-encoder: epochs, frozen lower layers, learning rate, number of training questions.
  Score: the best dev micro F1 over thresholds (the same tuning the benchmark does), BM25's on the same dev
  questions beside it;
* task 2, the LoRA answer student, trained and scored on the *gold* resources so only the answering is measured:
  training examples and learning rate. Score: dev METEOR (CTranslate2 int8 greedy, ``--max-new-tokens``).

Arms are ``key=value`` lists separated by spaces, e.g. ``--ce-arms "epochs=2 epochs=2,frozen_layers=2"``.
Writes ``benchmarks/results/fhirqa_ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.fhirqa import RESULTS, CT2Answerer, log, patient_split  # noqa: E402 (sets the offline env first)
from benchmarks._env import device_info  # noqa: E402
from ehrforge.core.io import atomic_write_json  # noqa: E402

CE_ARMS = "epochs=0.6,frozen_layers=2 epochs=2,frozen_layers=2 epochs=2 epochs=1,n_train=1200"
ANSWER_ARMS = "n=64 n=256 n=256,lr=1e-3"


def parse_arms(text: str) -> list[dict[str, float]]:
    """``"epochs=2,frozen_layers=0 n=64"`` -> ``[{"epochs": 2.0, "frozen_layers": 0.0}, {"n": 64.0}]``.

    >>> parse_arms("epochs=2,frozen_layers=0 n=64")
    [{'epochs': 2.0, 'frozen_layers': 0.0}, {'n': 64.0}]
    """
    return [{k: float(v) for k, v in (kv.split("=", 1) for kv in arm.split(","))} for arm in text.split()]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bundled", help="bundled | tiny | a model folder (the answer student's base)")
    ap.add_argument("--n-generated", type=int, default=40)
    ap.add_argument("--test-patients", type=int, default=5)
    ap.add_argument("--dev-patients", type=int, default=2)
    ap.add_argument("--n-test", type=int, default=110)
    ap.add_argument("--n-dev", type=int, default=48)
    ap.add_argument("--n-dev-decoder", type=int, default=12)
    ap.add_argument("--n-train", type=int, default=600, help="training questions (an arm's n_train may ask for others)")
    ap.add_argument("--max-candidates", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--ce-arms", default=CE_ARMS)
    ap.add_argument("--answer-arms", default=ANSWER_ARMS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="")
    args = ap.parse_args(argv)

    import torch

    from ehrforge.core.evaluate import evaluate
    from ehrforge.core.sft import SFTSettings
    from ehrforge.tasks.fhirqa.bm25 import BM25Relevance
    from ehrforge.tasks.fhirqa.cross_encoder import MARKER, CrossEncoderRelevance, train_cross_encoder
    from ehrforge.tasks.fhirqa.relevance import relevance_pairs, tune_threshold
    from ehrforge.tasks.fhirqa.synth import _balanced_sample
    from ehrforge.tasks.fhirqa.task import FHIRQATask
    from ehrforge.tasks.fhirqa.training import train_subtask

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="fhirqa-ablation-"))
    base = args.model
    if args.model == "tiny":
        from ehrforge.core.tiny import make_tiny_chat_model

        base = str(make_tiny_chat_model(workdir / "tiny"))
    ce_arms, answer_arms = parse_arms(args.ce_arms), parse_arms(args.answer_arms)
    split = patient_split(args, workdir)
    dev, pool = split["dev"], split["pool"]  # the same seeded draw as the benchmark: n_train=600 is its training set
    ids = [[c["id"] for c in r["candidates"]] for r in dev]
    gold = [r["relevant_ids"] for r in dev]
    items = [(r["question"], [c["line"] for c in r["candidates"]]) for r in dev]
    bm25_dev = tune_threshold(ids, BM25Relevance().score_questions(items), gold)
    log(f"{len(pool)} train / {len(dev)} dev questions; bm25 dev F1 {bm25_dev['dev_f1']}")

    ce_rows = []
    for i, arm in enumerate(ce_arms):
        n = int(arm.get("n_train", args.n_train))
        train = _balanced_sample(pool, n, seed=4)
        kwargs = {k: (int(v) if k in ("frozen_layers", "max_steps", "batch_size") else v) for k, v in arm.items() if k != "n_train"}
        start = time.perf_counter()
        folder = train_cross_encoder(relevance_pairs(train), workdir / f"ce-{i}", **kwargs)
        train_s = time.perf_counter() - start
        tuned = tune_threshold(ids, CrossEncoderRelevance(folder).score_questions(items), gold)
        meta = json.loads((folder / MARKER).read_text())
        ce_rows.append({"arm": arm, "n_train_questions": len(train), "steps": meta.get("steps"), "frozen_layers": meta.get("frozen_layers"),
                        "dev_f1": tuned["dev_f1"], "threshold": tuned["threshold"], "train_s": round(train_s, 1)})
        log(f"cross-encoder {arm}: dev F1 {tuned['dev_f1']} ({train_s:.0f} s)")

    answer_task = FHIRQATask("answer", max_candidates=args.max_candidates, max_new_tokens=args.max_new_tokens)
    answer_rows = []
    answer_pool = split["train"]
    for i, arm in enumerate(answer_arms):
        recs = [r for r in _balanced_sample(answer_pool, int(arm.get("n", 64)), seed=6) if r["relevant_ids"]]
        sft = SFTSettings(epochs=arm.get("epochs", 2.0), batch_size=4, learning_rate=arm.get("lr", 3e-4), lora_r=8, lora_alpha=16,
                          max_seq_len=1024, save_steps=10_000, dtype="bfloat16")
        start = time.perf_counter()
        folder = train_subtask("answer", recs, base, workdir / f"answer-{i}", sft, task_options={"max_candidates": args.max_candidates})
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        metrics = evaluate(answer_task, {"a": CT2Answerer(str(folder), workdir, threads=args.threads)}, dev)["a"]
        answer_rows.append({"arm": arm, "n_train_examples": len(recs), "dev_meteor_gold_resources": metrics["meteor"],
                            "train_s": round(train_s, 1), "eval_s": round(time.perf_counter() - start, 1)})
        log(f"answer student {arm}: dev METEOR {metrics['meteor']} ({train_s:.0f} s)")

    best_ce = max(ce_rows, key=lambda r: r["dev_f1"]) if ce_rows else None
    best_answer = max(answer_rows, key=lambda r: r["dev_meteor_gold_resources"]) if answer_rows else None
    result = {
        "benchmark": "fhirqa_ablation",
        "command": "python benchmarks/fhirqa_ablation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": base,
        "device": device_info(),
        "data": {"dev_patients": split["dev_patients"], "n_dev": len(dev), "n_train_pool": len(pool),
                 "note": "dev patients only; the benchmark's test patients are not scored here"},
        "bm25_dev_f1": bm25_dev["dev_f1"],
        "cross_encoder": ce_rows,
        "answer_student": answer_rows,
        "best": {"cross_encoder": best_ce and best_ce["arm"], "answer_student": best_answer and best_answer["arm"]},
        "total_wall_s": round(time.perf_counter() - t0, 1),
    }
    tag = f"_{args.tag}" if args.tag else ""
    out = RESULTS / f"fhirqa_ablation{tag}.json"
    atomic_write_json(out, result)
    log(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
