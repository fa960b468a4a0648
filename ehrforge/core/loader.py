"""The one model loader: CLI, recipes, server and benchmarks all turn a model spec into something that predicts here.

A folder written by ``ehrforge train`` carries ``ehrforge_model.json`` (written last) recording:

* ``task`` - the task it was trained for;
* ``predictor`` - ``"chat"`` for a (LoRA) causal LM run by a generation backend, or ``"module:Class"`` for a
  non-chat predictor (an encoder head), constructed as ``Class(folder)``;
* ``prompt_format`` - the task's prompt ``{name, hash}`` at training time (litgpt's saved prompt style): loading a
  folder whose recorded prompt differs from the current code warns, because the model would be fed a prompt it
  never saw;
* task state such as a tuned threshold (``Task.manifest_extras``), restored into the task on load.

Anything else (``bundled``, a HF folder, a ``.gguf``, ``openai:…``, ``fake``) goes to :func:`load_backend`.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ehrforge.core.backends import default_inference_kind, is_local_model_spec, load_backend
from ehrforge.core.progress import console
from ehrforge.errors import EhrforgeError, ModelError

if TYPE_CHECKING:
    from ehrforge.core.contract import Task

from ehrforge.core.models import MANIFEST, expand_alias, model_file_problems  # noqa: E402  (MANIFEST re-exported: callers import it from here)
CHAT = "chat"


@dataclass
class LoadOptions:
    """How a local model runs (ignored by HTTP and fake backends)."""

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    #: generation engine for local chat models: transformers (the reference), ct2 (CTranslate2 int8, several times
    #: faster on CPU), or auto (ct2 on a CPU-only machine where it is installed). Default from $EHRFORGE_ENGINE.
    engine: str = field(default_factory=lambda: os.environ.get("EHRFORGE_ENGINE", "transformers"))
    #: CTranslate2 weights/compute: int8 (fastest) or float32/bfloat16 (outputs that match transformers; int8 flips
    #: near-tie tokens of a 135M model, docs/speed.md). Default from $EHRFORGE_CT2_COMPUTE.
    ct2_compute_type: str = field(default_factory=lambda: os.environ.get("EHRFORGE_CT2_COMPUTE", "int8"))
    extra: dict[str, Any] = field(default_factory=dict)


def read_manifest(spec: str) -> dict[str, Any] | None:
    """The manifest of a trained folder, or None for anything else; a corrupt one is a one-line ModelError."""
    path = Path(expand_alias(spec)).expanduser()
    meta = path / MANIFEST
    if not path.is_dir() or not meta.is_file():
        return None
    try:
        manifest = json.loads(meta.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{meta} is not valid JSON (a corrupt or half-copied model folder)",
                         "re-copy the folder or retrain it with `ehrforge train`") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{meta} is not a model manifest", "re-copy the folder or retrain it with `ehrforge train`")
    problems = manifest_problems(manifest)
    if problems:
        raise ModelError(f"{meta}: {'; '.join(problems)} (a corrupt or edited manifest)",
                         "re-copy the folder or retrain it with `ehrforge train`")
    return manifest


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """What is wrong with a manifest's shape, field by field (values are never quoted: a manifest is data a user
    may have been handed).

    >>> manifest_problems({"task": "mytask", "prompt_format": {"name": "chatml", "hash": "ab12"}})
    []
    >>> manifest_problems({"prompt_format": "x", "tuned": {"threshold": "high"}})
    ['field task is missing', 'field prompt_format is not {name, hash}']
    """
    problems = []
    if not isinstance(manifest.get("task"), str):
        problems.append("field task is " + ("missing" if "task" not in manifest else "not a task name"))
    fmt = manifest.get("prompt_format")
    if manifest.get("predictor", CHAT) == CHAT and not (isinstance(fmt, dict) and isinstance(fmt.get("hash"), str)):
        problems.append("field prompt_format is " + ("missing" if fmt is None else "not {name, hash}"))
    if "tuned" in manifest and not isinstance(manifest["tuned"], dict):
        problems.append("field tuned is not an object")
    return problems


def model_card(task: Task, predictor: str = CHAT) -> dict[str, Any]:
    """What every trainer writes into the manifest so the loader can run the folder later."""
    return {"task": task.name, "predictor": predictor, "prompt_format": task.prompt_format(), **task.manifest_extras()}


def check_prompt_format(manifest: dict[str, Any], task: Task | None, spec: str) -> bool:
    """Warn (on stderr) when a folder was trained with another prompt than the current code builds."""
    recorded = manifest.get("prompt_format")
    if task is None or not recorded or manifest.get("task") not in (None, task.name):
        return True
    current = task.prompt_format()
    if recorded.get("hash") == current["hash"]:
        return True
    console.print(
        f"[yellow]warning:[/] {spec} was trained with prompt {recorded.get('name')} #{recorded.get('hash')}, the "
        f"current code builds {current['name']} #{current['hash']}: answers may be worse than when it was trained"
    )
    return False


def _predictor(path: str, target: str) -> Any:
    module, _, name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ModelError(f"{path} needs predictor {target}, which this ehrforge does not have",
                         "upgrade ehrforge or retrain the model with this version") from None
    return cls(path)


def load_model(spec: str, task: Task | None = None, options: LoadOptions | None = None) -> Any:
    """A backend (``generate``) or predictor for ``spec``; restores the task state the folder recorded."""
    options = options or LoadOptions()
    spec = expand_alias(spec)
    manifest = read_manifest(spec)
    if manifest is not None:
        if task is not None and manifest.get("task") not in (None, task.name):
            console.print(f"[yellow]warning:[/] {spec} was trained for the {manifest['task']} task, not {task.name}")
        if task is not None and manifest.get("task") in (None, task.name):
            task.restore(manifest)  # first: it may restore the prompt options the folder was trained with
    check_model_files(spec)  # after the manifest's own checks, before any weights load or warning
    if manifest is not None:
        check_prompt_format(manifest, task, spec)
        predictor = manifest.get("predictor", CHAT)
        if predictor != CHAT:
            return _predictor(spec, predictor)
    if is_local_model_spec(spec):
        try:
            return _local_backend(spec, options)
        except EhrforgeError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelError(f"the model files in {spec} cannot be read ({type(exc).__name__}): a corrupt or half-copied folder",
                             "re-copy the folder or retrain it with `ehrforge train`") from None
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError for a corrupt weights file
            if "safetensor" not in type(exc).__name__.lower():
                raise
            raise ModelError(f"the weights file in {spec} is corrupt ({type(exc).__name__})",
                             "re-copy the folder or retrain it with `ehrforge train`") from None
    return load_backend(spec)


def check_model_files(spec: str) -> None:
    """One line naming each file of a local folder that cannot be read whole (``models.model_file_problems``)."""
    folder = Path(spec).expanduser()
    problems = model_file_problems(folder) if folder.is_dir() else []
    if problems:
        raise ModelError(f"{'; '.join(problems)} (a corrupt or half-copied model folder)",
                         "re-copy the folder, reinstall ehrforge for a shipped model, or retrain it with `ehrforge train`")


def _local_backend(spec: str, options: LoadOptions) -> Any:
    if options.engine == "ct2" or (options.engine == "auto" and default_inference_kind() == "ct2"):
        _, sep, target = spec.partition(":")
        return load_backend(f"ct2:{target if sep else spec}", batch_size=options.batch_size,
                            compute_type=options.ct2_compute_type)
    return load_backend(spec, device=options.device, dtype=options.dtype, batch_size=options.batch_size, **options.extra)


def trained_task(spec: str) -> str | None:
    """The task a trained folder was made for (None for base models and endpoints)."""
    manifest = read_manifest(spec)
    return manifest.get("task") if manifest else None
