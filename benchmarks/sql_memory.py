"""Peak memory of the SQL demo's two heavy parts, each arm in its own child process (so each peak RSS is its own).

* ``sft``: one LoRA step of ``core/sft.py`` with the SQL task's settings on the longest k=3 training examples of
  the bundled subset (the demo's prompt: compact, 3 retrieved demonstrations), four examples per step either as one
  batch of 4 (the previous default) or as 4 micro-batches of 1 (``grad_accum`` 4), with one decoder layer in two
  or every layer recomputed (the default now: micro-batches of 1, every layer).
* ``generate``: the transformers backend on 8 SQL prompts at batch 8, 192 new tokens, log-probs and entropies on,
  with the per-token statistics computed one step at a time (``step_logprobs_and_entropies``, the code now) or over
  all steps stacked (the previous code, reproduced here), in fp32 (the transformers backend's ``auto`` on CPU), and
  per step in bf16 (what the SQL recipe generates in on a CPU with native bf16): time and peak RSS.

    flock /tmp/ehrforge-heavy.lock python benchmarks/sql_memory.py   # -> benchmarks/results/sql_memory.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._child import run_child as run_child_process  # noqa: E402
from benchmarks._machine import cpu_model  # noqa: E402
from ehrforge.core.memory import peak_rss_mb  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "sql_memory.json"
THREADS = 2
SFT_ARMS = {  # name -> SFT settings on top of the SQL task's sft_defaults
    "batch4_every2 (previous default)": {"batch_size": 4, "grad_accum": 1, "checkpoint_every": 2},
    "batch1_accum4_every2": {"batch_size": 1, "grad_accum": 4, "checkpoint_every": 2},
    "batch1_accum4_every1 (default)": {"batch_size": 1, "grad_accum": 4, "checkpoint_every": 1},
}


def _sql_task():
    from ehrforge.tasks import get_task
    from ehrforge.tasks.sql.recipe import ensure_database

    return get_task("sql", db=str(ensure_database(None, None)))


def child_sft(arm: str) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    from ehrforge.config import load_config
    from ehrforge.core.sft import train_sft

    task = _sql_task()
    train = [r for r in task.load("train") if r.get("sql")]
    longest = sorted(train, key=lambda r: -sum(len(m["content"]) for m in task.prompt(r)))[:4]
    overrides = [f"sft.{k}={v}" for k, v in SFT_ARMS[arm].items()] + ["sft.max_steps=1", "sft.save_steps=10000"]
    settings = load_config(overrides=overrides, task="sql").sft  # the task's sft_defaults beneath the overrides
    with tempfile.TemporaryDirectory() as tmp:
        out = train_sft(task, longest, "bundled", Path(tmp) / "a", settings)
        meta = json.loads((out / "ehrforge_model.json").read_text())
    return {"settings": SFT_ARMS[arm], "examples": len(longest), "longest_example_tokens": meta["longest_example_tokens"],
            "trained_tokens": meta["trained_tokens"], "tokens_per_s": meta["tokens_per_s"],
            "compute_dtype": meta["compute_dtype"], "peak_rss_mb": round(peak_rss_mb())}


def stacked_logprobs_and_entropies(step_logits, chosen_ids):
    """The previous code: every step's logits stacked, then log-softmax, exp and entropy over the whole block."""
    import torch

    logp = torch.log_softmax(torch.stack(list(step_logits), dim=1).float(), dim=-1)
    entropies = torch.special.entr(logp.exp()).sum(-1)
    return logp.gather(-1, chosen_ids[:, : logp.shape[1]].unsqueeze(-1)).squeeze(-1), entropies


#: generation arm -> dtype; "per_step bf16" is what the SQL recipe generates in on a CPU with native bf16
GENERATE_ARMS = {"per_step (code now)": "float32", "stacked (previous code)": "float32", "per_step bf16": "bfloat16"}


def child_generate(arm: str) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    from ehrforge.core.backends import transformers_backend
    from ehrforge.core.backends.transformers_backend import TransformersBackend
    from ehrforge.core.models import resolve_model

    if arm == "stacked (previous code)":
        transformers_backend.step_logprobs_and_entropies = stacked_logprobs_and_entropies
    task = _sql_task()
    questions = [r for r in task.load("valid") if r.get("sql")][:8]
    backend = TransformersBackend(resolve_model("bundled"), device="cpu", dtype=GENERATE_ARMS[arm], batch_size=8)
    t0 = time.perf_counter()
    gens = backend.generate([task.prompt(r) for r in questions], max_new_tokens=192)
    return {"batch": 8, "max_new_tokens": 192, "generated_tokens": sum(g.completion_tokens for g in gens),
            "seconds": round(time.perf_counter() - t0, 1), "dtype": str(backend.model.dtype).removeprefix("torch."),
            "first_entropies": [round(e, 4) for e in gens[0].token_entropies[:5]], "peak_rss_mb": round(peak_rss_mb())}


def run_child(kind: str, arm: str) -> dict:
    return run_child_process(__file__, ["--child", kind, "--arm", arm], timeout=1200)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=["sft", "generate"], help=argparse.SUPPRESS)
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=str(OUT))
    args = ap.parse_args()
    if args.child:
        result = (child_sft if args.child == "sft" else child_generate)(args.arm)
        Path(args.child_out).write_text(json.dumps(result))
        return
    import os

    from ehrforge.core.backends.transformers_backend import cpu_supports_bf16
    from ehrforge.core.io import atomic_write_json

    start = time.perf_counter()
    report = {
        "benchmark": "sql_memory",
        "command": "python benchmarks/sql_memory.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "threads": THREADS,
                    "cpu_native_bf16": cpu_supports_bf16(), "load_average_at_start": os.getloadavg()},
        "sft": {arm: run_child("sft", arm) for arm in SFT_ARMS},
        "generate": {arm: run_child("generate", arm) for arm in GENERATE_ARMS},
    }
    report["wall_s"] = round(time.perf_counter() - start, 1)
    atomic_write_json(args.json, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
