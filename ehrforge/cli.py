"""The ``ehrforge`` command line: few verbs, each a step of the lifecycle.

    ehrforge data   build the data a task needs (e.g. the synthetic EHR database)
    ehrforge train  fine-tune a small local model with LoRA
    ehrforge eval   score models side by side with the task's own metric
    ehrforge ask    ask a trained model one question (answers or abstains)
    ehrforge demo   the whole SQL recipe on bundled data and the bundled model

Errors in user input print one line (what is wrong — how to fix it) and exit 1. Set EHRFORGE_DEBUG=1 for tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ehrforge.errors import EhrforgeError

app = typer.Typer(
    name="ehrforge",
    help="Build, evaluate and serve private clinical language models on your own machines. Nothing leaves the building.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

TaskOpt = Annotated[str, typer.Option("--task", "-t", help="Recipe: sql, fhirqa, classify, extract, calc.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="'bundled', a local HF folder, a LoRA adapter folder, or a .gguf file.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML run configuration.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a setting: --set sft.max_steps=20 (repeatable).")]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="Data source (e.g. an EHRSQL folder or JSONL file); default: bundled.")]
DbOpt = Annotated[Optional[str], typer.Option("--db", help="EHR database: SQLite/DuckDB file or postgresql:// URL (sql task).")]


def _config(config: Path | None, overrides: list[str] | None, **fields: object):
    from ehrforge.config import load_config

    return load_config(config, overrides, **fields)


def _task(cfg, **extra: object):
    from ehrforge.tasks import get_task

    options = dict(cfg.task_options)
    if cfg.task == "sql":
        options.setdefault("db", cfg.db)
        options.setdefault("source", cfg.data.source)
        options.setdefault("entropy", cfg.abstention.entropy)
        options.setdefault("threshold", cfg.abstention.threshold)
        options.setdefault("execution_filter", cfg.abstention.execution_filter)
    if cfg.max_new_tokens:
        options.setdefault("max_new_tokens", cfg.max_new_tokens)
    options.update({k: v for k, v in extra.items() if v is not None})
    return get_task(cfg.task, **options)


def _default_database(cfg) -> None:
    """The sql task scores and answers against a database: default to the cached synthetic demo one."""
    if cfg.task == "sql" and cfg.db is None:
        from ehrforge.tasks.sql.recipe import ensure_database

        cfg.db = str(ensure_database(None, cfg.data.source))


def _backend(spec: str, cfg=None):
    from ehrforge.core.backends import is_local_model_spec, load_backend

    # Encoder students are not chat models: their folders carry a marker naming the predictor that runs them.
    if Path(spec).is_dir() and (Path(spec) / "ehrforge_seqcls.json").exists():
        from ehrforge.tasks.classify.seqcls import SeqClsBackend  # classification head (classify)

        return SeqClsBackend(spec)
    if Path(spec).is_dir() and (Path(spec) / "ehrforge_extract.json").exists():
        from ehrforge.tasks.extract.extractor import EncoderExtractor  # token-classification NER + relations (extract)

        return EncoderExtractor(spec)
    if is_local_model_spec(spec) and cfg is not None:
        return load_backend(spec, device=cfg.sft.device, dtype=cfg.sft.dtype, batch_size=cfg.batch_size)
    return load_backend(spec)


@app.command()
def data(
    task: TaskOpt = "sql",
    db: DbOpt = None,
    source: DataOpt = None,
    rebuild: Annotated[bool, typer.Option(help="Rebuild even if the database exists.")] = False,
) -> None:
    """Build the data a task needs. For sql: the synthetic MIMIC-IV-shaped database, seeded with the entities the questions ask about so gold SQL returns answers."""
    from ehrforge.errors import UnknownNameError

    if task != "sql":
        raise UnknownNameError(f"'ehrforge data' builds data for the sql task only, not '{task}'", "use `ehrforge synth --task " + task + "`")
    from ehrforge.tasks.sql.recipe import ensure_database

    path = ensure_database(db, source, rebuild=rebuild)
    typer.echo(str(path))


def _teacher(spec: str, task, cfg, sources: list[str], seed: int = 0):
    """A teacher backend; ``simulated[:noise]`` is the offline stand-in teacher of the classify recipe."""
    if spec.startswith("simulated"):
        from ehrforge.errors import UnknownNameError

        if task.name != "classify":
            raise UnknownNameError(f"the simulated teacher exists for the classify task only, not {task.name}", "pass a real teacher backend")
        from ehrforge.tasks.classify.simulated_teacher import simulated_teacher_for

        _, _, noise = spec.partition(":")
        return simulated_teacher_for(task, sources, noise_rate=float(noise) if noise else 0.25, seed=seed)
    return _backend(spec, cfg)


label_app = typer.Typer(help="Label data with a teacher model, with a confidence per label; filter into kept labels and a review queue; merge reviews back.", no_args_is_help=False)
app.add_typer(label_app, name="label")


@label_app.callback(invoke_without_command=True)
def label(
    ctx: typer.Context,
    task: TaskOpt = "classify",
    teacher: Annotated[Optional[str], typer.Option(help="Teacher backend spec (openai:URL#model, a local model, or simulated[:noise] for classify).")] = None,
    input_: Annotated[Optional[Path], typer.Option("--input", "-i", help="Records to label (JSONL, or a folder/file of tables for classify).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Labelled JSONL (re-running resumes).")] = None,
    method: Annotated[str, typer.Option(help="Confidence: auto, logprob, consistency, verbalised, agreement.")] = "auto",
    samples: Annotated[int, typer.Option(help="Samples per record for self-consistency.")] = 1,
    second_teacher: Annotated[Optional[str], typer.Option(help="Second teacher for the agreement method.")] = None,
    retries: Annotated[int, typer.Option(help="Retries before a record is recorded as unlabelled.")] = 2,
    temperature: Annotated[float, typer.Option(help="Sampling temperature for self-consistency.")] = 0.7,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Label every record with a teacher: a label and a confidence each; resumable; failures recorded as unlabelled, never as labels."""
    if ctx.invoked_subcommand is not None:
        return
    from ehrforge.core.label import label_file
    from ehrforge.errors import ConfigError

    missing = [f"--{name} is required" for name, v in (("teacher", teacher), ("input", input_), ("out", out)) if v is None]
    if missing:
        raise ConfigError(missing, "e.g. ehrforge label --task classify --teacher simulated --input tables.jsonl --out labelled.jsonl")
    cfg = _config(config, set_, task=task, teacher=teacher)
    t = _task(cfg)
    stats = label_file(
        t, _teacher(teacher, t, cfg, [str(input_)], seed), input_, out, method=method, samples=samples,
        second_teacher=_teacher(second_teacher, t, cfg, [str(input_)], seed + 1) if second_teacher else None,
        retries=retries, temperature=temperature, batch_size=cfg.batch_size, seed=seed,
    )
    typer.echo(json.dumps(stats, indent=2, default=str))


@label_app.command("filter")
def label_filter(
    in_: Annotated[Path, typer.Option("--in", help="Labelled JSONL from `ehrforge label`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Kept (confident) labels.")],
    review: Annotated[Path, typer.Option(help="Review queue JSONL (a CSV and an Argilla export are written beside it).")],
    min_confidence: Annotated[float, typer.Option(help="Keep labels at or above this confidence (threshold strategy).")] = 0.9,
    strategy: Annotated[str, typer.Option(help="threshold, top-fraction or per-label-top-fraction.")] = "threshold",
    keep_fraction: Annotated[float, typer.Option(help="Fraction kept by the top-fraction strategies.")] = 0.5,
    task: TaskOpt = "classify",
) -> None:
    """Keep confident labels; send the rest to a review queue a person can edit (JSONL, CSV, Argilla)."""
    from ehrforge.core.label import filter_labels
    from ehrforge.tasks import get_task

    stats = filter_labels(in_, out, review, strategy, min_confidence, keep_fraction=keep_fraction, labels=getattr(get_task(task), "labels", None))
    typer.echo(json.dumps(stats, indent=2, default=str))


@label_app.command("import-review")
def label_import_review(
    labelled: Annotated[Path, typer.Option(help="Labelled JSONL from `ehrforge label`.")],
    reviewed: Annotated[Path, typer.Option(help="The edited review file (JSONL, CSV or Argilla export).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged labels with provenance teacher / human / filtered-out.")],
    task: TaskOpt = "classify",
) -> None:
    """Merge reviewed labels back, recording where each label came from."""
    from ehrforge.core.label import import_review
    from ehrforge.tasks import get_task

    t = get_task(task)
    stats = import_review(labelled, reviewed, out, labels=getattr(t, "labels", None), normalise=getattr(t, "normalise_label", None))
    typer.echo(json.dumps(stats, indent=2, default=str))


@app.command()
def synth(
    task: TaskOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL (re-running resumes it).")],
    n: Annotated[int, typer.Option("--n", help="How many items to generate.")] = 200,
    teacher: Annotated[Optional[str], typer.Option(help="Teacher backend spec; default: the task's built-in generator.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (generation is deterministic for a seed).")] = 0,
    entities: Annotated[Optional[str], typer.Option(help="Entity types to generate, e.g. Disease,Chemical (extract).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write synthetic training data for a task (calc notes, extract sentences with spans, fhirqa questions), validated, with progress, resumable."""
    from ehrforge.core.progress import console
    from ehrforge.errors import UnknownNameError

    cfg = _config(config, set_, task=task, teacher=teacher)
    t = _task(cfg, entities=entities)
    if not hasattr(t, "synthesize"):
        raise UnknownNameError(f"the {t.name} task has no synthetic-data generator", "use `ehrforge label` to label your own data instead")
    stats = t.synthesize(out, n=n, teacher=_backend(cfg.teacher, cfg) if cfg.teacher else None, seed=seed)
    console.print(f"wrote {out}")
    typer.echo(json.dumps(stats, indent=2, default=str))


@app.command("phi-check")
def phi_check(
    path: Annotated[Path, typer.Argument(help="A span JSONL file (e.g. from `ehrforge synth`).")],
    text_key: Annotated[str, typer.Option(help="Field holding the text.")] = "text",
) -> None:
    """Scan synthetic text for PHI patterns (names, dates, MRNs, phones, e-mails) before sharing it; reports types and offsets only, never the text. Exits 1 when anything is found."""
    from ehrforge.tasks.extract.phi import phi_check_file

    report = phi_check_file(path, text_key=text_key)
    typer.echo(json.dumps(report, indent=2, default=str))
    if report.get("records_with_phi", 0) > 0:
        raise typer.Exit(1)


@app.command()
def train(
    task: TaskOpt = "sql",
    model: ModelOpt = "bundled",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the LoRA adapter.")] = Path("runs/model"),
    source: DataOpt = None,
    db: DbOpt = None,
    limit: Annotated[Optional[int], typer.Option(help="Use at most this many training records.")] = None,
    stage: Annotated[Optional[str], typer.Option(help="Training stage for tasks that have several: sft or grpo (calc).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fine-tune a small local model with LoRA on a task's training split (resumes an interrupted run). --stage grpo continues with GRPO and the task's verifiable rewards (--model: the SFT adapter, or the base model for the no-SFT ablation)."""
    from ehrforge.core.sft import SFTConfig, train_sft

    cfg = _config(config, set_, task=task, model=model, db=db)
    if source:
        cfg.data.source = source
    if limit:
        cfg.data.train_limit = limit
    t = _task(cfg, stage=stage)
    records = t.load("train", limit=cfg.data.train_limit, seed=cfg.data.seed, source=cfg.data.source)
    if getattr(t, "stage", "sft") == "grpo":
        from ehrforge.core.grpo import GRPOSettings

        path = t.train(records, cfg.model, out, GRPOSettings.from_mapping(cfg.grpo))
    elif hasattr(t, "train"):
        path = t.train(records, cfg.model, out, SFTConfig(**cfg.sft.model_dump()))
    else:
        path = train_sft(t, records, cfg.model, out, SFTConfig(**cfg.sft.model_dump()))
    typer.echo(str(path))


@app.command("eval")
def eval_(
    task: TaskOpt = "sql",
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Model(s) to compare: name=spec or spec (repeatable).")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="Also score a teacher (any backend spec, e.g. openai:http://host/v1#name).")] = None,
    source: DataOpt = None,
    db: DbOpt = None,
    split: Annotated[str, typer.Option(help="Split to score.")] = "valid",
    limit: Annotated[Optional[int], typer.Option(help="Score at most this many records (stratified).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the metrics as JSON here.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Score models side by side with the task's own metric (e.g. base vs fine-tuned vs teacher)."""
    from ehrforge.core.evaluate import evaluate
    from ehrforge.core.io import atomic_write_json
    from ehrforge.core.progress import console

    cfg = _config(config, set_, task=task, db=db)
    if source:
        cfg.data.source = source
    _default_database(cfg)
    t = _task(cfg)
    records = t.load(split, limit=limit or cfg.data.valid_limit, seed=cfg.data.seed, source=cfg.data.source)
    specs: dict[str, str] = {}
    for item in model or [cfg.model]:
        name, sep, spec = item.partition("=")
        specs[name if sep else Path(item).name or item] = spec if sep else item
    backends = {name: _backend(spec, cfg) for name, spec in specs.items()}
    if teacher:
        backends["teacher"] = _teacher(teacher, t, cfg, [source] if source else [], cfg.data.seed)
    results = evaluate(t, backends, records, batch_size=cfg.batch_size)
    console.print(t.results_table(results, f"{t.name} · {split} · n={len(records)}"))
    if json_out:
        atomic_write_json(json_out, results)
    else:
        typer.echo(json.dumps(results, indent=2, default=str))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in plain language.")],
    task: TaskOpt = "sql",
    model: ModelOpt = "bundled",
    db: DbOpt = None,
    threshold: Annotated[Optional[float], typer.Option(help="Abstain when token entropy exceeds this (sql).")] = None,
    patient: Annotated[Optional[str], typer.Option(help="Patient id (fhirqa).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON answer.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Ask one question. Prints the answer (for sql: the SQL and the result table) with a confidence, or an abstention with its reason."""
    from rich.table import Table

    from ehrforge.core.progress import console

    cfg = _config(config, set_, task=task, model=model, db=db)
    _default_database(cfg)
    t = _task(cfg, threshold=threshold)
    backend = _backend(cfg.model, cfg)
    context = {"patient_id": patient} if patient else {}
    reply = t.ask(backend, question, **context)
    if as_json:
        typer.echo(json.dumps(reply, indent=2, default=str))
        return
    out = console.__class__()  # stdout console for the answer itself
    if reply.get("abstained"):
        out.print(f"[bold yellow]I can't answer that reliably[/] — {reply.get('reason')} (confidence {reply.get('confidence', 0):.2f})")
        if reply.get("answer") and reply["answer"].get("sql"):
            out.print(f"[dim]rejected SQL: {reply['answer']['sql']}[/]")
        return
    answer = reply["answer"] or {}
    if "sql" in answer:
        out.print(f"[bold]SQL[/] {answer['sql']}")
    if "rows" in answer:
        table = Table(*answer.get("columns", []))
        for row in answer["rows"][:50]:
            table.add_row(*[str(v) for v in row])
        out.print(table)
        if answer.get("truncated") or len(answer["rows"]) > 50:
            out.print(f"[dim]({len(answer['rows'])} rows; showing 50{', truncated at the row limit' if answer.get('truncated') else ''})[/]")
    for key, value in answer.items():
        if key not in ("sql", "rows", "columns", "truncated"):
            out.print(f"[bold]{key}[/] {value}")
    out.print(f"confidence {reply.get('confidence', 0):.2f}")


@app.command()
def serve(
    model: ModelOpt = "bundled",
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind; a non-loopback address requires issued tokens.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    tokens_file: Annotated[Optional[str], typer.Option(help="Bearer tokens, one 'name:token' per line (or $EHRFORGE_SERVE_TOKENS).")] = None,
    audit_log: Annotated[Optional[str], typer.Option(help="Append who-asked-what (hashed) to this JSONL file.")] = None,
    cors_origin: Annotated[Optional[list[str]], typer.Option(help="Allow this browser origin (CORS is off by default; repeatable).")] = None,
    log_patient_text: Annotated[bool, typer.Option(help="Also write question text into the audit log (off by default).")] = False,
    workers: Annotated[int, typer.Option(help="Concurrent model workers.")] = 1,
    queue_size: Annotated[int, typer.Option(help="Requests that may wait; more get 503.")] = 32,
    rate_per_minute: Annotated[float, typer.Option(help="Requests per minute per token.")] = 120.0,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body (413 above).")] = 64 * 1024,
    task: Annotated[Optional[list[str]], typer.Option("--task", "-t", help="Serve only these tasks (default: all that can answer).")] = None,
    model_name: Annotated[Optional[str], typer.Option(help="Model id reported by /v1/models.")] = None,
) -> None:
    """Serve a model privately: OpenAI-compatible /v1/chat/completions, /v1/<task>/ask endpoints that answer or abstain, and a web page. Token auth, size and rate limits, bounded queue, hashed audit log."""
    from ehrforge.core.serve import run as serve_run

    if db is None and (not task or "sql" in task):
        from ehrforge.tasks.sql.recipe import ensure_database

        db = str(ensure_database(None, None))
    serve_run.serve(model, db, host=host, port=port, tokens_file=tokens_file, audit_log=audit_log,
                    cors_origins=cors_origin or (), log_patient_text=log_patient_text, workers=workers,
                    queue_size=queue_size, rate_per_minute=rate_per_minute, max_body_bytes=max_body_bytes,
                    tasks=task, model_name=model_name)


@app.command()
def export(
    model: ModelOpt,
    gguf: Annotated[Optional[Path], typer.Option(help="Write a GGUF file here (LoRA adapters are merged first).")] = None,
    gguf_type: Annotated[str, typer.Option(help="GGUF tensor type: f16, q8_0 or f32.")] = "f16",
    merged: Annotated[Optional[Path], typer.Option(help="Write a merged HF folder here (for vLLM or other tools).")] = None,
) -> None:
    """Export a trained model: a GGUF file for llama.cpp CPU serving, or a merged HF folder for vLLM."""
    from ehrforge.core.export import export_gguf, export_merged
    from ehrforge.core.models import resolve_model
    from ehrforge.errors import ConfigError

    if gguf is None and merged is None:
        raise ConfigError(["nothing to export"], "pass --gguf OUT.gguf and/or --merged OUT_DIR")
    source = resolve_model(model)
    if merged is not None:
        typer.echo(str(export_merged(source, merged)))
    if gguf is not None:
        typer.echo(str(export_gguf(source, gguf, out_type=gguf_type)))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (reused to resume).")] = Path("runs/demo"),
    train_limit: Annotated[int, typer.Option(help="Training questions (stratified sample).")] = 200,
    valid_limit: Annotated[int, typer.Option(help="Questions in each of dev/test.")] = 20,
    steps: Annotated[int, typer.Option(help="LoRA optimisation steps (batch 4); sized to finish in ~10 min on 2 CPU cores.")] = 16,
    max_new_tokens: Annotated[int, typer.Option(help="Generation budget per answer.")] = 192,
    stages: Annotated[int, typer.Option(help="1: SFT; 2: also self-training on pseudo-labelled unanswerable questions.")] = 1,
    model: ModelOpt = "bundled",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """The SQL recipe end to end on bundled data: build the synthetic EHR database, load the bundled model, LoRA fine-tune briefly, tune the abstention threshold, and print base vs fine-tuned reliability scores."""
    from ehrforge.core.evaluate import metrics_table
    from ehrforge.core.progress import console
    from ehrforge.tasks.sql.recipe import TABLE_KEYS, run_sql_recipe

    cfg = _config(config, [f"sft.max_steps={steps}", "sft.learning_rate=1e-3", "sft.max_seq_len=1024", *(set_ or [])],
                  task="sql", model=model, output_dir=out, max_new_tokens=max_new_tokens)
    cfg.data.train_limit = cfg.data.train_limit or train_limit
    cfg.data.valid_limit = cfg.data.valid_limit or valid_limit
    result = run_sql_recipe(cfg, stages=stages)
    console.print(metrics_table(result["rows"], title=f"EHRSQL reliability on the synthetic DB · test n={result['sizes']['test']}", keys=TABLE_KEYS))
    typer.echo(json.dumps({k: {m: v for m, v in row.items() if m in TABLE_KEYS} for k, row in result["rows"].items()}, default=str))
    console.print(f"results: {Path(out) / 'sql_results.json'}")


def _quiet_libraries() -> None:
    """Library progress bars and warnings would bury our one-line errors; our own rich bars show progress."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "datasets", "peft", "trl", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass


def main() -> None:
    _quiet_libraries()
    try:
        app()
    except EhrforgeError as exc:
        typer.secho(f"error: {exc.one_line()}", err=True, fg="red")
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted — re-run the same command to resume", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - never dump a traceback (it may hold patient text) unless asked
        if os.environ.get("EHRFORGE_DEBUG"):
            raise
        typer.secho(f"error: unexpected {type(exc).__name__} — rerun with EHRFORGE_DEBUG=1 for details and report it", err=True, fg="red")
        sys.exit(1)


if __name__ == "__main__":
    main()
