"""Dev ablations for the SQL student: prompt (schema / compact, k retrieved demonstrations), LoRA shape and learning
rate, and a learning curve (execution accuracy vs training examples seen). Dev split only (valid split three ways by
``sql_data.split_three``; test is never looked at). Writes benchmarks/results/sql_ablation.json after every arm (a
rerun skips arms already there) and benchmarks/results/sql_ablation_curve.png.

    flock /tmp/ehrforge-heavy.lock python benchmarks/sql_ablation.py --data ../shared/data/ehrsql2024/v1.0

Execution accuracy here is the scorer's: answerable dev questions whose executed answer matches gold, the
execution filter on and no entropy threshold (the threshold is a separate, later choice).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._env import device_info  # noqa: E402

#: arms named without a retrieval method ran before there was a choice: BM25 over the raw questions
BM25 = {"retrieval": "bm25", "mask_values": False, "draft": False}
#: MiniLM embeddings of value-masked questions (tasks/sql/demonstrations.py; benchmarks/results/sql_retrieval.json)
SHAPES = {"retrieval": "minilm", "mask_values": True, "draft": False}
#: the same, and the question comes with its draft (the nearest demonstration's SQL with its values put in). The arm
#: "... draft" ran when the demonstrations carried drafts too (since removed: prompts up to 3,217 tokens, no gain);
#: "... draft-question" is the current prompt, a draft on the asked question only.
DRAFTS = {**SHAPES, "draft": True}
ZERO_SHOT = {
    "zero-shot schema k=0": {"prompt": "schema", "k": 0, **BM25},
    "zero-shot compact k=1": {"prompt": "compact", "k": 1, **BM25},
    "zero-shot compact k=2": {"prompt": "compact", "k": 2, **BM25},
    "zero-shot compact k=3": {"prompt": "compact", "k": 3, **BM25},
    "zero-shot compact k=1 minilm-masked": {"prompt": "compact", "k": 1, **SHAPES},
    "zero-shot compact k=3 minilm-masked": {"prompt": "compact", "k": 3, **SHAPES},
    "zero-shot compact k=3 minilm-masked draft": {"prompt": "compact", "k": 3, **DRAFTS},
    "zero-shot compact k=3 minilm-masked draft-question": {"prompt": "compact", "k": 3, **DRAFTS},
    "zero-shot compact k=1 minilm-masked draft": {"prompt": "compact", "k": 1, **DRAFTS},
}
from ehrforge.core.sft import ALL_LINEAR_LAYERS, ATTENTION_LAYERS  # noqa: E402
from ehrforge.tasks.sql.task import SQLTask  # noqa: E402

ATTN, ALL_LINEAR = list(ATTENTION_LAYERS), list(ALL_LINEAR_LAYERS)
#: trained arms: prompt options + SFT settings (dtype from --dtype: bf16 only where the CPU has native bf16)
TRAINED = {
    "lora attn r8 lr2e-4 k=1": ({"prompt": "compact", "k": 1, **BM25}, {"lora_r": 8, "lora_alpha": 16, "learning_rate": 2e-4, "lora_target_modules": ATTN}),
    "lora all r16 lr1e-4 k=1": ({"prompt": "compact", "k": 1, **BM25}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 1e-4, "lora_target_modules": ALL_LINEAR}),
    "lora all r16 lr1e-3 k=1": ({"prompt": "compact", "k": 1, **BM25}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 1e-3, "lora_target_modules": ALL_LINEAR}),
    "lora all r16 lr2e-4 k=3": ({"prompt": "compact", "k": 3, **BM25}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4, "lora_target_modules": ALL_LINEAR}),
    "lora all r16 lr2e-4 k=1": ({"prompt": "compact", "k": 1, **BM25}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4, "lora_target_modules": ALL_LINEAR}),
    "lora attn r8 lr2e-4 k=0": ({"prompt": "compact", "k": 0, **BM25}, {"lora_r": 8, "lora_alpha": 16, "learning_rate": 2e-4, "lora_target_modules": ATTN}),
    "lora all r16 lr2e-4 k=3 minilm-masked": ({"prompt": "compact", "k": 3, **SHAPES}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4, "lora_target_modules": ALL_LINEAR}),
    "lora all r16 lr2e-4 k=1 minilm-masked": ({"prompt": "compact", "k": 1, **SHAPES}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4, "lora_target_modules": ALL_LINEAR}),
    "lora all r16 lr2e-4 k=3 minilm-masked draft-question": ({"prompt": "compact", "k": 3, **DRAFTS}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4, "lora_target_modules": ALL_LINEAR}),
    "lora all r16 lr2e-4 k=1 minilm-masked draft": ({"prompt": "compact", "k": 1, **DRAFTS}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4, "lora_target_modules": ALL_LINEAR}),
}
# The chosen recipe with the SQL task's memory settings (one sequence per micro-batch, 4 accumulated, every layer
# recomputed; the same 4 examples per step), for models bigger than the bundled one.
TRAINED["lora all r16 lr2e-4 k=3 b1x4"] = (
    TRAINED["lora all r16 lr2e-4 k=3"][0],
    {**TRAINED["lora all r16 lr2e-4 k=3"][1], **{k: SQLTask.sft_defaults[k] for k in ("batch_size", "grad_accum", "checkpoint_every")}},
)


def engine_suffix(engine: str, compute_type: str = "int8") -> str:
    """What an arm's name carries for a non-reference engine: figures compare only within one engine.

    >>> engine_suffix("transformers"), engine_suffix("ct2"), engine_suffix("ct2", "float32")
    ('', ' [ct2]', ' [ct2 float32]')
    """
    if engine == "transformers":
        return ""
    return f" [{engine}]" if compute_type == "int8" else f" [{engine} {compute_type}]"


def model_suffix(model: str) -> str:
    """What an arm's name carries for a model other than the bundled one (figures compare only within one model).

    >>> model_suffix("bundled"), model_suffix("/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    ('', ' {qwen2.5-coder-0.5b-instruct-q4_k_m}')
    """
    return "" if model == "bundled" else " {" + Path(model).name.removesuffix(".gguf") + "}"


def arm_suffix(model: str, engine: str, compute_type: str = "int8", dtype: str = "auto") -> str:
    """Everything an arm's name carries besides its recipe: model, engine, and bf16 generation where asked (``auto``
    generates in fp32 on CPU with transformers).

    >>> arm_suffix("bundled", "transformers"), arm_suffix("bundled", "transformers", dtype="bfloat16")
    ('', ' (bf16 generation)')
    """
    bf16 = " (bf16 generation)" if engine == "transformers" and dtype == "bfloat16" else ""
    return model_suffix(model) + engine_suffix(engine, compute_type) + bf16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/ehrsql2024/v1.0")
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--dev-n", type=int, default=40, help="dev questions per arm")
    ap.add_argument("--train-n", type=int, default=256, help="training examples per trained arm (one pass)")
    ap.add_argument("--curve", type=int, nargs="*", default=[128], help="extra eval points (examples seen) per trained arm")
    ap.add_argument("--arms", nargs="*", default=None, help="arm names to run (default: all)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--engine", default=os.environ.get("EHRFORGE_ENGINE", "transformers"),
                    help="generation engine for every evaluation (ct2: about 2x faster here); arms name it unless transformers")
    ap.add_argument("--dtype", default="auto", help="auto: bf16 where the CPU has native bf16 (AVX-512 BF16/AMX), else fp32")
    ap.add_argument("--out", default="runs/sql-ablation")
    ap.add_argument("--json", default="benchmarks/results/sql_ablation.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    from ehrforge.core.io import atomic_write_json
    from ehrforge.core.loader import LoadOptions, load_model
    from ehrforge.core.sft import SFTSettings, train_sft
    from ehrforge.tasks.sql import data as sql_data
    from ehrforge.tasks.sql.recipe import ensure_database

    started = time.perf_counter()
    db = ensure_database(None, args.data)
    task = SQLTask(db=str(db), source=args.data, max_new_tokens=args.max_new_tokens, threshold=None)
    dev = sql_data.subsample(sql_data.split_three(task.load("valid"))[0], args.dev_n, seed=0)
    train = sql_data.subsample(task.load("train"), args.train_n, seed=0)
    path = Path(args.json)
    report = json.loads(path.read_text()) if path.exists() else {}
    report.update(benchmark="sql_ablation", command=" ".join(sys.argv), device=device_info(),
                  sizes={"dev": len(dev), "dev_answerable": sum(sql_data.is_answerable(r) for r in dev), "train": len(train)},
                  max_new_tokens=args.max_new_tokens, split="dev part of EHRSQL v1.0 valid (split_three), never test")
    arms = report.setdefault("arms", {})
    wanted = set(args.arms) if args.arms else None
    load = LoadOptions(dtype=args.dtype, batch_size=args.batch_size, engine=args.engine)
    suffix = arm_suffix(args.model, args.engine, load.ct2_compute_type, args.dtype)
    engine_record = {} if args.engine == "transformers" else {"ct2_compute_type": load.ct2_compute_type}

    def score(backend, options) -> dict:
        for name, value in options.items():
            setattr(task.options, name, value)
        start = time.perf_counter()
        preds = task.predict(backend, dev, batch_size=args.batch_size)
        m = task.score(dev, preds)
        return {"execution_accuracy": m["execution_accuracy"], "RS0": m["RS0"], "eval_s": round(time.perf_counter() - start, 1),
                "answered": sum(type(p).__name__ == "Answer" for p in preds)}

    def save() -> None:
        report["wall_s_total_this_run"] = round(time.perf_counter() - started, 1)
        atomic_write_json(path, report)

    copy_arm = "nearest train SQL copied (no model)"
    if copy_arm not in arms and (not wanted or copy_arm in wanted):
        # What retrieval alone gives: the k=1 demonstration's SQL as the answer. Cheap, so also on the whole dev part.
        from ehrforge.core.types import Answer

        full_dev = sql_data.split_three(task.load("valid"))[0]
        for name, value in BM25.items():  # as it ran first; benchmarks/sql_retrieval.py compares the methods
            setattr(task.options, name, value)
        figures = {}
        for label, part in (("", dev), ("_full_dev", full_dev)):
            demos = task.retriever().nearest_many([r["question"] for r in part], 1, exclude=[{r["id"]} for r in part])
            preds = [task.apply_policy(Answer(d[0]["sql"], 1.0)) for d in demos]
            m = task.score(part, preds)
            figures[f"execution_accuracy{label}"] = m["execution_accuracy"]
            figures[f"n{label}"] = len(part)
        arms[copy_arm] = {"kind": "retrieval only", "prompt_options": {"k": 1}, "examples_seen": 0, **figures}
        print(copy_arm, arms[copy_arm], flush=True)
        save()

    base = None
    for arm, options in ZERO_SHOT.items():
        name = arm + suffix
        if name in arms or (wanted and arm not in wanted):
            continue
        base = base or load_model(args.model, task, load)
        arms[name] = {"kind": "zero-shot", "prompt_options": options, "examples_seen": 0, "command": " ".join(sys.argv),
                      "model": args.model, "engine": args.engine, **engine_record, "dtype": args.dtype,
                      **score(base, options)}
        print(name, arms[name], flush=True)
        save()
    del base
    gc.collect()

    for arm, (options, sft) in TRAINED.items():
        name = arm + suffix
        if name in arms or (wanted and arm not in wanted):
            continue
        for key, value in options.items():
            setattr(task.options, key, value)
        points = sorted({n for n in args.curve if 0 < n < len(train)} | {len(train)})
        curve, prev, seen, train_s = [], args.model, 0, 0.0
        for n in points:
            # Continue from the previous point on the next, unseen slice: each segment has its own warm-up and
            # linear decay (a restart schedule), so a point costs only its own examples.
            folder = Path(args.out) / name.replace(" ", "_").replace("=", "") / f"seen{n}"
            settings = SFTSettings(**{"epochs": 1, "batch_size": 4, "dtype": args.dtype,
                                      "max_seq_len": SQLTask.sft_defaults["max_seq_len"],
                                      "warmup_steps": 2, "save_steps": 1000, **sft})
            t0 = time.perf_counter()
            if not (folder / "ehrforge_model.json").exists():
                train_sft(task, train[seen:n], prev, folder, settings)
            train_s += time.perf_counter() - t0
            manifest = json.loads((folder / "ehrforge_model.json").read_text())
            backend = load_model(str(folder), task, load)
            point = {"examples_seen": n, "train_s_cumulative": round(train_s, 1), "train_loss": manifest.get("train_loss"),
                     "tokens_per_s": manifest.get("tokens_per_s"), **score(backend, options)}
            del backend
            gc.collect()
            curve.append(point)
            print(name, point, flush=True)
            prev, seen = str(folder), n
        arms[name] = {"kind": "trained", "prompt_options": options, "sft": sft, "command": " ".join(sys.argv),
                      "model": args.model, "engine": args.engine, **engine_record, "dtype": args.dtype,
                      **curve[-1], "curve": curve}
        save()

    plot(arms, Path(args.json).with_name("sql_ablation_curve.png"))
    save()


def plot(arms: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, arm in arms.items():
        if arm["kind"] in ("zero-shot", "retrieval only"):
            ax.axhline(arm["execution_accuracy"], linestyle=":", linewidth=1)
            ax.annotate(name, (0, arm["execution_accuracy"]), fontsize=7, va="bottom")
        else:
            xs = [0] + [p["examples_seen"] for p in arm["curve"]]
            suffix = arm_suffix(arm.get("model", "bundled"), arm.get("engine", "transformers"),
                                arm.get("ct2_compute_type", "int8"), arm.get("dtype", "auto"))
            shapes = " minilm-masked" if arm["prompt_options"].get("retrieval") == "minilm" else ""
            shapes += " draft-question" if arm["prompt_options"].get("draft") else ""
            zero = arms.get(f"zero-shot compact k={arm['prompt_options']['k']}{shapes}{suffix}", {}).get("execution_accuracy")
            ys = [zero] + [p["execution_accuracy"] for p in arm["curve"]]
            if zero is None:
                xs, ys = xs[1:], ys[1:]
            ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("training examples seen")
    ax.set_ylabel("execution accuracy (dev, answerable)")
    ax.set_title("SQL student, bundled SmolLM2-135M unless named, 2 CPU cores")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
