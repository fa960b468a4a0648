"""fhirqa benchmark: task-1 selection P/R/F1 and task-2 METEOR for base vs fine-tuned vs a teacher stand-in, a
training-size curve (PNG) and the self-evaluation experiment.

    python benchmarks/fhirqa.py --model tiny                       # smoke run of every stage (~1-2 min CPU)
    nice -n 10 python benchmarks/fhirqa.py --model bundled         # SmolLM2-135M on CPU, small subsample
    python benchmarks/fhirqa.py --model bundled --n-train 400 --sizes 50,100,200,400 --n-eval 100 --epochs 2  # GPU

Configurations (each evaluated on the same valid questions):

* ``base``: the model as shipped, prompted for both tasks;
* ``ft-separate``: one LoRA per task (task 1 adapter for selection, task 2 adapter for answering);
* ``ft-sequential``: task 1 LoRA, merged, then task 2 LoRA on top; scored on both tasks (does it still select?);
* ``teacher-standin-lexical``: no LLM teacher can run on this CPU within budget, so a transparent non-neural
  reference stands in: it selects lines sharing a content word with the question and answers by quoting them.

Task 2 is scored from the *gold* relevant resources (the paper's setting); ``e2e_meteor`` in ``ft-sequential`` is
the two-step pipeline (its own selection, then its answer). Writes ``benchmarks/results/fhirqa[_<tag>].json`` and
``fhirqa_size_curve[_<tag>].png``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("EHRFORGE_PROGRESS", "0")

from benchmarks._env import device_info  # noqa: E402
from ehrforge.core.io import atomic_write_json  # noqa: E402
from ehrforge.core.types import Generation  # noqa: E402
from ehrforge.tasks.fhirqa.meteor import meteor_mode  # noqa: E402
from ehrforge.tasks.fhirqa.task import FHIRQATask  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_FHIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea_fhir_10"
STOP = set("a an the of is was were what which when did does do how has have had patient patient's the in on for to any ever given most recent last first still currently taking value record".split())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class LexicalStandIn:
    """Teacher stand-in without a neural model: word overlap for selection, quoting for answers."""

    name = "lexical"

    def generate(self, batch, *, max_new_tokens=256, temperature=0.0, seed=None):
        out = []
        for messages in batch:
            user = messages[-1]["content"]
            question, _, body = user.partition("\n\nResources:\n")
            words = {w for w in re.findall(r"[a-z0-9]+", question.lower()) if w not in STOP and len(w) > 2}
            lines = [line for line in body.splitlines() if line.strip()]
            if messages[0]["content"].startswith("You find"):
                hits = [line.split(" ", 1)[0] for line in lines if words & set(re.findall(r"[a-z0-9]+", line.lower().split(":", 1)[-1]))]
                text = ", ".join(hits) or "none"
            else:
                facts = [line.split(": ", 1)[-1] for line in lines if line != "(no resources)"]
                text = "; ".join(facts) + "." if facts else "I can't answer that from the record."
            out.append(Generation(text=text, tokens=text.split()))
        return out


def evaluate_config(name: str, select_backend, answer_backend, sel_task, ans_task, records, *, e2e_task=None) -> dict:
    row: dict = {"config": name}
    start = time.perf_counter()
    row.update(sel_task.score(records, sel_task.predict(select_backend, records)))
    wall = time.perf_counter() - start
    row["select_wall_s"] = round(wall, 3)
    row["select_examples_per_s"] = round(len(records) / wall, 3)  # from the unrounded wall time
    start = time.perf_counter()
    ans = ans_task.score(records, ans_task.predict(answer_backend, records))
    wall = time.perf_counter() - start
    row["answer_wall_s"] = round(wall, 3)
    row["answer_examples_per_s"] = round(len(records) / wall, 3)
    row["meteor"] = ans["meteor"]
    row["answer_abstain_rate"] = ans["abstain_rate"]
    if e2e_task is not None:
        start = time.perf_counter()
        e2e = e2e_task.score(records, e2e_task.predict(answer_backend, records))
        row["e2e_meteor"] = e2e["meteor"]
        row["e2e_select_f1"] = e2e["select_f1"]
        row["e2e_wall_s"] = round(time.perf_counter() - start, 2)
    row["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(f"[fhirqa] {name}: F1={row['select_f1']} METEOR={row['meteor']} ({row['select_wall_s']}+{row['answer_wall_s']} s)", flush=True)
    return row


def plot_curve(points: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    xs = [p["n_train"] for p in points]
    ax.plot(xs, [p["select_f1"] for p in points], marker="o", label="task 1 selection F1")
    ax.plot(xs, [p["meteor"] for p in points], marker="s", label="task 2 METEOR")
    ax.set_xlabel("training questions")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bundled", help="bundled | tiny | a model folder")
    ap.add_argument("--data", default=None, help="FHIR source (default: ../shared Synthea export if present, else the bundled subset)")
    ap.add_argument("--n-train", type=int, default=32)
    ap.add_argument("--sizes", default="8,32", help="training-size curve points (questions); 0 = base is always added")
    ap.add_argument("--n-eval", type=int, default=12)
    ap.add_argument("--n-selfeval", type=int, default=6)
    ap.add_argument("--max-candidates", type=int, default=6)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--dtype", default="bfloat16", help="training and inference dtype on CPU (bf16 ≈ 2× fp32 here)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads; on a shared 2-core box 1 thread was 6x faster than 2 (oversubscription)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)

    from ehrforge.core.backends import load_backend
    from ehrforge.core.sft import SFTSettings
    from ehrforge.tasks.fhirqa.selfeval import self_evaluation
    from ehrforge.tasks.fhirqa.training import train_subtask

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fhirqa-bench-"))
    if args.model == "tiny":
        from ehrforge.core.tiny import make_tiny_chat_model

        base = str(make_tiny_chat_model(workdir / "tiny"))
        model_name = "tiny-random-llama"
    else:
        base = args.model
        model_name = "SmolLM2-135M-Instruct (bundled)" if args.model == "bundled" else args.model
    data = args.data or (str(SHARED_FHIR) if SHARED_FHIR.exists() else None)
    opts = {"data": data, "max_candidates": args.max_candidates, "context_tokens": 1024}
    sel_task, ans_task, e2e_task = FHIRQATask("select", **opts), FHIRQATask("answer", **opts), FHIRQATask("both", **opts)
    for t in (sel_task, ans_task, e2e_task):
        t.max_new_tokens = args.max_new_tokens
    train_all = sel_task.load("train", limit=max([args.n_train] + [int(s) for s in args.sizes.split(",") if s]), seed=0)
    evals = sel_task.load("valid", limit=args.n_eval, seed=0)
    device = "cpu"
    cfg_kwargs = dict(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, lora_r=8, lora_alpha=16, max_seq_len=1024, save_steps=10_000, dtype=args.dtype)
    backend_opts = {"dtype": args.dtype, "batch_size": 8}

    def backend(path: str):
        return load_backend(f"transformers:{path}" if path != "bundled" else "bundled", **backend_opts)

    timings: dict[str, float] = {}
    start = time.perf_counter()
    base_backend = backend(base)
    timings["load_base_s"] = round(time.perf_counter() - start, 2)
    device = getattr(base_backend, "device", "cpu")
    configs = [evaluate_config("base", base_backend, base_backend, sel_task, ans_task, evals)]
    configs.append(evaluate_config("teacher-standin-lexical", LexicalStandIn(), LexicalStandIn(), sel_task, ans_task, evals))

    # Training-size curve (task 1 and task 2 adapters trained separately at each size).
    curve = [{"n_train": 0, "select_f1": configs[0]["select_f1"], "meteor": configs[0]["meteor"]}]
    adapters: dict[int, dict[str, str]] = {}
    sizes = sorted({int(s) for s in args.sizes.split(",") if s} | {args.n_train})
    for n in sizes:
        train = train_all[:n]
        adapters[n] = {}
        for sub in ("select", "answer"):
            start = time.perf_counter()
            path = train_subtask(sub, train, base, workdir / f"{sub}-{n}", SFTSettings(**cfg_kwargs), task_options=opts)
            timings[f"train_{sub}_{n}_s"] = round(time.perf_counter() - start, 2)
            adapters[n][sub] = str(path)
        sel_b, ans_b = backend(adapters[n]["select"]), backend(adapters[n]["answer"])
        row = evaluate_config(f"ft-separate-{n}", sel_b, ans_b, sel_task, ans_task, evals)
        row["n_train"] = n
        configs.append(row)
        curve.append({"n_train": n, "select_f1": row["select_f1"], "meteor": row["meteor"]})
        if n == args.n_train:
            ft_answer_backend = ans_b
        del sel_b

    # Sequential: task 2 on top of the task-1 adapter of the main size.
    start = time.perf_counter()
    seq = train_subtask("answer", train_all[: args.n_train], adapters[args.n_train]["select"], workdir / "seq-answer", SFTSettings(**cfg_kwargs), task_options=opts)
    timings["train_sequential_answer_s"] = round(time.perf_counter() - start, 2)
    seq_b = backend(str(seq))
    row = evaluate_config(f"ft-sequential-{args.n_train}", seq_b, seq_b, sel_task, ans_task, evals, e2e_task=e2e_task)
    row["n_train"] = args.n_train
    configs.append(row)

    # Self-evaluation: base and fine-tuned (separate answer adapter) grade their own and each other's answers.
    start = time.perf_counter()
    se_records = evals[: args.n_selfeval]
    selfeval = self_evaluation(ans_task, {"base": base_backend, f"ft-{args.n_train}": ft_answer_backend}, se_records)
    timings["selfeval_s"] = round(time.perf_counter() - start, 2)

    tag = f"_{args.tag}" if args.tag else ("_tiny" if args.model == "tiny" else "")
    png = RESULTS / f"fhirqa_size_curve{tag}.png"
    plot_curve(curve, png, f"fhirqa on {model_name}, {len(evals)} valid questions")
    result = {
        "benchmark": "fhirqa",
        "model": model_name,
        "device": {**device_info(), "inference_device": str(device)},
        "data": {
            "fhir_source": data or "bundled 3-patient subset",
            "n_train_pool": len(train_all),
            "n_eval": len(evals),
            "n_selfeval": len(se_records),
            "eval_categories": sorted({r["category"] for r in evals}),
            "mean_candidates": round(sum(len(r["candidates"]) for r in evals) / max(1, len(evals)), 2),
            "mean_relevant": round(sum(len(r["relevant_ids"]) for r in evals) / max(1, len(evals)), 2),
            "note": "valid split subsampled for the 2-core CPU budget; figures are indicative, not the paper's scale",
        },
        "meteor_mode": meteor_mode(),
        "config": {**vars(args), "sft": cfg_kwargs, "task_options": opts},
        "configs": configs,
        "size_curve": curve,
        "size_curve_png": str(png.relative_to(RESULTS.parent.parent)),
        "selfeval": selfeval,
        "timings": timings,
        "total_wall_s": round(time.perf_counter() - t0, 1),
        # The 2 cores are shared: CPU seconds say what the run cost, wall seconds what it waited too.
        "cpu_user_s": round(resource.getrusage(resource.RUSAGE_SELF).ru_utime, 1),
        "load_average_at_end": list(os.getloadavg()),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    out = RESULTS / f"fhirqa{tag}.json"
    atomic_write_json(out, result)
    print(f"[fhirqa] wrote {out} in {result['total_wall_s']} s, peak {result['peak_rss_mb']} MB", flush=True)
    return result


if __name__ == "__main__":
    main()
