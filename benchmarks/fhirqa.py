"""fhirqa benchmark on unseen patients: task-1 selection (relevance classification) and task-2 METEOR.

    flock /tmp/ehrforge-heavy.lock python benchmarks/fhirqa.py                 # the committed run (<= 15 min, 2 cores)
    python benchmarks/fhirqa.py --model tiny --n-test 20 --tag tiny            # smoke run of every stage

Data: the 13 shared Synthea patients plus ``--n-generated`` fictional patients (``fhirqa.patients``). Test and dev
questions come from Synthea patients that no model trains on (``data.test_patients``, ``data.dev_patients``);
training uses the other Synthea patients and the generated ones. Questions include the hard templates (negation,
unanswerable, several resources, date ranges), ``--max-candidates`` lines each (half same-type distractors).

Configurations (all on the same test questions; thresholds tuned on the dev patients):

* ``bm25``: BM25 over the condensed lines (no neural model), answers by quoting the selected lines' facts. This is
  the baseline and the "teacher" column: no LLM teacher runs on this CPU; pass ``--teacher SPEC`` to add one;
* ``base``: the bundled SmolLM2-135M as shipped: log p(yes) per pair for task 1, its own answer for task 2;
* ``student``: MiniLM cross-encoder relevance student + a SmolLM2 LoRA answer student trained on the resources a
  cross-fitted cross-encoder *selected* for the training questions (not the gold ones);
* ``student_sequential``: one SmolLM2 LoRA trained on task 1 (yes/no per pair), merged, then on task 2 (same
  selected-resource inputs), used for both steps: the seed's sequential fine-tuning;
* ``student_task2_gold``: the answer student given the gold resources (the task-2-only row).

Answer generation (task 2 and the self-evaluation judges) runs on CTranslate2 int8 copies of the decoders (converted
here; ~4x faster greedy decoding on this CPU); relevance scoring (log p(yes)) runs in transformers bf16.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._machine import cpu_model  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("EHRFORGE_PROGRESS", "0")

from benchmarks._env import device_info  # noqa: E402
from ehrforge.core.memory import peak_rss_mb  # noqa: E402
from ehrforge.core.io import atomic_write_json  # noqa: E402
from ehrforge.core.types import Generation  # noqa: E402
from ehrforge.tasks.fhirqa.meteor import meteor_mode  # noqa: E402
from ehrforge.tasks.fhirqa.task import FHIRQATask  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_FHIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea_fhir_10"


def log(msg: str) -> None:
    print(f"[fhirqa {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class QuotingAnswerer:
    """The BM25 baseline's task 2 (no model): the facts of the selected lines, quoted."""

    name = "quote"

    def generate(self, batch, *, max_new_tokens=256, temperature=0.0, seed=None):
        out = []
        for messages in batch:
            body = messages[-1]["content"].partition("\n\nResources:\n")[2]
            facts = [line.split(": ", 1)[-1] for line in body.splitlines() if line.strip() and line != "(no resources)"]
            text = "; ".join(facts) + "." if facts else "I can't answer that from the record."
            out.append(Generation(text=text, tokens=text.split()))
        return out


class CT2Answerer:
    """Greedy generation with a CTranslate2 int8 copy of an HF folder or LoRA adapter (merged first)."""

    def __init__(self, spec: str, workdir: Path, *, threads: int = 1, batch_size: int = 16) -> None:
        import ctranslate2
        from transformers import AutoTokenizer

        from ehrforge.core.backends.transformers_backend import load_causal_lm
        from ehrforge.core.models import resolve_model

        path = resolve_model(spec)
        out = workdir / ("ct2-" + hashlib.sha1(str(path).encode()).hexdigest()[:10])
        if not (out / "model.bin").exists():
            import torch

            merged = workdir / (out.name + "-hf")
            model, tok = load_causal_lm(Path(path), torch.float32)
            model.save_pretrained(str(merged))
            tok.save_pretrained(str(merged))
            del model
            ctranslate2.converters.TransformersConverter(str(merged)).convert(str(out), quantization="int8", force=True)
            self.tokenizer = tok
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.generator = ctranslate2.Generator(str(out), device="cpu", intra_threads=threads, compute_type="int8")
        self.batch_size = batch_size
        self.generated_tokens = 0

    def generate(self, batch, *, max_new_tokens=256, temperature=0.0, seed=None):
        tok = self.tokenizer
        prompts = [tok.convert_ids_to_tokens(tok(tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True),
                                                 add_special_tokens=False)["input_ids"]) for m in batch]
        res = self.generator.generate_batch(prompts, max_length=max_new_tokens, sampling_topk=1, max_batch_size=self.batch_size,
                                            include_prompt_in_result=False, end_token=["<|im_end|>", tok.eos_token], return_scores=True)
        out = []
        for r, p in zip(res, prompts):
            ids = tok.convert_tokens_to_ids(r.sequences[0])
            self.generated_tokens += len(ids)
            n = max(1, len(ids))
            out.append(Generation(text=tok.decode(ids, skip_special_tokens=True).strip(), tokens=r.sequences[0],
                                  token_logprobs=[r.scores[0] / n] * len(ids) if ids else None, prompt_tokens=len(p)))
        return out


def choose_patients(ids: list[str], n_test: int, n_dev: int) -> tuple[list[str], list[str], list[str]]:
    """Test / dev / train Synthea patients by a hash of the id (reproducible, not hand-picked)."""
    ranked = sorted(ids, key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    return sorted(ranked[:n_test]), sorted(ranked[n_test : n_test + n_dev]), sorted(ranked[n_test + n_dev :])


def patient_split(args: argparse.Namespace, workdir: Path) -> dict:
    """The benchmark's questions: test and dev from Synthea patients no model trains on, train from the other
    Synthea patients plus ``args.n_generated`` generated ones (written under ``workdir``). Shared with
    ``fhirqa_ablation.py`` so ablations choose settings on exactly this dev split."""
    from ehrforge.tasks.fhirqa.fhir_load import load_fhir
    from ehrforge.tasks.fhirqa.patients import write_patients
    from ehrforge.tasks.fhirqa.synth import _balanced_sample, patient_questions, patient_record

    real = load_fhir(SHARED_FHIR, report=False)
    test_pids, dev_pids, train_real = choose_patients(real.patient_ids, args.test_patients, args.dev_patients)
    gen_dir = workdir / "generated"
    write_patients(gen_dir, args.n_generated, seed=0)
    generated = load_fhir(gen_dir, report=False)

    def questions(store, pids):
        out = []
        for pid in pids:
            out += patient_questions(pid, patient_record(store, pid), max_candidates=args.max_candidates, seed=0)
        return out

    test = _balanced_sample(questions(real, test_pids), args.n_test, seed=1)
    dev = _balanced_sample(questions(real, dev_pids), args.n_dev, seed=2)
    pool = questions(real, train_real) + questions(generated, generated.patient_ids)
    train = _balanced_sample(pool, args.n_train, seed=4)
    assert not ({r["patient_id"] for r in pool} & {r["patient_id"] for r in test + dev})
    return {"test": test, "dev": dev, "dev_decoder": _balanced_sample(dev, args.n_dev_decoder, seed=3), "train": train, "pool": pool,
            "test_patients": test_pids, "dev_patients": dev_pids, "train_real_patients": train_real}


def with_selection(records: list[dict], selections: list[list[str]]) -> list[dict]:
    """Training records for the answer student whose input is what a selector picked (gold answer kept)."""
    out = []
    for rec, ids in zip(records, selections):
        if ids:  # a question where nothing is selected abstains at inference: no answer is ever generated for it
            out.append({**rec, "relevant_ids": list(ids), "gold_relevant_ids": rec["relevant_ids"]})
    return out


def run_config(name: str, task: FHIRQATask, backend, test: list[dict], dev: list[dict] | None) -> dict:
    from ehrforge.core.evaluate import evaluate

    start = time.perf_counter()
    metrics = evaluate(task, {name: backend}, test, dev=dev, batch_size=16)[name]
    metrics["wall_s"] = round(time.perf_counter() - start, 2)
    row = {"config": name, **{k: v for k, v in metrics.items() if k != "tuned"}}
    if metrics.get("tuned"):
        row["tuned_threshold"] = metrics["tuned"]["threshold"]
        row["dev_f1"] = metrics["tuned"]["dev_f1"]
        row["dev_questions"] = metrics["tuned"]["dev_questions"]
    scorer = getattr(backend, "scorer", None)
    if scorer is not None and hasattr(scorer, "stats"):
        row["relevance_scoring"] = scorer.stats()
    log(f"{name}: F1={row.get('select_f1')} METEOR={row.get('meteor')} abstain={row.get('abstain_rate')} ({row['wall_s']} s)")
    return row


def plot_curve(points: list[dict], bm25_f1: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    xs = [p["n_train_questions"] for p in points]
    ax.plot(xs, [p["select_f1"] for p in points], marker="o", label="cross-encoder student: select F1")
    ax.axhline(bm25_f1, color="gray", linestyle="--", label="bm25 select F1")
    ax.axhline(bm25_f1 + 0.10, color="gray", linestyle=":", label="target (bm25 + 0.10)")
    ax.set_xscale("log")
    ax.set_xlabel("training questions (log scale)")
    ax.set_ylabel("select F1 on unseen patients")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bundled", help="bundled | tiny | a model folder (the decoder)")
    ap.add_argument("--teacher", default=None, help="optional teacher endpoint (e.g. openai:http://127.0.0.1:8000/v1#m)")
    ap.add_argument("--n-generated", type=int, default=40, help="fictional training patients")
    ap.add_argument("--test-patients", type=int, default=5)
    ap.add_argument("--dev-patients", type=int, default=2)
    ap.add_argument("--n-test", type=int, default=110)
    ap.add_argument("--n-dev", type=int, default=48, help="dev questions for BM25 / cross-encoder thresholds")
    ap.add_argument("--n-dev-decoder", type=int, default=12, help="dev questions for decoder thresholds (costly)")
    ap.add_argument("--n-train", type=int, default=600, help="training questions for the cross-encoder")
    ap.add_argument("--ce-epochs", type=float, default=2.0, help="cross-encoder epochs (2 of 600 questions x 8 pairs = 300 steps of 32; "
                    "chosen on the dev patients: benchmarks/results/fhirqa_ablation.json)")
    ap.add_argument("--min-ce-steps", type=int, default=30, help="fewest steps of any cross-encoder (small curve points)")
    ap.add_argument("--sizes", default="100", help="extra cross-encoder curve points (questions); half and all are always there")
    ap.add_argument("--n-train-answer", type=int, default=256, help="answer-student SFT questions (chosen on the dev patients: fhirqa_ablation.json)")
    ap.add_argument("--n-train-select-decoder", type=int, default=20, help="questions (x candidates pairs) for the sequential task-1 stage")
    ap.add_argument("--max-candidates", type=int, default=8)
    ap.add_argument("--n-selfeval", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate of the decoder students")
    ap.add_argument("--max-new-tokens", type=int, default=96, help="answer budget: 10 %% of gold answers exceed 48 tokens, <1 %% exceed 80")
    ap.add_argument("--threads", type=int, default=1, help="torch/CT2 threads (1 is faster on a shared 2-core box)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)

    import torch

    from ehrforge.core.backends import load_backend
    from ehrforge.core.loader import load_model
    from ehrforge.core.sft import SFTSettings
    from ehrforge.tasks.fhirqa.bm25 import BM25Relevance
    from ehrforge.tasks.fhirqa.cross_encoder import CrossEncoderRelevance, train_cross_encoder
    from ehrforge.tasks.fhirqa.relevance import RelevancePipeline, relevance_pairs
    from ehrforge.tasks.fhirqa.selfeval import self_evaluation
    from ehrforge.tasks.fhirqa.synth import _balanced_sample
    from ehrforge.tasks.fhirqa.training import train_subtask

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(key: str, start: float) -> None:
        timings[key] = round(time.perf_counter() - start, 2)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fhirqa-bench-"))
    if args.model == "tiny":
        from ehrforge.core.tiny import make_tiny_chat_model

        base, model_name = str(make_tiny_chat_model(workdir / "tiny")), "tiny-random-llama"
    else:
        base = args.model
        model_name = "SmolLM2-135M-Instruct (bundled)" if args.model == "bundled" else args.model

    # -- data: patient-level split -----------------------------------------------------------------------------
    start = time.perf_counter()
    split = patient_split(args, workdir)
    test, dev_all, dev_decoder, train = split["test"], split["dev"], split["dev_decoder"], split["train"]
    test_pids, dev_pids, train_real = split["test_patients"], split["dev_patients"], split["train_real_patients"]
    lap("data_s", start)
    log(f"data: {len(train)} train / {len(dev_all)} dev / {len(test)} test questions; test patients {len(test_pids)}")

    opts = {"max_candidates": args.max_candidates, "max_new_tokens": args.max_new_tokens}
    both = FHIRQATask("both", **opts)
    configs: list[dict] = []

    # -- bm25 baseline -------------------------------------------------------------------------------------------
    bm25 = RelevancePipeline(BM25Relevance(), QuotingAnswerer())
    configs.append(run_config("bm25", both, bm25, test, dev_all))

    # -- student task 1: MiniLM cross-encoder (main + size curve + cross-fitted halves) ---------------------------
    def train_ce(records, folder, epochs=args.ce_epochs):
        start = time.perf_counter()
        path = train_cross_encoder(relevance_pairs(records), workdir / folder, epochs=epochs, card={"task": "fhirqa"})
        lap(f"train_{folder}_s", start)
        return CrossEncoderRelevance(path)

    ce = train_ce(train, "ce-main")
    select_task = FHIRQATask("select", **opts)
    # cross-fitting: the answer student's inputs are selected by a cross-encoder trained on *other* patients (half A
    # of the training patients), for questions of half B; that half-A model is also a point of the size curve
    half_a = [r for r in train if int(hashlib.sha256(r["patient_id"].encode()).hexdigest(), 16) % 2 == 0]
    in_a = {r["id"] for r in half_a}
    half_b = [r for r in train if r["id"] not in in_a]
    ce_half = train_ce(half_a, "ce-half-a", epochs=max(args.ce_epochs, args.min_ce_steps * 32 / len(relevance_pairs(half_a))))
    row = run_config(f"ce-{len(half_a)}", select_task, ce_half, test, dev_all)
    curve = [{"n_train_questions": len(half_a), "select_f1": row["select_f1"], "tuned_threshold": row.get("tuned_threshold")}]
    answer_pool = _balanced_sample(half_b, args.n_train_answer, seed=6)
    select_task.state = select_task.tune(ce_half, dev_all).state
    selected = {r["id"]: s.value for r, s in zip(answer_pool, select_task.select(ce_half, [(r["question"], r["candidates"]) for r in answer_pool]))}
    select_task.state = select_task.state.updated(threshold=None)
    answer_train = with_selection(answer_pool, [selected.get(r["id"], []) for r in answer_pool])
    sel_exact = sum(set(r["relevant_ids"]) == set(r["gold_relevant_ids"]) for r in answer_train)
    tag = f"_{args.tag}" if args.tag else ""
    partial = RESULTS / f"fhirqa_partial{tag}.json"

    def save_partial() -> None:  # a run cut short still leaves what it measured (removed when the run completes)
        atomic_write_json(partial, {"benchmark": "fhirqa", "partial": True, "configs": configs, "timings": timings,
                                    "test_patients": test_pids, "n_test": len(test)})

    save_partial()

    def decoder(spec: str):
        return load_backend(f"transformers:{spec}" if spec != "bundled" else "bundled", dtype="bfloat16", batch_size=16)

    # -- student task 2: answer LoRA on selected resources; then the student pipeline ---------------------------
    sft = SFTSettings(epochs=2.0, batch_size=4, learning_rate=args.lr, lora_r=8, lora_alpha=16, max_seq_len=1024,
                      save_steps=10_000, dtype="bfloat16")
    answer_opts = {"max_candidates": args.max_candidates}
    start = time.perf_counter()
    answer_dir = train_subtask("answer", answer_train, base, workdir / "answer", sft, task_options=answer_opts)
    lap("train_answer_s", start)
    start = time.perf_counter()
    answer_ct2 = CT2Answerer(str(answer_dir), workdir, threads=args.threads)
    lap("ct2_convert_answer_s", start)
    configs.append(run_config("student", both, RelevancePipeline(ce, answer_ct2), test, dev_all))
    save_partial()

    # -- sequential: task 1 (yes/no pairs) then task 2 on top, one model for both steps ---------------------------
    seq_select_records = _balanced_sample(train, args.n_train_select_decoder, seed=7)
    start = time.perf_counter()
    seq_select_dir = train_subtask("select", seq_select_records, base, workdir / "seq-select",
                                   SFTSettings(**{**sft.model_dump(), "epochs": 1.0}), task_options=answer_opts)
    lap("train_seq_select_s", start)
    start = time.perf_counter()
    seq_dir = train_subtask("answer", answer_train, str(seq_select_dir), workdir / "seq-answer", sft, task_options=answer_opts)
    lap("train_seq_answer_s", start)
    start = time.perf_counter()
    seq_ct2 = CT2Answerer(str(seq_dir), workdir, threads=args.threads)
    lap("ct2_convert_seq_s", start)
    seq_hf = decoder(str(seq_dir))
    configs.append(run_config("student_sequential", both, RelevancePipeline(seq_hf, seq_ct2), test, dev_decoder))
    del seq_hf
    save_partial()

    # -- base: the bundled model as shipped, both steps -----------------------------------------------------------
    start = time.perf_counter()
    base_ct2 = CT2Answerer(base, workdir, threads=args.threads)
    lap("ct2_convert_base_s", start)
    base_hf = decoder(base)
    configs.append(run_config("base", both, RelevancePipeline(base_hf, base_ct2), test, dev_decoder))
    del base_hf
    save_partial()

    gold_task = FHIRQATask("answer", **opts)
    row = run_config("student_task2_gold", gold_task, answer_ct2, test, None)
    row["note"] = "task 2 only: the answer student given the gold resources (select F1 is 1 by construction)"
    configs.append(row)
    for n in sorted({int(s) for s in args.sizes.split(",") if s}):
        if n < len(half_a):
            sub = _balanced_sample(train, n, seed=5)
            # small sets get more epochs so every curve point trains at least min_ce_steps steps
            epochs = max(args.ce_epochs, args.min_ce_steps * 32 / max(1, len(relevance_pairs(sub))))
            row = run_config(f"ce-{n}", select_task, train_ce(sub, f"ce-{n}", epochs), test, dev_all)
            curve.append({"n_train_questions": n, "select_f1": row["select_f1"], "tuned_threshold": row.get("tuned_threshold")})
    save_partial()
    if args.teacher:
        configs.append(run_config("teacher", both, load_model(args.teacher, both), test, dev_all))
    for row in configs:
        if row["config"] in ("bm25", "student", "student_sequential", "base"):
            row["kind"] = {"bm25": "baseline (BM25 + quoted facts; no model)", "base": "bundled model as shipped",
                           "student": "MiniLM cross-encoder + SmolLM2 LoRA answer student",
                           "student_sequential": "SmolLM2 LoRA task 1 then task 2 (one model)"}[row["config"]]

    # -- self-evaluation: base and answer student grade their own and each other's answers (gold resources) -------
    start = time.perf_counter()
    se_records = [r for r in test if r["relevant_ids"]][: args.n_selfeval]
    selfeval = self_evaluation(gold_task, {"base": base_ct2, "student": answer_ct2}, se_records)
    lap("selfeval_s", start)

    by = {r["config"]: r for r in configs}
    targets = {
        "select_f1_student_minus_bm25": round(by["student"]["select_f1"] - by["bm25"]["select_f1"], 4),
        "select_f1_target_met": by["student"]["select_f1"] >= by["bm25"]["select_f1"] + 0.10,
        "meteor_student_minus_bm25": round(by["student"]["meteor"] - by["bm25"]["meteor"], 4),
        "meteor_target_met": by["student"]["meteor"] >= by["bm25"]["meteor"],
        "sequential_minus_separate": {k: round(by["student_sequential"][k] - by["student"][k], 4) for k in ("select_f1", "meteor")},
    }
    seq_d = targets["sequential_minus_separate"]
    targets["sequential_direction"] = (
        f"sequential is {'better' if seq_d['select_f1'] > 0 else 'worse' if seq_d['select_f1'] < 0 else 'no different'} at selection ({seq_d['select_f1']:+.3f} F1) and "
        f"{'better' if seq_d['meteor'] > 0 else 'worse' if seq_d['meteor'] < 0 else 'no different'} at answering ({seq_d['meteor']:+.3f} METEOR) than the separate students"
    )
    curve.append({"n_train_questions": len(train), "select_f1": by["student"]["select_f1"], "tuned_threshold": by["student"].get("tuned_threshold")})
    curve.sort(key=lambda p: p["n_train_questions"])
    png = RESULTS / f"fhirqa_size_curve{tag}.png"
    plot_curve(curve, by["bm25"]["select_f1"], png, f"fhirqa task 1 on {len(test_pids)} unseen Synthea patients, {len(test)} questions")
    result = {
        "benchmark": "fhirqa",
        "command": "python benchmarks/fhirqa.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": model_name,
        "device": {**device_info(), "cpu_model": cpu_model()},
        "data": {
            "fhir_source": str(SHARED_FHIR),
            "generated_patients": args.n_generated,
            "test_patients": test_pids,
            "dev_patients": dev_pids,
            "train_real_patients": train_real,
            "n_train": len(train), "n_dev": len(dev_all), "n_dev_decoder": len(dev_decoder), "n_test": len(test),
            "n_train_answer": len(answer_train), "answer_train_selection_exact": sel_exact,
            "n_train_select_decoder_pairs": len(relevance_pairs(seq_select_records)),
            "test_categories": {c: sum(r["category"] == c for r in test) for c in sorted({r["category"] for r in test})},
            "test_no_relevant": sum(not r["relevant_ids"] for r in test),
            "mean_candidates": round(sum(len(r["candidates"]) for r in test) / len(test), 2),
            "mean_relevant": round(sum(len(r["relevant_ids"]) for r in test) / len(test), 2),
        },
        "meteor_mode": meteor_mode(),
        "config": {**vars(args), "sft": sft.model_dump()},
        "configs": configs,
        "targets": targets,
        "size_curve": curve,
        "size_curve_png": str(png.relative_to(RESULTS.parent.parent)),
        "selfeval": selfeval,
        "timings": timings,
        "total_wall_s": round(time.perf_counter() - t0, 1),
        "cpu_user_s": round(resource.getrusage(resource.RUSAGE_SELF).ru_utime, 1),
        "load_average_at_end": list(os.getloadavg()),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    out = RESULTS / f"fhirqa{tag}.json"
    atomic_write_json(out, result)
    partial.unlink(missing_ok=True)
    log(f"wrote {out} in {result['total_wall_s']} s; targets {targets}")
    return result


if __name__ == "__main__":
    main()
