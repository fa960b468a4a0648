"""Selective fine-tuning on confident teacher labels (the ``classify`` recipe), measured end to end over HTTP.

Every teacher call goes through the real path a hospital uses: ``OpenAIBackend`` -> HTTP on 127.0.0.1 -> ehrforge's own
server (``build_app`` + uvicorn, bearer token, log-probs) -> the model behind it. Behind the endpoint:

* the **simulated teacher (stand-in)** - ``RealisticTeacher`` in ``ehrforge/tasks/classify/simulated_teacher.py``,
  a controlled-noise model (about 25 % errors, leaning to "yes" on look-alikes, confidence informative but imperfect;
  its ECE is measured and reported). Two of them (different seeds) for two-teacher agreement; k=5 sampled answers
  for self-consistency. All headline rows use it: no strong LLM is reachable offline.
* the bundled **SmolLM2-135M-Instruct** (a real, weak local model) zero-shot on ``--real-n`` test tables, with its
  real label-token probabilities, to show the same code path on a real model.

Configurations, P/R/F1 for the SoE class on the held-out synthetic test split:
teacher zero-shot; student on all teacher labels; student on the filtered labels (strategy chosen on the gold dev
split by a proxy student, ``ehrforge/tasks/classify/selective.py``); student on gold labels (ceiling). Students:
sequence-classification head on the bundled MiniLM encoder, the same number of optimisation steps each.
The review queue order (expected value of a human label) is compared with confidence order and record order by the
teacher errors a reviewer meets in the first ``--review-budget`` rows.

    flock /tmp/ehrforge-heavy.lock python benchmarks/classify_selective.py          # ~10 min on 2 shared cores
    python benchmarks/classify_selective.py --quick                                  # smoke run, tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("EHRFORGE_PROGRESS", "0")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._machine import cpu_model  # noqa: E402
from ehrforge.core.memory import peak_rss_mb  # noqa: E402

from benchmarks._env import device_info
from benchmarks._teacher_server import http_teacher
from ehrforge.core.calibration import calibration_summary, reliability_diagram
from ehrforge.core.io import atomic_write_json, read_jsonl
from ehrforge.core.training import train as train_task
from ehrforge.core.label import label_records
from ehrforge.core.types import Abstain, Answer
from ehrforge.tasks.classify import selective
from ehrforge.tasks.classify.seqcls import SeqClsBackend, SeqClsConfig
from ehrforge.tasks.classify.simulated_teacher import RealisticTeacher
from ehrforge.tasks.classify.task import ClassifyTask, precision_recall_f1

STAND_IN = "simulated teacher (stand-in)"


def noise_rate(records: list[dict]) -> float:
    labelled = [r for r in records if r.get("label") is not None]
    return round(sum(r["label"] != r["gold"] for r in labelled) / len(labelled), 4) if labelled else 0.0


class Clock:
    """Wall and CPU seconds per phase."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}

    def __call__(self, name: str):
        clock = self

        class _Phase:
            def __enter__(self):
                self.w, self.c = time.perf_counter(), time.process_time()

            def __exit__(self, *exc):
                clock.phases[name] = {"wall_s": round(time.perf_counter() - self.w, 1),
                                      "cpu_s": round(time.process_time() - self.c, 1)}

        return _Phase()


def calib(records: list[dict]) -> dict:
    answered = [r for r in records if r.get("label") is not None]
    out = calibration_summary([r["confidence"] for r in answered], [r["label"] == r["gold"] for r in answered])
    out.pop("bins")
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def label_via_http(task, client, records, path: Path, **kw) -> list[dict]:
    label_records(task, client, records, path, progress=False, **kw)
    return read_jsonl(path).records


def real_model_rows(task: ClassifyTask, test: list[dict], n: int, work: Path, clock: Clock) -> dict:
    """SmolLM2-135M behind the same HTTP endpoint, zero-shot, real label-token probabilities."""
    from ehrforge.core.backends import load_backend

    sub = test[:n]
    with clock("real_model_load"):
        lm = load_backend("bundled")
    with clock("real_model_zero_shot"), http_teacher(lm, model_name="smollm2-135m") as client:
        got = label_via_http(task, client, sub, work / "smollm.jsonl", retries=0, method="logprob")
    preds = [Answer(r["label"]) if r["label"] else Abstain("no label") for r in got]
    answered = [r for r in got if r["label"] is not None]
    return {"teacher": "SmolLM2-135M-Instruct (bundled, real local model) via HTTP", "n": len(sub),
            "scores": task.score(sub, preds), "unlabelled": len(got) - len(answered),
            "answered_yes_share": round(selective.positive_share(answered), 4), "calibration": calib(got)}


def direction(f1: dict[str, float]) -> dict[str, bool]:
    """The issue's three targets over one set of rows."""
    return {"filtered_beats_unfiltered": f1["student_filtered_labels"] > f1["student_all_teacher_labels"],
            "unfiltered_beats_teacher": f1["student_all_teacher_labels"] > f1["teacher_zero_shot"],
            "filtered_within_0.05_of_gold": f1["student_gold_labels"] - f1["student_filtered_labels"] <= 0.05}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--n-dev", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.25, help="the simulated teacher's greedy error rate")
    ap.add_argument("--samples", type=int, default=5, help="k for the self-consistency labelling")
    ap.add_argument("--steps", type=int, default=45, help="optimisation steps per student (same for all)")
    ap.add_argument("--max-len", type=int, default=96)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--review-budget", type=int, default=50)
    ap.add_argument("--real-n", type=int, default=24, help="test tables for the SmolLM2 real-model row (0: skip)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads; 1 is fastest on a shared, busy 2-core CPU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/classify_selective.json"))
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.n_dev, args.n_test, args.steps, args.real_n, args.samples = 60, 40, 40, 3, 0, 3

    import torch

    torch.set_num_threads(args.threads)
    clock = Clock()
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    out_path = Path(args.out)
    png = out_path.with_name(out_path.stem + "_reliability.png")
    work = Path(tempfile.mkdtemp(prefix="classify-selective-"))
    task = ClassifyTask(n_train=args.n_train, n_valid=args.n_dev, n_test=args.n_test)
    train, dev, test = (task.load(s, seed=args.seed) for s in ("train", "valid", "test"))
    known = train + dev + test
    teacher_a = RealisticTeacher(known, noise_rate=args.noise, seed=args.seed, task=task)
    teacher_b = RealisticTeacher(known, noise_rate=args.noise, seed=args.seed + 1, task=task)

    results: dict[str, dict] = {}
    with http_teacher(teacher_a, model_name="stand-in-a") as a, http_teacher(teacher_b, model_name="stand-in-b") as b:
        with clock("teacher_labelling_http"):
            greedy = label_via_http(task, a, train, work / "train.greedy.jsonl", method="logprob")
            dev_lab = label_via_http(task, a, dev, work / "dev.greedy.jsonl", method="logprob")
            two = label_via_http(task, a, train, work / "train.two.jsonl", method="agreement", second_teacher=b)
            ksam = label_via_http(task, a, train, work / "train.k.jsonl", method="consistency", samples=args.samples)
        with clock("teacher_zero_shot_http"):
            teacher_test = task.predict(a, test)
            results["teacher_zero_shot"] = task.score(test, teacher_test)
            # (dev, test) predictions of every row, for the operating point chosen on dev gold below
            predictions = {"teacher_zero_shot": (task.predict(a, dev), teacher_test)}
        teacher_calls = teacher_a.calls + teacher_b.calls

    with clock("choose_on_dev"):
        calibrators = selective.fit_label_calibrators(dev_lab)
        views = {"greedy": greedy, "two_teachers": two, "k_samples": ksam}
        choice = selective.choose_on_dev(views, dev, calibrators, dev_labelled=dev_lab)
        best = choice["best"]
        chosen_view = views[best["labelling"]]
        keep = selective.select_candidate(chosen_view, best, calibrators)
        kept = [r for r, k in zip(chosen_view, keep) if k]

    # Review queue: the left-out records in three orders; what a reviewer finds in the first rows.
    rng = random.Random(args.seed)
    left = [i for i, k in enumerate(keep) if not k]
    orders = {
        "expected_value": selective.review_order(chosen_view, keep, calibrators),
        "lowest_confidence_first": sorted(left, key=lambda i: (float(chosen_view[i]["confidence"]), i)),
        "record_order": left,
        "random": rng.sample(left, len(left)),
    }
    budget = min(args.review_budget, len(left))
    review = {"queue_size": len(left), "budget": budget, "teacher_errors_in_queue": sum(chosen_view[i]["label"] != chosen_view[i]["gold"] for i in left),
              "errors_found_in_first_rows": {k: selective.errors_found(chosen_view, o, budget) for k, o in orders.items()},
              "minority_label_share_in_first_rows": {
                  k: round(sum(chosen_view[i]["gold"] == "other" for i in o[:budget]) / max(1, budget), 4) for k, o in orders.items()}}

    calibration = reliability_diagram([r["confidence"] for r in greedy], [r["label"] == r["gold"] for r in greedy], png,
                                      title=f"{STAND_IN}, train labels")
    calibration.pop("bins")

    cfg = SeqClsConfig(max_steps=args.steps, max_len=args.max_len, learning_rate=args.lr, seed=args.seed)
    students = {
        "student_all_teacher_labels": (ClassifyTask(head="seqcls"), greedy),
        "student_filtered_labels": (ClassifyTask(head="seqcls"), kept),
        "student_gold_labels": (ClassifyTask(head="seqcls", label_field="gold"), train),
    }
    for name, (stask, recs) in students.items():
        with clock(f"train_{name}"):
            folder = train_task(stask, recs, "minilm", work / name, cfg)
        with clock(f"eval_{name}"):
            backend = SeqClsBackend(folder)
            predictions[name] = (task.predict(backend, dev, batch_size=32), task.predict(backend, test, batch_size=32))
            results[name] = task.score(test, predictions[name][1])
        results[name]["train_records"] = len(stask.trainable(recs))
        print(f"{name}: F1 {results[name]['f1']:.3f}", flush=True)

    # The same rows at a decision threshold on P(SoE) chosen on the gold dev split (the split that already chooses the
    # filter): a student of a teacher that says "yes" to look-alikes inherits its prior at the argmax rule.
    at_dev_threshold = {}
    dev_gold, test_gold = [task.reference(r) for r in dev], [task.reference(r) for r in test]
    for name, (dev_preds, test_preds) in predictions.items():
        threshold = selective.decision_threshold([selective.positive_probability(p) for p in dev_preds], dev_gold)
        labels = selective.apply_threshold([selective.positive_probability(p) for p in test_preds], threshold)
        at_dev_threshold[name] = {**precision_recall_f1(test_gold, labels), "threshold": round(threshold, 6)}
    f1_thr = {k: round(v["f1"], 4) for k, v in at_dev_threshold.items()}

    real = real_model_rows(task, test, args.real_n, work, clock) if args.real_n > 0 else None

    f1 = {k: round(v["f1"], 4) for k, v in results.items()}
    rows = {"teacher_zero_shot": f"{STAND_IN}, zero-shot via HTTP",
            "student_all_teacher_labels": f"MiniLM student on all {STAND_IN} labels",
            "student_filtered_labels": f"MiniLM student on filtered {STAND_IN} labels ({best['labelling']}, {best['strategy']} {best['param']}{' + ' + best['clean'] if best.get('clean') else ''})",
            "student_gold_labels": "MiniLM student on gold labels (ceiling)"}
    report = {
        "benchmark": "classify_selective",
        "teacher": f"{STAND_IN}: RealisticTeacher (noise {args.noise}), served over HTTP by ehrforge's own server",
        "command": "python benchmarks/classify_selective.py " + " ".join(sys.argv[1:]),
        "device": {**device_info(), "cpu_model": cpu_model(), "load_average_at_start": load_at_start},
        "config": {**vars(args), "student": "seqcls head on MiniLM-L6 (LoRA r=8 on top 3 layers + head, merged), same step count for all",
                   "seqcls": cfg.__dict__},
        "table": {rows[k]: f1[k] for k in rows},
        "sizes": {"train": len(train), "dev": len(dev), "test": len(test), "kept": len(kept), "review_queue": len(left)},
        "f1": f1,
        "results": results,
        "chosen_on_dev": {"best": best, "candidates": choice["candidates"],
                          "selector": "proxy student (naive Bayes over words) trained on each candidate's kept train labels, F1 on dev gold; "
                                      "ties (2 decimals) go to the lower label noise the candidate's filter keeps on the teacher-labelled dev split"},
        "label_noise": {"all_teacher_labels": noise_rate(greedy), "filtered": noise_rate(kept),
                        "two_teachers_view": noise_rate(two), "k_samples_view": noise_rate(ksam)},
        "fraction_kept": round(len(kept) / len(train), 4),
        "positive_share": {"gold": round(selective.positive_share(train, "gold"), 4),
                           "teacher_all": round(selective.positive_share(greedy), 4), "kept": round(selective.positive_share(kept), 4)},
        "mean_difficulty": {"train": round(sum(r["difficulty"] for r in train) / len(train), 4),
                            "kept": round(sum(r["difficulty"] for r in kept) / max(1, len(kept)), 4)},
        "teacher_calibration_train": {**calibration, "note": f"{STAND_IN}; ECE measured on its train labels"},
        "teacher_calibration_dev": calib(dev_lab),
        "review_queue": review,
        "real_model_zero_shot": real,
        "teacher_calls": teacher_calls,
        "direction": direction(f1),
        "results_at_dev_threshold": at_dev_threshold,
        "f1_at_dev_threshold": f1_thr,
        "direction_at_dev_threshold": direction(f1_thr),
        "phases": clock.phases,
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(time.process_time(), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "reliability_png": str(png.relative_to(ROOT)) if png.is_relative_to(ROOT) else str(png),
    }
    atomic_write_json(out_path, report)
    print(json.dumps({k: report[k] for k in ("table", "label_noise", "fraction_kept", "direction", "f1_at_dev_threshold",
                                            "direction_at_dev_threshold", "wall_s", "cpu_s")}, indent=1))


if __name__ == "__main__":
    main()
