"""calc recipe benchmark: base vs SFT vs SFT+GRPO vs GRPO-without-SFT (the EHRMIND ablation), MedCalc-Bench scoring,
in tool mode (the headline: the student writes the calculator call, ehrforge computes) and in free-reasoning mode
(the seed's baseline, smaller sizes), over all 55 calculators.

    python benchmarks/calc_rlvr.py --model tiny --n-eval 55 --sft-steps 2 --grpo-steps 1 --reasoning-eval 4   # smoke
    flock /tmp/ehrforge-heavy.lock python benchmarks/calc_rlvr.py --model bundled     # the documented CPU run

Writes benchmarks/results/calc_rlvr.json: ``arms.<base|sft|sft+grpo|grpo_only>.accuracy`` (tool mode),
``reasoning_arms.<arm>.accuracy``, ``calculators`` (55), per-arm accuracy by output type and calculator, abstain
rates, the share of zero-variance GRPO groups, token counts, wall time per stage, the command, CPU and load
average; the reward curves go to benchmarks/results/calc_rlvr_reward_curve*.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._machine import cpu_model  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("EHRFORGE_PROGRESS", "0")

from ehrforge.core.evaluate import evaluate
from ehrforge.core.io import atomic_write_json
from ehrforge.core.memory import peak_rss_mb
from ehrforge.core.loader import LoadOptions, load_model
from ehrforge.tasks.calc.calculators import CALCULATORS
from ehrforge.tasks.calc.task import CalcTask

RESULTS = Path(__file__).resolve().parent / "results"
ARMS = ("base", "sft", "sft+grpo", "grpo_only")


def bf16_ok() -> bool:
    from ehrforge.core.backends.transformers_backend import cpu_supports_bf16

    return cpu_supports_bf16()


class Ct2Backend:
    """Evaluation through CTranslate2 (the model, adapters merged, converted once to int8): on this CPU its decoding
    loop is several times faster than transformers' (docs/calc.md). Same ``generate`` contract as core backends;
    confidences are not computed (1.0)."""

    name = "ctranslate2"

    def __init__(
        self, model_path: str, work: Path, *, compute_type: str = "int8", threads: int = 2, batch_size: int = 16
    ) -> None:
        import ctranslate2
        import torch
        from ctranslate2.converters import TransformersConverter

        from ehrforge.core.backends.transformers_backend import load_causal_lm

        model, self.tokenizer = load_causal_lm(Path(model_path), torch.float32)  # adapters are merged on load
        hf, ct2 = work / "hf", work / "ct2"
        model.save_pretrained(str(hf))
        self.tokenizer.save_pretrained(str(hf))
        TransformersConverter(str(hf)).convert(str(ct2), quantization=compute_type, force=True)
        shutil.rmtree(hf, ignore_errors=True)
        self.generator = ctranslate2.Generator(str(ct2), device="cpu", compute_type=compute_type, intra_threads=threads)
        self.batch_size = batch_size
        self.end_tokens = [t for t in ("<|im_end|>", self.tokenizer.eos_token) if t]

    def generate(self, batch, *, max_new_tokens: int = 256, temperature: float = 0.0, seed: int | None = None):
        from ehrforge.core.types import Generation

        tok = self.tokenizer
        prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in batch]
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        results = self.generator.generate_batch(
            [tok.convert_ids_to_tokens(x) for x in ids],
            max_length=max_new_tokens,
            sampling_topk=1,
            include_prompt_in_result=False,
            end_token=self.end_tokens,
            max_batch_size=self.batch_size,
        )
        out = []
        for prompt_ids, res in zip(ids, results):
            seq = res.sequences_ids[0]
            out.append(
                Generation(
                    text=tok.decode(seq, skip_special_tokens=True).strip(),
                    tokens=[tok.decode([t]) for t in seq],
                    prompt_tokens=len(prompt_ids),
                    finish_reason="length" if len(seq) >= max_new_tokens else "stop",
                )
            )
        return out


def zero_std_recorder(store: list[float]):
    """Collects TRL's per-step share of prompt groups whose rewards all tie (no GRPO signal)."""
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "frac_reward_zero_std" in logs:
                store.append(float(logs["frac_reward_zero_std"]))

    return Recorder()


def token_stats(task: CalcTask, tokenizer, records: list[dict]) -> dict[str, float]:
    prompt = [
        len(tokenizer.apply_chat_template(task.prompt(r), tokenize=False, add_generation_prompt=True)) for r in records
    ]
    prompt_tok = [
        len(
            tokenizer(tokenizer.apply_chat_template(task.prompt(r), tokenize=False, add_generation_prompt=True))[
                "input_ids"
            ]
        )
        for r in records
    ]
    target_tok = [len(tokenizer(task.target(r))["input_ids"]) for r in records]
    return {
        "prompt_chars_mean": round(statistics.mean(prompt), 1),
        "prompt_tokens_mean": round(statistics.mean(prompt_tok), 1),
        "prompt_tokens_max": max(prompt_tok),
        "target_tokens_mean": round(statistics.mean(target_tok), 1),
        "target_tokens_max": max(target_tok),
    }


def screen_for_signal(task: CalcTask, backend, pool: list[dict], batch_size: int) -> list[dict]:
    """The items of ``pool`` that ``backend`` (greedy) gets wrong or abstains on, in pool order."""
    predictions = task.predict(backend, pool, batch_size=batch_size)
    return [r for r, p in zip(pool, predictions) if task.score([r], [p])["accuracy"] < 1.0]


def run_mode(mode: str, args: argparse.Namespace, base: str, work: Path, result: dict, key: str, save) -> None:
    """The four arms of one mode; results go to ``result[key]`` as each finishes (partial runs keep them)."""
    import torch  # noqa: F401 - threads are set by main

    from ehrforge.core.grpo import GRPOSettings, train_grpo
    from ehrforge.core.sft import SFTSettings, train_sft

    small = mode == "reasoning"
    task = CalcTask(mode=mode, calculators=args.calculators)
    n_eval = args.reasoning_eval if small else args.n_eval
    train = task.load("train", limit=args.reasoning_train if small else args.n_train)
    test = task.load(args.eval_split, limit=n_eval)
    dtype = "bfloat16" if args.bf16 else "float32"
    sft_cfg = SFTSettings(
        max_steps=args.reasoning_sft_steps if small else args.sft_steps,
        learning_rate=args.sft_lr,
        batch_size=args.sft_batch,
        lora_r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        lora_target_modules=args.lora_modules.split(","),
        max_seq_len=4096 if args.model == "tiny" else 1024,  # the tiny model's byte-level tokenizer is long
        save_steps=10_000,
        logging_steps=5,
        dtype=dtype,
    )
    grpo_cfg = GRPOSettings(
        max_steps=args.reasoning_grpo_steps if small else args.grpo_steps,
        learning_rate=args.grpo_lr,
        num_generations=args.num_generations,
        prompts_per_step=args.prompts_per_step,
        beta=args.beta,
        temperature=args.temperature,
        max_completion_length=args.reasoning_max_new_tokens if small else args.grpo_max_new_tokens,
        lora_r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        lora_target_modules=args.lora_modules.split(","),
        save_steps=10_000,
        logging_steps=1,
        dtype=dtype,
    )
    if small:
        task.state = task.state.updated(max_new_tokens=args.reasoning_max_new_tokens)  # the options stay as built
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    section: dict = {
        "mode": mode,
        "sizes": {
            "train_items": len(train),
            "eval_items": len(test),
            "eval_split": f"synthetic {args.eval_split} split (seeded, disjoint from train)",
        },
        "tokens": token_stats(task, tokenizer, train[:110]),
        "sft": sft_cfg.model_dump(),
        "grpo": grpo_cfg.model_dump(),
        "stages_wall_s": {},
    }
    result[key] = section

    def timed(name: str, fn):
        start = time.perf_counter()
        value = fn()
        section["stages_wall_s"][name] = round(time.perf_counter() - start, 1)
        print(f"[calc_rlvr] {mode} {name}: {section['stages_wall_s'][name]} s", file=sys.stderr, flush=True)
        save()
        return value

    def arm_backend(arm: str, model_path: str):
        if args.eval_backend == "ct2":  # calc folders record no task state to restore, so load_model is not needed
            return Ct2Backend(model_path, work / f"{mode}_{arm}_ct2", threads=args.threads, batch_size=args.batch_size)
        return load_model(model_path, task, LoadOptions(dtype=dtype, batch_size=args.batch_size))

    def evaluate_arm(arm: str, model_path: str) -> None:
        backend = arm_backend(arm, model_path)
        items = test if arm in ("sft", "sft+grpo") else test[: args.side_eval or len(test)]
        metrics = evaluate(task, {arm: backend}, items, batch_size=args.batch_size)[arm]
        entry = {
            "eval_items": len(items),
            "accuracy": round(metrics["accuracy"], 4),
            "abstain_rate": round(metrics["abstain_rate"], 4),
            "by_output_type": {
                t: round(metrics[f"accuracy/{t}"], 4)
                for t in ("decimal", "integer", "date")
                if f"accuracy/{t}" in metrics
            },
            "eval_wall_s": metrics["wall_s"],
        }
        if not small:
            entry["by_calculator"] = {
                c: round(metrics[f"accuracy/{c}"], 3) for c in sorted(CALCULATORS) if f"accuracy/{c}" in metrics
            }
        section.setdefault("arms", {})[arm] = entry

    zero_std: dict[str, list[float]] = {"sft+grpo": [], "grpo_only": []}
    arms = set(args.arms.split(","))
    if "base" in arms:
        timed("eval_base", lambda: evaluate_arm("base", base))
    if args.sft_from and not small:  # a warm-up trained by an earlier run of this script, with its own settings
        sft_dir = Path(args.sft_from)
        section["sft"] = {"reused": str(sft_dir), **json.loads((sft_dir / "ehrforge_model.json").read_text()).get("sft", {})}
    else:
        sft_dir = timed("train_sft", lambda: train_sft(task, train, base, work / f"{mode}_sft", sft_cfg))
    if "sft" in arms:
        timed("eval_sft", lambda: evaluate_arm("sft", str(sft_dir)))
    grpo_train = train[len(train) // 2 :] if not small else train  # GRPO prompts: the half SFT saw last
    screened: list[dict] | None = None  # --grpo-pool: the fresh items SFT gets wrong, GRPO's prompts
    if args.grpo_pool and not small and "sft+grpo" in arms:
        # Fresh items the warm-up never saw, kept where its greedy call is wrong: a prompt SFT already answers
        # gives a group of identical right answers, zero advantage and no gradient (0.375 of the groups in the
        # 4-step run), so GRPO's few steps go where there is something to learn. arm_backend("sft") reuses the SFT
        # evaluation's conversion folder, so the model is converted once.
        pool = task.load("train", limit=args.n_train + args.grpo_pool)[args.n_train :]
        screened = timed("screen_grpo_pool", lambda: screen_for_signal(task, arm_backend("sft", str(sft_dir)), pool, args.batch_size))
        section["grpo_pool"] = {"fresh_items": len(pool), "kept_wrong_or_abstained": len(screened),
                                "sft_greedy_accuracy_on_pool": round(1 - len(screened) / max(1, len(pool)), 4),
                                "kept_per_calculator": dict(sorted(Counter(r["calculator"] for r in screened).items()))}
    for arm, start_from in (("sft+grpo", str(sft_dir)), ("grpo_only", base)):
        if arm not in arms:
            continue
        cfg = grpo_cfg if arm == "sft+grpo" or not args.grpo_only_steps else grpo_cfg.model_copy(update={"max_steps": args.grpo_only_steps})
        prompts = screened if arm == "sft+grpo" and screened is not None else grpo_train
        out = timed(
            f"train_{arm}",
            lambda arm=arm, start_from=start_from, cfg=cfg, prompts=prompts: train_grpo(
                task,
                prompts,
                start_from,
                work / f"{mode}_{arm}",
                cfg,
                callbacks=[zero_std_recorder(zero_std[arm])],
            ),
        )
        timed(f"eval_{arm}", lambda arm=arm, out=out: evaluate_arm(arm, str(out)))
        curve = Path(out) / "reward_curve.csv"
        section["arms"][arm]["reward_curve_csv"] = curve.read_text().splitlines() if curve.exists() else []
        section["arms"][arm]["zero_variance_group_share"] = (
            round(statistics.mean(zero_std[arm]), 3) if zero_std[arm] else None
        )
        png = Path(out) / "reward_curve.png"
        if png.exists():
            suffix = "" if (mode, arm) == ("tool", "sft+grpo") else f"_{mode}_{arm.replace('+', '_')}"
            tag = f"_{args.tag}" if args.tag else ""
            shutil.copyfile(png, RESULTS / f"calc_rlvr{tag}_reward_curve{suffix}.png")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bundled", help="tiny | bundled | a local HF folder")
    ap.add_argument("--calculators", default=None, help="comma-separated keys/ids (default: all 55)")
    ap.add_argument("--n-train", type=int, default=1100)
    ap.add_argument("--n-eval", type=int, default=440)
    ap.add_argument("--sft-steps", type=int, default=120)
    ap.add_argument("--sft-batch", type=int, default=8)
    ap.add_argument("--sft-lr", type=float, default=1e-3)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-modules", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    ap.add_argument("--grpo-steps", type=int, default=8)
    ap.add_argument("--grpo-lr", type=float, default=2e-5)
    ap.add_argument("--grpo-max-new-tokens", type=int, default=96)
    ap.add_argument("--grpo-pool", type=int, default=0,
                    help="tool mode: screen this many fresh train items with the SFT model and GRPO-train on the ones "
                         "it gets wrong (0: the half of the train items SFT saw last, unscreened)")
    ap.add_argument("--grpo-only-steps", type=int, default=0,
                    help="GRPO steps of the grpo_only arm (0: --grpo-steps); its groups have zero reward variance")
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--prompts-per-step", type=int, default=2)
    ap.add_argument("--beta", type=float, default=0.0)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--reasoning-train", type=int, default=220)
    ap.add_argument("--reasoning-eval", type=int, default=55)
    ap.add_argument("--reasoning-sft-steps", type=int, default=20)
    ap.add_argument("--reasoning-grpo-steps", type=int, default=2)
    ap.add_argument("--reasoning-max-new-tokens", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--eval-backend", default="ct2", choices=["ct2", "transformers"])
    ap.add_argument("--side-eval", type=int, default=0, help="eval items for base and grpo_only (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", help="fp32 even where the CPU has bf16")
    ap.add_argument("--modes", default="tool,reasoning")
    ap.add_argument("--eval-split", default="test", choices=["test", "valid"], help="valid for tuning runs")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out-dir", default="", help="where adapters go (default: a temp dir)")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms to run and score")
    ap.add_argument("--sft-from", default="", help="tool mode: reuse this SFT adapter folder (an earlier run's "
                    "<out-dir>/tool_sft) instead of training one, e.g. to try more GRPO steps on the same warm-up")
    args = ap.parse_args(argv)
    unknown = set(args.arms.split(",")) - set(ARMS)
    if unknown:
        ap.error(f"--arms: unknown {', '.join(sorted(unknown))}; choose from {','.join(ARMS)}")

    import torch

    torch.set_num_threads(args.threads)
    args.bf16 = args.bf16 and (torch.cuda.is_available() or bf16_ok())
    work = Path(args.out_dir or tempfile.mkdtemp(prefix="calc_rlvr_"))
    t0 = time.perf_counter()
    if args.model == "tiny":
        from ehrforge.core.tiny import make_tiny_chat_model

        base = str(make_tiny_chat_model(work / "tiny"))
    else:
        from ehrforge.core.models import resolve_model

        base = str(resolve_model(args.model))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("calc_rlvr" + (f"_{args.tag}" if args.tag else "") + ".json")
    result: dict = {
        "benchmark": "calc_rlvr",
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "calculators": len(CalcTask(calculators=args.calculators).calculators),
        "model": args.model,
        "base_model": base,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "dtype": "bfloat16" if args.bf16 else "float32",
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "config": vars(args),
        "tuning": "sizes and learning rates were set from short runs scored on the valid split only; the test split is scored once per arm",
    }

    def save(complete: bool = False) -> None:
        result["wall_s_total"] = round(time.perf_counter() - t0, 1)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        result["load_average_now"] = [round(x, 2) for x in os.getloadavg()]
        atomic_write_json(out, {**result, "complete": complete})

    modes = args.modes.split(",")
    if "tool" in modes:
        run_mode("tool", args, base, work, result, "tool", save)
        result["arms"] = result["tool"].pop("arms")
    if "reasoning" in modes:
        run_mode("reasoning", args, base, work, result, "reasoning", save)
        result["reasoning_arms"] = result["reasoning"].pop("arms")
    result["summary"] = {
        "tool": {arm: r["accuracy"] for arm, r in result.get("arms", {}).items()},
        "reasoning": {arm: r["accuracy"] for arm, r in result.get("reasoning_arms", {}).items()},
    }
    save(complete=True)
    print(json.dumps(result["summary"]), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
