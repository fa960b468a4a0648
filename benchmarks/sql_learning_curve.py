"""How the SQL student learns with data: execution accuracy on a fixed dev part along one training run per arm.

Each arm is one resumable LoRA run over the shuffled EHRSQL train split (``--train``); the run saves a loadable
adapter snapshot when it has trained on 250, 500, 1,000, 2,000 ... examples, and ``--evaluate`` scores every
snapshot on the same dev part of EHRSQL valid (the first third of ``split_three``, ``--dev-limit`` questions).
A point is "examples seen in one run with a linear-decay schedule over the whole split", not a separate run on
that many examples: the learning rate at an early snapshot is still high. Points are written to
``benchmarks/results/sql_learning_curve.json`` as each arm is evaluated.

The run folder (``benchmarks/runs/sql_curve/<arm>/``) keeps the newest checkpoint (adapter, optimiser state,
step, data fingerprint); commit it and the same command resumes on another machine:

    python benchmarks/sql_learning_curve.py --data ../shared/data/ehrsql2024/v1.0 --arm k0-draft-r16 --train
    python benchmarks/sql_learning_curve.py --data ../shared/data/ehrsql2024/v1.0 --arm k0-draft-r16 --evaluate
    # a second epoch: starts from k0-draft-r16's final adapter, on its rows; points count from 5,124 examples
    python benchmarks/sql_learning_curve.py --data ../shared/data/ehrsql2024/v1.0 --arm k0-draft-r16-e2 --train
    # a third: on top of the second (its base is the first's folder, so both stay where they are)
    python benchmarks/sql_learning_curve.py --data ../shared/data/ehrsql2024/v1.0 --arm k0-draft-r16-e3 --train

RS(c) here uses the execution filter only (no entropy threshold: tuning one on the dev part it is scored on would
flatter it); ``benchmarks/sql_rs.py`` tunes the threshold on dev and scores a disjoint test part.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._env import device_info  # noqa: E402

from ehrforge.core.io import atomic_write_json  # noqa: E402
from ehrforge.core.sft import ALL_LINEAR_LAYERS, SFTSettings  # noqa: E402

#: the prompt each arm trains and answers with (SQLOptions fields) and its SFT settings beyond the task's
ARMS: dict[str, tuple[dict, dict]] = {
    # a question and its draft, no demonstrations: ~300 tokens an example, so the whole split fits one CPU session
    "k0-draft-r16": ({"k": 0, "draft": True}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 3e-4}),
    "k0-draft-r64": ({"k": 0, "draft": True}, {"lora_r": 64, "lora_alpha": 64, "learning_rate": 2e-4}),
    "k1-draft-r16": ({"k": 1, "draft": True}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 3e-4}),
    "k3-draft-r16": ({"k": 3, "draft": True}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4}),
    "k0-r16": ({"k": 0, "draft": False}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 3e-4}),
    # a second epoch over the same rows, on top of the first epoch's final adapter (merged, a fresh LoRA trained)
    "k0-draft-r16-e2": ({"k": 0, "draft": True}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 3e-4}),
    "k0-draft-r16-e3": ({"k": 0, "draft": True}, {"lora_r": 16, "lora_alpha": 32, "learning_rate": 3e-4}),
}
#: arms that continue another arm's finished run: they start from its final adapter and train on its rows file
CONTINUES = {"k0-draft-r16-e2": "k0-draft-r16", "k0-draft-r16-e3": "k0-draft-r16-e2"}
SNAPSHOTS = [250, 500, 1000, 2000, 4000]
#: short sequences (k=0): four per micro-batch, two accumulated, nothing recomputed (35 % faster than one layer in
#: two on this CPU, and the activations of 4 x ~350 tokens fit the 4 GB budget)
BATCHING = {"batch_size": 4, "grad_accum": 2, "gradient_checkpointing": False, "warmup_steps": 20, "save_steps": 80,
            "max_seq_len": 2560, "lora_target_modules": list(ALL_LINEAR_LAYERS)}
RESULTS = Path("benchmarks/results/sql_learning_curve.json")
ROWS_FILE = "train_rows.jsonl.gz"


def make_task(args: argparse.Namespace, prompt_options: dict):
    from ehrforge.config import load_config
    from ehrforge.tasks import resolve_task
    from ehrforge.tasks.sql.recipe import ensure_database

    db = ensure_database(None, args.data)
    cfg = load_config(task="sql", task_options=prompt_options, overrides=[f"data.source={args.data}"])
    return resolve_task(cfg, db=str(db))


def training_rows(task, records: list, out: Path) -> list[dict]:
    """The arm's training rows (prompt + completion), built once and kept in the run folder (committed with it):
    a resume on another machine trains on these very rows. Rebuilding them there could differ in a near-tie of
    the MiniLM retrieval (float rounding on another CPU), and the checkpoint's data fingerprint would then refuse
    the resume."""
    import gzip

    path = out / ROWS_FILE
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]
    rows = [task.sft_example(r) for r in records]
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    tmp.replace(path)
    return rows


def train(args: argparse.Namespace) -> None:
    from ehrforge.core.sft import train_sft

    prompt_options, sft = ARMS[args.arm]
    task = make_task(args, prompt_options)
    records = task.load("train", limit=args.train_limit, seed=0)
    out = Path(args.runs) / args.arm
    parent = Path(args.runs) / CONTINUES[args.arm] if args.arm in CONTINUES else None
    if parent is not None and not (out / ROWS_FILE).exists():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(parent / ROWS_FILE, out / ROWS_FILE)  # the very rows the first epoch trained on
    rows = training_rows(task, records, out)
    if args.prepare:
        print(json.dumps({"arm": args.arm, "rows": len(rows), "file": str(out / ROWS_FILE)}))
        return
    cfg = SFTSettings(**{**BATCHING, **sft, "epochs": args.epochs, "dtype": args.dtype,
                         "snapshot_examples": [n for n in SNAPSHOTS if n < len(rows) * args.epochs]})
    start = time.perf_counter()
    train_sft(task, [], str(parent) if parent is not None else args.model, out, cfg, extra_rows=rows)
    print(json.dumps({"arm": args.arm, "out": str(out), "train_s": round(time.perf_counter() - start, 1)}))


def snapshot_folders(out: Path) -> list[tuple[int, Path]]:
    found = [(int(p.name.removeprefix("seen-")), p) for p in (out / "snapshots").glob("seen-*")
             if (p / "ehrforge_model.json").exists()]
    if (out / "ehrforge_model.json").exists():
        manifest = json.loads((out / "ehrforge_model.json").read_text())
        found.append(((manifest["train_records"] or manifest.get("extra_rows", 0)) * int(manifest["sft"]["epochs"]), out))
    return sorted(set(found))


def examples_before(runs: Path, arm: str) -> int:
    """The examples the runs an arm continues saw before it started: its points count from there."""
    if arm not in CONTINUES:
        return 0
    parent = CONTINUES[arm]
    return examples_before(runs, parent) + max((n for n, _ in snapshot_folders(runs / parent)), default=0)


def evaluate_arm(args: argparse.Namespace) -> None:
    from ehrforge.core.evaluate import evaluate
    from ehrforge.core.loader import LoadOptions, load_model
    from ehrforge.core.memory import peak_rss_mb, release_freed_memory
    from ehrforge.tasks.sql import data as sql_data

    prompt_options, _ = ARMS[args.arm]
    task = make_task(args, {**prompt_options, "threshold": 1e9})  # no entropy threshold: the execution filter only
    dev = sql_data.subsample(sql_data.split_three(task.load("valid"))[0], args.dev_limit, 0)
    out = Path(args.runs) / args.arm
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "sql_learning_curve", "arms": {}}
    arm = report["arms"].setdefault(args.arm, {"prompt_options": prompt_options, "points": []})
    done = {p["train_examples"] for p in arm["points"]}
    if "draft_copy" not in report and prompt_options.get("draft"):
        from ehrforge.tasks.sql.recipe import draft_copy_predictions

        report["draft_copy"] = task.score(dev, draft_copy_predictions(task, dev))  # the no-model baseline
    offset = examples_before(Path(args.runs), args.arm)
    base = [(0, Path(args.model))] if args.with_base else []  # point 0: the untrained model with the arm's prompt
    for seen, folder in base + snapshot_folders(out):
        if offset + seen in done and not args.rescore:
            continue
        manifest = json.loads((folder / "ehrforge_model.json").read_text()) if seen else {"train_records": 1}
        t0 = time.perf_counter()
        backend = load_model(str(folder), task, LoadOptions(dtype=args.dtype, batch_size=8))
        metrics = evaluate(task, {args.arm: backend}, dev, batch_size=8)[args.arm]
        del backend
        release_freed_memory()
        final = json.loads((out / "ehrforge_model.json").read_text()) if (out / "ehrforge_model.json").exists() else {}
        per_epoch = max(1, manifest["train_records"] or manifest.get("extra_rows", 0))
        point = {"train_examples": offset + seen, "epochs": round((offset + seen) / per_epoch, 3),
                 "execution_accuracy_no_threshold": metrics["execution_accuracy"],
                 "RS0": metrics["RS0"], "RS10": metrics["RS10"], "eval_s": round(time.perf_counter() - t0, 1),
                 "steps": manifest.get("steps"), "train_s": final.get("train_s"),
                 "tokens_per_s": final.get("tokens_per_s"), "peak_rss_mb": round(peak_rss_mb(), 1)}
        record_point(args.arm, prompt_options, point, dev, report)
        print(json.dumps({args.arm: point}))


def record_point(arm_name: str, prompt_options: dict, point: dict, dev: list, report: dict | None = None) -> None:
    """Add (or replace) one point of an arm in the results file (``sql_ship.py`` adds the shipped adapter's)."""
    from ehrforge.tasks.sql import data as sql_data

    if report is None:
        report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "sql_learning_curve", "arms": {}}
    arm = report["arms"].setdefault(arm_name, {"prompt_options": prompt_options, "points": []})
    arm["points"] = sorted([p for p in arm["points"] if p["train_examples"] != point["train_examples"]] + [point],
                           key=lambda p: p["train_examples"])
    report.update(device=device_info(), sizes={"dev": len(dev), "dev_unanswerable": sum(not sql_data.is_answerable(r) for r in dev)},
                  command="python benchmarks/sql_learning_curve.py --data <EHRSQL v1.0> --arm ARM --train/--evaluate",
                  note="points are snapshots along one run per arm (linear decay over the whole split); "
                       "RS uses the execution filter only, no entropy threshold")
    atomic_write_json(RESULTS, report)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="EHRSQL version folder")
    ap.add_argument("--arm", choices=sorted(ARMS), required=True)
    ap.add_argument("--train", action="store_true", help="train (or resume) the arm's run")
    ap.add_argument("--prepare", action="store_true", help="with --train: only build the arm's training rows file")
    ap.add_argument("--evaluate", action="store_true", help="score the arm's snapshots on the dev part")
    ap.add_argument("--with-base", action="store_true", help="also score the untrained model as point 0")
    ap.add_argument("--rescore", action="store_true", help="score snapshots that already have a point again")
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--dev-limit", type=int, default=100)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--runs", default="benchmarks/runs/sql_curve")
    ap.add_argument("--plot", action="store_true", help="only redraw the PNG from the results file")
    args = ap.parse_args()
    if args.train and not args.plot:
        train(args)
    if args.evaluate and not args.plot:
        evaluate_arm(args)
    if RESULTS.exists():
        plot(json.loads(RESULTS.read_text()), RESULTS.with_suffix(".png"))


def plot(report: dict, out: Path) -> None:
    """Execution accuracy (threshold lifted) against examples seen, one line per arm, the draft copy as a floor."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, arm in sorted(report["arms"].items()):
        points = [p for p in arm["points"] if p["train_examples"]]
        ax.plot([p["train_examples"] for p in points], [p["execution_accuracy_no_threshold"] for p in points], "o-", label=name)
    if "draft_copy" in report:
        ax.axhline(report["draft_copy"]["execution_accuracy"], color="grey", ls="--", label="draft copy (no model)")
    ax.set_xscale("log")
    seen = sorted({p["train_examples"] for arm in report["arms"].values() for p in arm["points"] if p["train_examples"]})
    ax.set_xticks(seen, [f"{n:,}" for n in seen], minor=False)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("training examples seen (one run, linear decay over the split)")
    ax.set_ylabel(f"execution accuracy, dev {report.get('sizes', {}).get('dev', '?')} (threshold lifted)")
    ax.set_title("SQL student learning curve (SmolLM2-135M, LoRA)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
