"""calc recipe benchmark: base vs SFT vs SFT+GRPO vs GRPO-without-SFT (the EHRMIND ablation), MedCalc-Bench scoring.

    python benchmarks/calc_rlvr.py --model tiny                 # whole pipeline on the tiny random model (smoke, ~1 min)
    python benchmarks/calc_rlvr.py --model bundled \\
        --calculators mean_arterial_pressure,bmi,anion_gap,conception_date --sft-steps 30 --grpo-steps 6
    # full size on a GPU (same code; accelerate for several GPUs, e.g. `accelerate launch benchmarks/calc_rlvr.py ...`):
    python benchmarks/calc_rlvr.py --model bundled --calculators all --n-train 2000 --n-eval 440 \\
        --sft-steps 500 --grpo-steps 300 --num-generations 8 --max-new-tokens 384

Writes benchmarks/results/calc_rlvr[_<tag>].json: accuracies (overall, by output type, by calculator) for each
arm, training steps, wall time per stage, generation tokens/s, device, peak memory and the exact configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

from ehrforge.core.io import atomic_write_json  # noqa: E402
from ehrforge.tasks.calc.task import CalcTask  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_eval(task: CalcTask, model_path: str, records: list[dict], max_new_tokens: int, batch_size: int) -> dict:
    from ehrforge.core.backends import load_backend

    backend = load_backend(f"transformers:{model_path}", batch_size=batch_size)
    start = time.perf_counter()
    gens = backend.generate([task.prompt(r) for r in records], max_new_tokens=max_new_tokens)
    wall = time.perf_counter() - start
    preds = [task.parse(g, r) for g, r in zip(gens, records)]
    metrics = task.score(records, preds)
    tokens = sum(g.completion_tokens for g in gens)
    return {
        "metrics": {k: round(v, 4) for k, v in metrics.items() if not k.startswith("n_")},
        "generated_tokens": tokens,
        "eval_wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 2) if wall else 0.0,
        "sample_output": gens[0].text[:400],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="tiny | bundled | a local HF folder")
    ap.add_argument("--calculators", default="mean_arterial_pressure,bmi,anion_gap,conception_date")
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-eval", type=int, default=16)
    ap.add_argument("--sft-steps", type=int, default=30)
    ap.add_argument("--sft-lr", type=float, default=5e-4)
    ap.add_argument("--grpo-steps", type=int, default=6)
    ap.add_argument("--grpo-lr", type=float, default=2e-5)
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--prompts-per-step", type=int, default=1)
    ap.add_argument("--beta", type=float, default=0.04)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out-dir", default="", help="where adapters go (default: a temp dir)")
    args = ap.parse_args(argv)

    import torch

    from ehrforge.core.grpo import GRPOSettings, train_grpo
    from ehrforge.core.models import resolve_model
    from ehrforge.core.sft import SFTSettings, train_sft

    torch.set_num_threads(args.threads)
    work = Path(args.out_dir or tempfile.mkdtemp(prefix="calc_rlvr_"))
    t0 = time.perf_counter()
    if args.model == "tiny":
        from ehrforge.core.tiny import make_tiny_chat_model

        base = str(make_tiny_chat_model(work / "tiny"))
    else:
        base = str(resolve_model(args.model))
    task = CalcTask(calculators=args.calculators, max_new_tokens=args.max_new_tokens)
    train = task.load("train", limit=args.n_train)
    evalset = task.load("test", limit=args.n_eval)
    sft_cfg = SFTSettings(
        max_steps=args.sft_steps,
        learning_rate=args.sft_lr,
        batch_size=4,
        max_seq_len=2048 if args.model == "tiny" else 1024,
        save_steps=10_000,
        logging_steps=5,
    )
    grpo_cfg = GRPOSettings(
        max_steps=args.grpo_steps,
        learning_rate=args.grpo_lr,
        num_generations=args.num_generations,
        prompts_per_step=args.prompts_per_step,
        beta=args.beta,
        max_completion_length=args.max_new_tokens,
        save_steps=10_000,
        logging_steps=1,
    )
    result: dict = {
        "benchmark": "calc_rlvr",
        "device": "cuda:" + torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"cpu ({platform.processor() or platform.machine()}, {args.threads} threads)",
        "config": {**vars(args), "base_model": base, "sft": sft_cfg.__dict__, "grpo": grpo_cfg.__dict__},
        "sizes": {
            "train_items": len(train),
            "eval_items": len(evalset),
            "calculators": [c.key for c in task.calculators],
            "eval_split": "synthetic test split (seeded, disjoint from train)",
        },
        "arms": {},
        "stages_wall_s": {},
    }

    name = "calc_rlvr" + (f"_{args.tag}" if args.tag else "")
    out = Path(__file__).resolve().parent / "results" / f"{name}.json"

    def stage(stage_name: str, fn):
        start = time.perf_counter()
        value = fn()
        result["stages_wall_s"][stage_name] = round(time.perf_counter() - start, 2)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        result["cpu_s"] = round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1)
        print(f"[calc_rlvr] {stage_name}: {result['stages_wall_s'][stage_name]} s", file=sys.stderr, flush=True)
        atomic_write_json(out, {**result, "complete": False})  # partial results survive an interrupted run
        return value

    result["arms"]["base"] = stage(
        "eval_base", lambda: run_eval(task, base, evalset, args.max_new_tokens, args.batch_size)
    )
    sft_dir = stage("train_sft", lambda: train_sft(task, train, base, work / "sft", sft_cfg))
    result["arms"]["sft"] = stage(
        "eval_sft", lambda: run_eval(task, str(sft_dir), evalset, args.max_new_tokens, args.batch_size)
    )
    sft_grpo = stage("train_sft_grpo", lambda: train_grpo(task, train, str(sft_dir), work / "sft_grpo", grpo_cfg))
    result["arms"]["sft+grpo"] = stage(
        "eval_sft_grpo", lambda: run_eval(task, str(sft_grpo), evalset, args.max_new_tokens, args.batch_size)
    )
    grpo_only = stage("train_grpo_only", lambda: train_grpo(task, train, base, work / "grpo_only", grpo_cfg))
    result["arms"]["grpo_only"] = stage(
        "eval_grpo_only", lambda: run_eval(task, str(grpo_only), evalset, args.max_new_tokens, args.batch_size)
    )
    for arm, path in (("sft+grpo", sft_grpo), ("grpo_only", grpo_only)):
        curve = (Path(path) / "reward_curve.csv").read_text().splitlines()
        result["arms"][arm]["reward_curve_csv"] = curve
    result["steps"] = {
        "sft": args.sft_steps,
        "grpo": args.grpo_steps,
        "grpo_generations_per_step": args.num_generations * args.prompts_per_step,
    }
    result["wall_s_total"] = round(time.perf_counter() - t0, 2)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["summary"] = {arm: r["metrics"]["accuracy"] for arm, r in result["arms"].items()}
    result["cpu_s"] = round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1)
    atomic_write_json(out, {**result, "complete": True})
    print(json.dumps(result["summary"]), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
