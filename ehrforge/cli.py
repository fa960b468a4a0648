"""The ``ehrforge`` command line: few verbs, each a step of the lifecycle, the same for every task.

    ehrforge data   build the data a task needs (e.g. the synthetic EHR database)
    ehrforge train  fine-tune a small local model (LoRA SFT, or GRPO with the task's verifiable rewards)
    ehrforge eval   score models side by side with the task's own metric
    ehrforge ask    ask a trained model one question (answers or abstains)
    ehrforge demo   a recipe end to end on bundled data and the bundled model

Verbs dispatch on what a task declares (its ``Options``, ``capabilities`` and ``ask_fields``); this module never
names a task. Errors in user input print one line (what is wrong — how to fix it) and exit 1. Set EHRFORGE_DEBUG=1
for tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ehrforge.serve.settings import ServeSettings  # the one declaration of the serve defaults
from ehrforge.cli_inputs import context_pairs, distinct, not_inside_model, os_error_line, undecodable_argument, writable
from ehrforge.errors import ConfigError, DataError, EhrforgeError
from ehrforge.tasks import DEFAULT_LABEL_TASK

app = typer.Typer(
    name="ehrforge",
    help="Build, evaluate and serve private clinical language models on your own machines. Nothing leaves the building.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _flags_show_no_type() -> None:
    """typer 0.29 prints ``<bool>`` beside every flag in --help (``--json <bool>``), which reads as if the flag took
    a value; a flag has no value to describe, so show none."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_ehrforge", False):
        return

    def display_type_rich(self, ctx):  # noqa: ANN001 - typer's signature
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._ehrforge = True
    TyperOption.display_type_rich = display_type_rich


_flags_show_no_type()

TaskOpt = Annotated[Optional[str], typer.Option("--task", "-t", help="Recipe (see `ehrforge tasks`); default: sql.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="'bundled', a local HF folder, a folder written by `ehrforge train`, a .gguf file, or openai:URL#name.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML run configuration.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a setting: --set sft.max_steps=20, --set task_options.x=y (repeatable).")]
DefaultModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Default: the task's shipped student where it has one (e.g. bundled-sql), else 'bundled'. Or a local HF folder, a folder written by `ehrforge train`, a .gguf file, or openai:URL#name.")]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="Data in the task's format (a file or folder); default: the task's bundled data.")]
DbOpt = Annotated[Optional[str], typer.Option("--db", help="Database, for tasks that read one: SQLite/DuckDB file or postgresql:// URL.")]


# -- shared steps -------------------------------------------------------------------------------------------------
def _config(config: Path | None, overrides: list[str] | None, **fields: object):
    from ehrforge.config import load_config

    return load_config(config, overrides, **fields)


def _task(cfg, **flags: object):
    """The configured task, by the one precedence of :func:`ehrforge.tasks.resolve_task` (flag > ``--set`` > YAML >
    a trained folder's manifest > the task's defaults)."""
    from ehrforge.tasks import resolve_task

    return resolve_task(cfg, **flags)


def _ready(task) -> None:
    """Open what the task reads (a database) now, so a bad one fails before any model is loaded."""
    from ehrforge.tasks import Capability

    if task.supports(Capability.RESOURCES):
        task.check_ready()


def _load(spec: str, task, cfg):
    from ehrforge.core.loader import LoadOptions, load_model

    return load_model(spec, task, LoadOptions(device=cfg.sft.device, dtype=cfg.sft.dtype, batch_size=cfg.batch_size))


def _teacher(spec: str, task, cfg, sources: list[str], seed: int = 0):
    """A teacher backend; ``simulated[:noise]`` is a task's offline stand-in teacher, where it has one."""
    from ehrforge.tasks import Capability

    if spec.split(":")[0] == "simulated":
        task.require(Capability.STAND_IN_TEACHER, "--teacher simulated", "pass a real teacher backend (openai:URL#model or a local model)")
        _, _, noise = spec.partition(":")
        try:
            rate = float(noise) if noise else None
        except ValueError:
            raise ConfigError([f"--teacher {spec}: the noise rate must be a number in [0, 1]"], "e.g. --teacher simulated:0.25") from None
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ConfigError([f"--teacher {spec}: the noise rate must be in [0, 1]"], "e.g. --teacher simulated:0.25")
        return task.stand_in_teacher(rate, sources, seed)
    return _load(spec, task, cfg)


# -- verbs --------------------------------------------------------------------------------------------------------
@app.command("tasks")
def tasks_() -> None:
    """List the registered tasks: what each does, its options, capabilities and what an ask needs."""
    from ehrforge.tasks import task_class, task_names

    for name in task_names():
        cls = task_class(name)
        caps = ", ".join(sorted(c.value for c in cls.capabilities)) or "—"
        typer.echo(f"{name}: {cls.summary}\n  options: {', '.join(cls.Options.model_fields)}\n  capabilities: {caps}"
                   + (f"\n  ask needs: {', '.join(cls.ask_fields)}" if cls.ask_fields else ""))


@app.command()
def data(
    task: TaskOpt = None,
    db: DbOpt = None,
    source: DataOpt = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild even if it exists.")] = False,
) -> None:
    """Build the data a task needs (for sql: the synthetic MIMIC-IV-shaped database, seeded with the entities the questions ask about so gold SQL returns answers)."""
    from ehrforge.tasks import Capability

    cfg = _config(None, None, task=task)
    if source:
        cfg.data.source = source
    if db and "://" not in db:  # before the task opens (or misses) the file
        folder = Path(db).expanduser().parent
        if not folder.is_dir():
            raise DataError(f"--db {db}: the folder {folder} does not exist", f"create it first (mkdir -p {folder}) or pass a path in an existing folder")
        writable(Path(db), "--db")
    t = _task(cfg, db=db)
    t.require(Capability.DATA, "ehrforge data", f"use `ehrforge synth --task {t.name}` to write training data")
    built = t.build_data(rebuild=rebuild)
    if t.supports(Capability.RESOURCES):
        t.check_ready()  # an existing file is reported ready only when it opens as a database
    typer.echo(str(built))


label_app = typer.Typer(help="Label data with a teacher model, with a confidence per label; filter into kept labels and a review queue; merge reviews back.", no_args_is_help=False)
app.add_typer(label_app, name="label")


@label_app.callback(invoke_without_command=True)
def label(
    ctx: typer.Context,
    task: Annotated[str, typer.Option("--task", "-t", help="Recipe whose records are labelled.")] = DEFAULT_LABEL_TASK,
    teacher: Annotated[Optional[str], typer.Option(help="Teacher backend spec (openai:URL#model, a local model, or simulated[:noise] where the task has a stand-in).")] = None,
    input_: Annotated[Optional[Path], typer.Option("--input", "-i", help="Records to label (JSONL, or a folder/file in the task's format).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Labelled JSONL (re-running resumes).")] = None,
    method: Annotated[str, typer.Option(help="Confidence: auto, logprob, consistency, verbalised, agreement.")] = "auto",
    samples: Annotated[int, typer.Option(min=1, help="Samples per record for self-consistency.")] = 1,
    second_teacher: Annotated[Optional[str], typer.Option(help="Second teacher for the agreement method.")] = None,
    retries: Annotated[int, typer.Option(min=0, help="Retries before a record is recorded as unlabelled.")] = 2,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature for self-consistency.")] = 0.7,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Label every record with a teacher: a label and a confidence each; resumable; failures recorded as unlabelled, never as labels."""
    if ctx.invoked_subcommand is not None:
        return
    from ehrforge.core.label import label_file

    missing = [f"--{name} is required" for name, v in (("teacher", teacher), ("input", input_), ("out", out)) if v is None]
    if missing:
        raise ConfigError(missing, "e.g. ehrforge label --task classify --teacher simulated --input tables.jsonl --out labelled.jsonl")
    distinct({"--out": out}, {"--input": input_})
    writable(out, "--out")
    cfg = _config(config, set_, task=task, teacher=teacher)
    t = _task(cfg)
    from ehrforge.core.io import exclusive_output

    with exclusive_output(out, "--out"):
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
    min_confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="Keep labels at or above this confidence (threshold strategy).")] = 0.9,
    strategy: Annotated[str, typer.Option(help="threshold, top-fraction or per-label-top-fraction.")] = "threshold",
    keep_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction kept by the top-fraction strategies.")] = 0.5,
    task: Annotated[str, typer.Option("--task", "-t", help="Recipe whose labels are filtered.")] = DEFAULT_LABEL_TASK,
) -> None:
    """Keep confident labels; send the rest to a review queue a person can edit (JSONL, CSV, Argilla)."""
    from ehrforge.core.label import filter_labels
    from ehrforge.tasks import get_task

    distinct({"--out": out, "--review": review}, {"--in": in_})
    writable(out, "--out")
    writable(review, "--review")
    stats = filter_labels(in_, out, review, strategy, min_confidence, keep_fraction=keep_fraction, labels=getattr(get_task(task), "labels", None))
    typer.echo(json.dumps(stats, indent=2, default=str))


@label_app.command("import-review")
def label_import_review(
    labelled: Annotated[Path, typer.Option(help="Labelled JSONL from `ehrforge label`.")],
    reviewed: Annotated[Path, typer.Option(help="The edited review file (JSONL, CSV or Argilla export).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged labels with provenance teacher / human / filtered-out / unreviewed.")],
    task: Annotated[str, typer.Option("--task", "-t", help="Recipe whose labels are merged.")] = DEFAULT_LABEL_TASK,
) -> None:
    """Merge reviewed labels back, recording where each label came from."""
    from ehrforge.core.label import import_review
    from ehrforge.tasks import get_task

    distinct({"--out": out}, {"--labelled": labelled, "--reviewed": reviewed})
    writable(out, "--out")
    t = get_task(task)
    stats = import_review(labelled, reviewed, out, labels=getattr(t, "labels", None), normalise=getattr(t, "normalise_label", None))
    typer.echo(json.dumps(stats, indent=2, default=str))


@app.command()
def synth(
    task: Annotated[str, typer.Option("--task", "-t", help="Recipe to write training data for.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL (re-running resumes it).")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many items to generate.")] = 200,
    teacher: Annotated[Optional[str], typer.Option(help="Teacher backend spec; default: the task's built-in generator.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (generation is deterministic for a seed).")] = 0,
    entities: Annotated[Optional[str], typer.Option(help="Entity types to generate, e.g. Disease,Chemical (tasks with an 'entities' option).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out that this command did not write.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write synthetic training data for a task, validated, with progress, resumable."""
    from ehrforge.core.io import check_own_output, exclusive_output
    from ehrforge.core.progress import console
    from ehrforge.tasks import Capability

    writable(out, "--out")
    cfg = _config(config, set_, task=task, teacher=teacher)
    t = _task(cfg, entities=entities)
    t.require(Capability.SYNTH, "ehrforge synth", "use `ehrforge label` to label your own data instead")
    with exclusive_output(out, "--out"):
        # resuming is for this command's own file: same task, teacher, seed and entity types
        check_own_output(out, {"task": t.name, "teacher": cfg.teacher or "built-in", "seed": seed,
                               "entities": entities or "default"}, overwrite=overwrite)
        stats = t.synthesize(out, n=n, teacher=_load(cfg.teacher, t, cfg) if cfg.teacher else None, seed=seed)
    console.print(f"wrote {out}")
    typer.echo(json.dumps(stats, indent=2, default=str))


@app.command("phi-check")
def phi_check(
    path: Annotated[Path, typer.Argument(help="A JSONL file (e.g. from `ehrforge synth`); every line and every string field is checked.")],
    text_key: Annotated[str, typer.Option(help="Field holding the main text (all string fields are checked).")] = "text",
) -> None:
    """Scan text for PHI patterns (names, dates, MRNs, phones, e-mails) before sharing it; reports types and offsets only, never the text. Exits 1 when anything is found or a line cannot be read."""
    from ehrforge.core.phi import phi_check_file

    report = phi_check_file(path, text_key=text_key)
    typer.echo(json.dumps(report, indent=2, default=str))
    if report.get("records_with_phi", 0) > 0 or report.get("unreadable", 0) or report.get("findings", 0):
        raise typer.Exit(1)


@app.command()
def train(
    task: TaskOpt = None,
    model: ModelOpt = "bundled",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the trained model.")] = Path("runs/model"),
    source: DataOpt = None,
    db: DbOpt = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use at most this many training records.")] = None,
    stage: Annotated[str, typer.Option(help="sft (supervised) or grpo (GRPO with the task's verifiable rewards; --model: an SFT output, or the base model for the no-SFT ablation).")] = "sft",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fine-tune a small local model on a task's training split (resumes an interrupted run). The folder records the task, its prompt format and how to run it, so eval, ask and serve load it as is."""
    cfg = _config(config, set_, task=task, model=model)
    if source:
        cfg.data.source = source
    if limit:
        cfg.data.train_limit = limit
    t = _task(cfg, db=db)
    if stage not in t.stages():
        raise ConfigError([f"--stage {stage}: the {t.name} task trains in stages: {', '.join(t.stages())}"])
    if stage == "grpo":
        _ready(t)  # rewards may read the task's resources (e.g. execute SQL)
    from ehrforge.core.models import MANIFEST

    not_inside_model(out, cfg.model)
    writable(out / MANIFEST, "--out")
    records = t.load("train", limit=cfg.data.train_limit, seed=cfg.data.seed, source=cfg.data.source)
    from ehrforge.core.io import exclusive_output
    from ehrforge.core.training import train as train_task

    with exclusive_output(out / MANIFEST, "--out"):
        path = train_task(t, records, cfg.model, out, cfg.grpo if stage == "grpo" else cfg.sft, stage=stage)
    typer.echo(str(path))


@app.command("eval")
def eval_(
    task: TaskOpt = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Model(s) to compare: name=spec or spec (repeatable); default: bundled.")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="Also score a teacher (any backend spec, e.g. openai:http://host/v1#name).")] = None,
    source: DataOpt = None,
    db: DbOpt = None,
    split: Annotated[str, typer.Option(help="Split to score (with --data: the split inside that file or folder).")] = "valid",
    tune_on: Annotated[Optional[str], typer.Option(help="Tune the task's decision threshold on this split first (tasks that have one).")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score at most this many records (stratified).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the metrics as JSON here.")] = None,
    predictions_out: Annotated[Optional[Path], typer.Option("--predictions-out", help="Write one JSON line per record and model: id, prediction or abstention (reason, confidence), gold.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Score models side by side with the task's own metric (e.g. base vs fine-tuned vs teacher)."""
    from ehrforge.core.evaluate import evaluate
    from ehrforge.core.io import atomic_write_json
    from ehrforge.core.progress import console
    from ehrforge.tasks import Capability

    distinct({"--json": json_out, "--predictions-out": predictions_out}, {"--data": source, "--db": db})
    writable(json_out, "--json")
    writable(predictions_out, "--predictions-out")
    cfg = _config(config, set_, task=task)
    if source:
        cfg.data.source = source
    t = _task(cfg, db=db)
    _ready(t)
    records = t.load(split, limit=limit or cfg.data.valid_limit, seed=cfg.data.seed, source=cfg.data.source)
    dev = None
    if tune_on:
        t.require(Capability.TUNE, "--tune-on", "drop --tune-on: this task has no decision threshold")
        dev = t.load(tune_on, limit=cfg.data.valid_limit, seed=cfg.data.seed, source=cfg.data.source)
    specs: dict[str, str] = {}
    for item in model or [cfg.model]:
        name, sep, spec = item.partition("=")
        specs[name if sep else Path(item).name or item] = spec if sep else item
    if not model:
        console.print(f"evaluating the {cfg.model} model on {len(records)} records (choose models with --model)")
    backends = {name: _load(spec, t, cfg) for name, spec in specs.items()}
    if teacher:
        backends["teacher"] = _teacher(teacher, t, cfg, [source] if source else [], cfg.data.seed)
    results = evaluate(t, backends, records, dev=dev, batch_size=cfg.batch_size, predictions_out=predictions_out)
    where = Path(cfg.data.source).name if cfg.data.source else split
    console.print(t.results_table(results, f"{t.name} · {where} · n={len(records)}"))
    if json_out:
        atomic_write_json(json_out, results)
    else:
        typer.echo(json.dumps(results, indent=2, default=str))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in plain language.")],
    task: TaskOpt = None,
    model: DefaultModelOpt = None,
    db: DbOpt = None,
    threshold: Annotated[Optional[float], typer.Option(help="Abstain when the uncertainty exceeds this (tasks with a threshold option; finite, >= 0).")] = None,
    patient: Annotated[Optional[str], typer.Option(help="Shortcut for --context patient_id=ID.")] = None,
    context: Annotated[Optional[list[str]], typer.Option("--context", "-x", help="What the task's ask needs besides the question: key=value or key=@file (see `ehrforge tasks`).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON answer.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Ask one question. Prints the answer (for sql: the SQL and the result table) with a confidence, or an abstention with its reason."""
    from ehrforge.core.loader import trained_task
    from ehrforge.tasks import default_model

    cfg = _config(config, set_, task=task or (trained_task(model) if model else None), model=model)
    cfg.model = cfg.model if "model" in cfg.model_fields_set else default_model([cfg.task])
    t = _task(cfg, db=db, threshold=threshold)
    _ready(t)
    extra = context_pairs(context)
    if patient:
        extra["patient_id"] = patient
    backend = _load(cfg.model, t, cfg)
    reply = t.ask(backend, question, **extra)
    if as_json:
        typer.echo(json.dumps(reply, indent=2, default=str))
        return
    from ehrforge.core.report import print_reply

    print_reply(reply)


@app.command()
def serve(
    model: DefaultModelOpt = None,
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind; a non-loopback address requires issued tokens.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    tokens_file: Annotated[Optional[str], typer.Option(help="Bearer tokens, one 'name:token' per line (or $EHRFORGE_SERVE_TOKENS).")] = None,
    audit_log: Annotated[Optional[str], typer.Option(help="Append who-asked-what (hashed) to this JSONL file.")] = None,
    cors_origin: Annotated[Optional[list[str]], typer.Option(help="Allow this browser origin (CORS is off by default; repeatable).")] = None,
    log_patient_text: Annotated[bool, typer.Option("--log-patient-text", help="Also write question text into the audit log (off by default).")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Concurrent model workers.")] = 1,
    queue_size: Annotated[int, typer.Option(min=1, help="Requests that may wait; more get 503.")] = ServeSettings.queue_size,
    rate_per_minute: Annotated[float, typer.Option(min=0.1, help="Requests per minute per token.")] = ServeSettings.rate_per_minute,
    max_body_bytes: Annotated[int, typer.Option(min=1024, help="Largest request body (413 above).")] = ServeSettings.max_body_bytes,
    task: Annotated[Optional[list[str]], typer.Option("--task", "-t", help="Serve only these tasks (default: the task a trained folder was made for, else all that load).")] = None,
    model_name: Annotated[Optional[str], typer.Option(help="Model id reported by /v1/models.")] = None,
    trusted_proxy: Annotated[Optional[list[str]], typer.Option(help="Believe X-Forwarded-For from this reverse proxy address (repeatable; off by default).")] = None,
) -> None:
    """Serve a model privately: OpenAI-compatible /v1/chat/completions, /v1/<task>/ask endpoints that answer or abstain, and a web page. Token auth, size and rate limits, bounded queue, hashed audit log."""
    from ehrforge.serve import run as serve_run
    from ehrforge.tasks import default_model

    model = model or default_model(task)
    if audit_log:
        writable(Path(audit_log), "--audit-log")
    serve_run.serve(model, db, host=host, port=port, tokens_file=tokens_file, audit_log=audit_log,
                    cors_origins=cors_origin or (), log_patient_text=log_patient_text, workers=workers,
                    queue_size=queue_size, rate_per_minute=rate_per_minute, max_body_bytes=max_body_bytes,
                    tasks=task, model_name=model_name, trusted_proxies=trusted_proxy or ())


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

    if gguf is None and merged is None:
        raise ConfigError(["nothing to export"], "pass --gguf OUT.gguf and/or --merged OUT_DIR")
    writable(gguf, "--gguf")
    if merged is not None:  # checked before the model loads, as --gguf is
        writable(merged / "config.json", "--merged")
    source = resolve_model(model)
    if merged is not None:
        typer.echo(str(export_merged(source, merged)))
    if gguf is not None:
        typer.echo(str(export_gguf(source, gguf, out_type=gguf_type)))


@app.command()
def demo(
    task: TaskOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (reused to resume).")] = Path("runs/demo"),
    train_limit: Annotated[int, typer.Option(min=1, help="Training records (stratified sample).")] = 200,
    valid_limit: Annotated[int, typer.Option(min=1, help="Records in each of dev/test/pool (sized for 2 CPU cores: generation is the slow part).")] = 12,
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps (sql: the stage-2 pass on top of the shipped student); sized for 2 CPU cores.")] = 6,
    max_new_tokens: Annotated[Optional[int], typer.Option(min=1, help="Generation budget per answer (default: the task's, e.g. sql 384: the longest gold SQL fits).")] = None,
    stages: Annotated[int, typer.Option(min=1, max=2, help="1: stage 1 only; 2: also the recipe's second stage (sql: self-training on top of stage 1).")] = 2,
    model: DefaultModelOpt = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the demo's figures (wall_s, peak_rss_mb, rows) here.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """A recipe end to end on bundled data (default: sql — build the synthetic EHR database, load the bundled model, fine-tune briefly, tune the abstention threshold, and print base vs fine-tuned reliability scores)."""
    import time

    from ehrforge.core.memory import peak_rss_mb
    from ehrforge.core.io import atomic_write_json
    from ehrforge.core.progress import console
    from ehrforge.core.report import metrics_table
    from ehrforge.tasks import Capability, default_model, tasks_with

    start = time.perf_counter()
    writable(json_out, "--json")
    # The LoRA shape and learning rate are the task's own (Task.sft_defaults, from its dev ablation); the demo sets the length.
    cfg = _config(config, [f"sft.max_steps={steps}", *(set_ or [])], task=task, model=model, output_dir=out)
    cfg.model = cfg.model if "model" in cfg.model_fields_set else default_model([cfg.task])  # a shipped one is stage 1
    cfg.data.train_limit = cfg.data.train_limit or train_limit
    cfg.data.valid_limit = cfg.data.valid_limit or valid_limit
    t = _task(cfg, max_new_tokens=max_new_tokens)  # the task's own budget unless the flag says
    t.require(Capability.DEMO, "ehrforge demo", f"tasks with a demo: {', '.join(tasks_with(Capability.DEMO))}")
    result = t.demo(cfg, stages=stages)
    keys = result.get("table_keys")
    console.print(metrics_table(result["rows"], title=f"{t.name} demo · test n={result['sizes']['test']}", keys=keys))
    if result.get("verdict"):
        console.print(result["verdict"], soft_wrap=True)
    figures = {"wall_s": round(time.perf_counter() - start, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
               "rows": result["rows"], "sizes": result["sizes"], "verdict": result.get("verdict"), "model": cfg.model}
    typer.echo(json.dumps({k: {m: v for m, v in row.items() if not keys or m in keys} for k, row in result["rows"].items()}, default=str))
    if json_out:
        atomic_write_json(json_out, figures)
    console.print(f"results: {Path(out) / f'{t.name}_results.json'}")


def _quiet_libraries() -> None:
    """Library progress bars and warnings would bury our one-line errors; our own rich bars show progress."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers/huggingface_hub tqdm bars ("Writing model shards", "Loading weights") would land on stdout
    # between our results; ehrforge's own progress is rich, not tqdm.
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
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


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Click's UsageError class(es): typer >= 0.29 raises its vendored copy, older typer the click package's."""
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).UsageError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def main() -> None:
    _quiet_libraries()
    try:
        bad = undecodable_argument()
        if bad is not None:
            raise ConfigError([f"command-line argument {bad} is not valid UTF-8 text"],
                              "re-type it, or set a UTF-8 locale (e.g. LANG=C.UTF-8) in the shell")
        # standalone_mode=False: usage errors come back here, to be one line and exit 1 like every other error,
        # instead of click's boxed message and exit 2
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except _usage_errors() as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `ehrforge`: the help text, as before
            exc.show()
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        where = f"`{ctx.command_path} --help`" if ctx is not None else "`ehrforge --help`"
        typer.secho(f"error: {exc.format_message()} — see {where}", err=True, fg="red")
        sys.exit(1)
    except typer.Abort:
        typer.echo("interrupted — re-run the same command to resume", err=True)
        sys.exit(130)
    except EhrforgeError as exc:
        typer.secho(f"error: {exc.one_line()}", err=True, fg="red")
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted — re-run the same command to resume", err=True)
        sys.exit(130)
    except OSError as exc:
        line = os_error_line(exc)
        if line is None or os.environ.get("EHRFORGE_DEBUG"):
            if os.environ.get("EHRFORGE_DEBUG"):
                raise
            line = f"unexpected {type(exc).__name__} — rerun with EHRFORGE_DEBUG=1 for details and report it"
        typer.secho(f"error: {line}", err=True, fg="red")
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - never dump a traceback (it may hold patient text) unless asked
        if os.environ.get("EHRFORGE_DEBUG"):
            raise
        typer.secho(f"error: unexpected {type(exc).__name__} — rerun with EHRFORGE_DEBUG=1 for details and report it", err=True, fg="red")
        sys.exit(1)


if __name__ == "__main__":
    main()
