"""Training and inference at this CPU's limit, all arms in one run: SFT vs raw forward+backward, generation per
backend with log-probs, and the server under concurrent clients. Writes benchmarks/results/throughput.json.

Each arm runs in its own child process (so its peak RSS is its own), one after another, on the bundled model
(SmolLM2-135M-Instruct). Sized for <= 15 minutes on 2 idle cores; run it under the shared lock:

    flock /tmp/ehrforge-heavy.lock python benchmarks/throughput.py

Arms:
* ``sft``: trained tokens/s of ``core/sft.py`` (``train_sft``, defaults: LoRA q/k/v/o r=8, dropout 0.05, bf16 on
  CPUs with native bf16) vs raw bf16 forward+backward of the same model (all weights trainable, full-vocabulary
  loss over every token, no optimiser step) on the same batches (8 x ~256 tokens); ``ratio_to_raw`` and peak RSS
  of the defaults (checkpointing one decoder layer in two), also without checkpointing and with every layer.
* ``generate``: generated tokens/s per backend (transformers fp32 reference, ct2 int8) at batch 1 and 8, greedy,
  64 new tokens, per-token log-probs and entropies on; ``ratio_to_llamacpp`` (default engine / the faster llama.cpp
  weight file) when ``--llamacpp-dir`` names a llama.cpp tree built for the benchmark (see docs/speed.md).
* ``serve``: ``/v1/chat/completions`` on loopback with the default engine, queue 64, at 50 and 200 clients.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from benchmarks._child import run_child as run_child_process  # noqa: E402
from ehrforge.core.memory import peak_rss_mb  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "throughput.json"
THREADS = 2

#: Varied chat prompts for the generation arm (the same for every backend).
GEN_PROMPTS = [
    "Write a SQL query counting rows in table patients.",
    "What is a normal serum creatinine range for an adult man?",
    "Explain in two sentences what an ICU admission is.",
    "List three common causes of hyponatremia.",
    "Convert 98.6 degrees Fahrenheit to Celsius and show the formula.",
    "What does the abbreviation BMI stand for and how is it computed?",
    "Name two drugs used to treat hypertension.",
    "Describe what a discharge summary usually contains.",
]


def _sft_rows(n: int) -> list[dict]:
    """Prompt/completion rows of ~256 tokens (prompt ~200, answer ~50), varied so the length grouping matters."""
    import random

    rng = random.Random(0)
    words = ["patient", "admitted", "with", "chest", "pain", "creatinine", "1.2", "mg/dL", "hypertension", "diabetes", "heart", "rate", "88", "sodium", "131", "potassium", "4.1", "glucose", "142", "discharged", "on", "day", "three", "with", "follow-up", "in", "cardiology", "clinic"]
    rows = []
    for i in range(n):
        note = " ".join(rng.choice(words) for _ in range(rng.randint(85, 115)))
        answer = " ".join(rng.choice(words) for _ in range(rng.randint(20, 30)))
        rows.append({"id": str(i), "note": note, "answer": answer})
    return rows


def _task():
    from ehrforge.core.types import Answer
    from ehrforge.core.contract import Task

    class NoteSummary(Task):  # a stand-in task: throughput does not depend on what the text means
        name = "throughput"
        metric = "none"

        def load(self, split, **_):
            return _sft_rows(64)

        def prompt(self, r):
            return [{"role": "user", "content": "Summarise the note.\n" + r["note"]}]

        def target(self, r):
            return r["answer"]

        def parse(self, g, r):
            return Answer(g.text)

        def score(self, records, preds):
            return {}

    return NoteSummary()


def child_sft(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    from ehrforge.core.sft import SFTSettings, train_sft

    task = _task()
    records = task.load("train")[: args.batch * args.steps]
    # --gc absent: the SFTSettings defaults; 0: no checkpointing; n: recompute one decoder layer in n
    checkpointing = {} if args.gc is None else {"gradient_checkpointing": args.gc > 0, "checkpoint_every": max(1, args.gc)}
    settings = SFTSettings(batch_size=args.batch, max_steps=args.steps, max_seq_len=512, save_steps=10_000,
                           logging_steps=1, **checkpointing)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = train_sft(task, records, "bundled", Path(tmp) / "a", settings)
        wall = time.perf_counter() - t0
        meta = json.loads((out / "ehrforge_model.json").read_text())
    return {"steps": meta["steps"], "trained_tokens": meta["trained_tokens"], "tokens_per_s": meta["tokens_per_s"],
            "compute_dtype": meta["compute_dtype"], "train_loss": meta["train_loss"], "wall_s_incl_load": round(wall, 1),
            "gradient_checkpointing": settings.gradient_checkpointing,
            "checkpoint_every": settings.checkpoint_every if settings.gradient_checkpointing else None,
            "peak_rss_mb": round(peak_rss_mb())}


def child_raw(args: argparse.Namespace) -> dict:
    """Raw bf16 forward+backward: every weight trainable, HF's full-vocabulary loss on every token, no optimiser."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(THREADS)
    from ehrforge.core.models import resolve_model
    from ehrforge.core.sft import collate, length_grouped_batches, tokenize_rows

    path = resolve_model("bundled")
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.bfloat16, attn_implementation="sdpa")
    model.train()
    task = _task()
    examples = tokenize_rows([task.sft_example(r) for r in task.load("train")[: args.batch * args.steps]], tok)
    batches = length_grouped_batches([len(i) for i, _ in examples], args.batch, seed=0, epoch=0)  # as train_sft
    tokens, t0 = 0, time.perf_counter()
    for b in batches[: args.steps]:
        input_ids, mask, _, _, n_tokens = collate([examples[i] for i in b], tok.pad_token_id or 0, "cpu")
        labels = input_ids.masked_fill(mask == 0, -100)
        model(input_ids=input_ids, attention_mask=mask, labels=labels).loss.backward()
        model.zero_grad(set_to_none=True)
        tokens += n_tokens
    elapsed = time.perf_counter() - t0
    return {"steps": args.steps, "tokens": tokens, "tokens_per_s": round(tokens / elapsed, 1), "dtype": "bfloat16",
            "attn": model.config._attn_implementation, "peak_rss_mb": round(peak_rss_mb())}


def child_generate(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    from ehrforge.core.backends import load_backend

    backend = load_backend(args.spec, **({"compute_type": args.compute, "threads": THREADS} if args.spec.startswith("ct2:") else {"device": "cpu"}))
    chats = [[{"role": "user", "content": p}] for p in GEN_PROMPTS]
    backend.generate(chats[:1], max_new_tokens=4)  # warm-up
    out = {"backend": backend.name}
    for batch in (1, 8):
        prompts = chats[:2] if batch == 1 else chats  # batch 1: two prompts one at a time (time bound)
        backend.batch_size = batch
        t0 = time.perf_counter()
        n = 0
        for start in range(0, len(prompts), batch):
            gens = backend.generate(prompts[start : start + batch], max_new_tokens=args.new_tokens)
            assert all(g.token_logprobs is not None and g.token_entropies is not None for g in gens)
            n += sum(g.completion_tokens for g in gens)
            if batch == 8:  # the fixed prompts' greedy answers, for the agreement with the reference engine
                out.setdefault("greedy", []).extend({"tokens": g.tokens, "entropies": g.token_entropies} for g in gens)
        elapsed = time.perf_counter() - t0
        out[f"batch_{batch}"] = {"tokens_per_s": round(n / elapsed, 1), "generated_tokens": n, "seconds": round(elapsed, 2)}
    out["peak_rss_mb"] = round(peak_rss_mb())
    return out


def agreement(reference: list[dict], other: list[dict]) -> dict:
    """How far ``other``'s greedy answers follow the reference engine's on the same prompts: the share identical,
    the mean index of the first differing token, and the largest entropy gap over the tokens both share.

    >>> agreement([{"tokens": ["a", "b"], "entropies": [1.0, 2.0]}], [{"tokens": ["a", "c"], "entropies": [1.01, 0.5]}])
    {'identical_share': 0.0, 'mean_first_difference': 1.0, 'max_entropy_gap_nats_common_prefix': 0.01}
    """
    same, first, gap = 0, [], 0.0
    for a, b in zip(reference, other):
        n = next((i for i, (x, y) in enumerate(zip(a["tokens"], b["tokens"])) if x != y), min(len(a["tokens"]), len(b["tokens"])))
        same += a["tokens"] == b["tokens"]
        first.append(n)
        gap = max([gap, *(abs(x - y) for x, y in zip(a["entropies"][:n], b["entropies"][:n]))])
    k = max(1, len(first))
    return {"identical_share": round(same / k, 3), "mean_first_difference": round(sum(first) / k, 1),
            "max_entropy_gap_nats_common_prefix": round(gap, 4)}


def _batched_bench(bench: Path, gguf: Path, new_tokens: int) -> dict:
    """One ``llama-batched-bench`` run at batch 1 and 8, parsed from its table."""
    run = subprocess.run([str(bench), "-m", str(gguf), "-c", "4096", "-b", "2048", "-ub", "512", "-npp", "32",
                          "-ntg", str(new_tokens), "-npl", "1,8", "-t", str(THREADS), "-tb", str(THREADS)],
                         capture_output=True, text=True, timeout=600)
    rows = {}
    for line in run.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 10 and cells[0].isdigit():
            pp, tg, b, total_s = int(cells[0]), int(cells[1]), int(cells[2]), float(cells[8])
            rows[f"batch_{b}"] = {"tokens_per_s": round(b * tg / total_s, 1), "generated_tokens": b * tg,
                                  "seconds": round(total_s, 3), "decode_only_tokens_per_s": float(cells[7]),
                                  "prompt_tokens_per_sequence": pp}
    if not rows:
        return {"error": "llama-batched-bench printed no table: " + (run.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return rows


def _cmake_flags(build: Path) -> dict[str, str]:
    """The CPU-feature switches the llama.cpp tree was configured with (its build/CMakeCache.txt)."""
    cache = build / "build" / "CMakeCache.txt"
    lines = cache.read_text(errors="replace").splitlines() if cache.exists() else []
    pairs = (line.split(":", 1) for line in lines if line.startswith(("GGML_NATIVE:", "GGML_AVX", "GGML_AMX", "GGML_FMA:")))
    return {name: kind.split("=", 1)[1] for name, kind in pairs}


def llamacpp_arm(build: Path | None, shipped_gguf: Path, new_tokens: int, work: Path) -> dict:
    """llama.cpp on the same model, ``llama-batched-bench`` at batch 1 and 8 with ``THREADS`` threads, a 32-token
    prompt per sequence and ``new_tokens`` generated, for two weight files: the Q4_1 GGUF the bundled model ships as,
    and the same weights requantized to Q8_0 by ``llama-quantize`` (the precision class of the ct2 int8 engine; the
    HF folder ehrforge runs is itself dequantized from that Q4_1 file, so both hold the same model). Tokens/s is
    generated tokens over the whole wall time including the prompt, as in the ``generate`` arm; ``best`` is the
    faster file per batch (the stricter comparison). ``build`` is a llama.cpp source tree with ``build/bin``, built
    for the benchmark only, never installed."""
    if build is None:
        return {"error": "no llama.cpp build given: pass --llamacpp-dir (a llama.cpp source tree with build/bin, "
                         "see docs/speed.md); llama-cpp-python is sdist-only on PyPI"}
    bench, quantize = build / "build" / "bin" / "llama-batched-bench", build / "build" / "bin" / "llama-quantize"
    if not bench.exists() or not quantize.exists():
        return {"error": f"{build} has no build/bin/llama-batched-bench or llama-quantize: build llama.cpp there first"}
    q8 = work / "model-q8_0.gguf"
    quant = subprocess.run([str(quantize), "--allow-requantize", str(shipped_gguf), str(q8), "Q8_0", str(THREADS)],
                           capture_output=True, text=True, timeout=600)
    files = {"Q4_1 (shipped)": shipped_gguf}
    out: dict = {"backend": "llama.cpp (llama-batched-bench)", "source": str(build), "build_flags": _cmake_flags(build),
                 "note": "llama-batched-bench computes no log-probs or entropies; the ehrforge engines compute both per token"}
    if quant.returncode == 0 and q8.exists():
        files["Q8_0 (requantized)"] = q8
    else:
        out["quantize_error"] = (quant.stderr.strip().splitlines() or ["?"])[-1][:300]
    out["weights"] = {name: _batched_bench(bench, path, new_tokens) for name, path in files.items()}
    for batch in ("batch_1", "batch_8"):
        runs = [w[batch] for w in out["weights"].values() if batch in w]
        if runs:
            out.setdefault("best", {})[batch] = max(runs, key=lambda r: r["tokens_per_s"])
    return out


def child_serve(args: argparse.Namespace) -> None:
    import torch
    import uvicorn

    torch.set_num_threads(THREADS)
    from ehrforge.core.backends import default_inference_kind, load_backend
    from ehrforge.serve import ServeSettings, create_app

    backend = load_backend(f"{default_inference_kind()}:bundled")
    tokens = {f"client{i}": f"loadtest-token-{i:06d}" for i in range(args.clients)}
    settings = ServeSettings(tokens=tokens, workers=1, queue_size=args.queue_size, max_batch=8, rate_per_minute=600, rate_burst=50)
    uvicorn.run(create_app(settings, backend, {}), host="127.0.0.1", port=args.port, log_level="error",
                limit_concurrency=settings.max_connections, access_log=False)


def run_child(arm: str, *extra: str, timeout: float = 400) -> dict:
    return run_child_process(__file__, ["--child", arm, *extra], timeout)


def serve_arm(clients: int, requests: int, queue_size: int) -> dict:
    import asyncio

    import serve_load  # the existing load driver (benchmarks/serve_load.py)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--child", "serve", "--port", str(port), "--clients", str(clients),
                               "--queue-size", str(queue_size)], env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
                              stderr=subprocess.DEVNULL)
    ns = argparse.Namespace(port=port, clients=clients, requests=requests, max_tokens=16, deadline_s=240.0)
    try:
        result = asyncio.run(serve_load.drive(ns, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    keep = ("wall_s", "requests_sent", "ok", "rejected_503", "rate_limited_429", "errors", "throughput_ok_per_s",
            "latency_ms_ok", "server_queue_stats")
    return {"clients": clients, "requests_per_client": requests, "queue_size": queue_size, "max_tokens": 16,
            **{k: result[k] for k in keep}}


def machine() -> dict:
    from benchmarks._env import device_info

    info = device_info()
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), None)
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), []))
    info.update(cpu_model=model, threads_used=THREADS, avx512_bf16="avx512_bf16" in flags, amx_bf16="amx_bf16" in flags)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sft-steps", type=int, default=3)
    ap.add_argument("--sft-rounds", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--serve-requests", type=int, default=2)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--llamacpp-dir", default=os.environ.get("EHRFORGE_LLAMACPP_DIR"),
                    help="a llama.cpp source tree built for this benchmark (build/bin/llama-batched-bench); "
                         "without it ratio_to_llamacpp is null and the reason is recorded")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--compute", default="int8", help=argparse.SUPPRESS)
    ap.add_argument("--gc", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=5, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--queue-size", type=int, default=64, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child == "serve":
            child_serve(args)
            return
        result = {"sft": child_sft, "raw": child_raw, "generate": child_generate}[args.child](args)
        Path(args.child_out).write_text(json.dumps(result))
        return

    from ehrforge.core.backends import default_inference_kind
    from ehrforge.core.io import atomic_write_json

    started = time.perf_counter()
    report: dict = {"benchmark": "throughput", "command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "model": "bundled SmolLM2-135M-Instruct", "machine": machine()}
    steps = str(args.sft_steps)
    # Alternating rounds (raw, ours, raw, ours, ...): a shared machine's load changes over minutes, so each arm's
    # best round is compared, and each round's own ratio is recorded too.
    rounds = []
    for _ in range(args.sft_rounds):
        rounds.append({"raw": run_child("raw", "--steps", steps), "core_sft": run_child("sft", "--steps", steps)})
    # The default (checkpointing one layer in two) against no checkpointing and checkpointing every layer.
    ours_no_gc = run_child("sft", "--steps", steps, "--gc", "0")
    ours_gc = run_child("sft", "--steps", steps, "--gc", "1")
    ok = [r for r in rounds if "error" not in r["raw"] and "error" not in r["core_sft"]]
    best_raw = max((r["raw"] for r in ok), key=lambda x: x["tokens_per_s"], default={})
    best_ours = max((r["core_sft"] for r in ok), key=lambda x: x["tokens_per_s"], default={})
    for r in ok:
        r["ratio"] = round(r["core_sft"]["tokens_per_s"] / r["raw"]["tokens_per_s"], 3)
    ratio = round(best_ours["tokens_per_s"] / best_raw["tokens_per_s"], 3) if ok else None
    report["sft"] = {"batch": "8 x ~256 tokens (prompt ~200, answer ~50), length-grouped", "rounds": rounds,
                     "raw_best": best_raw, "core_sft_best": best_ours, "core_sft_no_checkpointing": ours_no_gc,
                     "core_sft_gradient_checkpointing": ours_gc,
                     "ratio_to_raw": ratio, "peak_rss_mb": max((r["core_sft"].get("peak_rss_mb", 0) for r in ok), default=None),
                     "peak_rss_mb_no_checkpointing": ours_no_gc.get("peak_rss_mb"),
                     "peak_rss_mb_gradient_checkpointing": ours_gc.get("peak_rss_mb"),
                     "targets": {"ratio_to_raw": ">= 0.9", "peak_rss_mb": "<= 3072"}}
    print(json.dumps(report["sft"], indent=1), flush=True)

    arms = {"transformers:bundled": ("transformers:bundled", "int8"), "ct2:bundled": ("ct2:bundled", "int8"),
            "ct2:bundled float32": ("ct2:bundled", "float32")}
    gen = {name: run_child("generate", "--spec", spec, "--compute", compute) for name, (spec, compute) in arms.items()}
    greedy = {name: arm.pop("greedy", []) for name, arm in gen.items()}
    for name, arm in gen.items():
        if name != "transformers:bundled" and greedy[name] and greedy["transformers:bundled"]:
            arm["agreement_with_transformers_fp32"] = agreement(greedy["transformers:bundled"], greedy[name])
    from ehrforge.core.models import bundled_gguf_path

    with tempfile.TemporaryDirectory(prefix="llamacpp-") as work:
        llama = llamacpp_arm(Path(args.llamacpp_dir) if args.llamacpp_dir else None, bundled_gguf_path(),
                             args.new_tokens, Path(work))
    default = gen.get(f"{default_inference_kind()}:bundled", {})

    def vs_llama(batch: int) -> float | None:
        ours, theirs = (default.get(f"batch_{batch}", {}).get("tokens_per_s"),
                         llama.get("best", {}).get(f"batch_{batch}", {}).get("tokens_per_s"))
        return round(ours / theirs, 3) if ours and theirs else None

    t_b8 = gen["transformers:bundled"].get("batch_8", {}).get("tokens_per_s")
    c_b8 = gen["ct2:bundled"].get("batch_8", {}).get("tokens_per_s")
    t_b1 = gen["transformers:bundled"].get("batch_1", {}).get("tokens_per_s")
    c_b1 = gen["ct2:bundled"].get("batch_1", {}).get("tokens_per_s")
    report["generate"] = {"new_tokens": args.new_tokens, "greedy": True, "logprobs_and_entropies": True,
                          "default_engine": default_inference_kind(), "backends": gen,
                          "ratio_to_llamacpp": vs_llama(8), "ratio_to_llamacpp_batch_1": vs_llama(1), "llamacpp": llama,
                          "ratio_ct2_to_transformers": {"batch_1": round(c_b1 / t_b1, 2) if c_b1 and t_b1 else None,
                                                        "batch_8": round(c_b8 / t_b8, 2) if c_b8 and t_b8 else None}}
    print(json.dumps(report["generate"], indent=1), flush=True)

    report["serve"] = {"engine": default_inference_kind(),
                       "runs": [serve_arm(c, args.serve_requests, 64) for c in (50, 200)],
                       "target": "0 x 503 at 50 clients with queue >= 64"}
    print(json.dumps(report["serve"], indent=1), flush=True)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    try:
        report["machine"]["load_average_at_end"] = os.getloadavg()
    except OSError:
        pass
    report["python"] = platform.python_version()
    atomic_write_json(args.out, report)
    print(f"wrote {args.out} in {report['wall_s']} s")


if __name__ == "__main__":
    main()
