"""``ehrforge export``: a trained model as a merged HF folder (for vLLM) or a GGUF file (for llama.cpp).

llama.cpp's ``convert_hf_to_gguf.py`` is not a PyPI package, but its writer library is (``gguf``, already a
dependency). This module is a small converter on top of it for the architectures ehrforge trains — Llama-family
(SmolLM2, the tiny test model) and Qwen2 — with byte-level BPE tokenizers: it merges any LoRA adapter, maps tensor
names with ``gguf``'s own name map, applies llama.cpp's rotary Q/K row order for Llama, and writes F32, F16 or Q8_0
(``gguf.quants`` quantizes in numpy). Other architectures are refused with a clear error rather than written wrong.
The output loads in llama.cpp (``llamacpp:<file>`` backend) and back into transformers (``gguf_file=``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ehrforge.errors import ModelError

#: HF architecture -> (gguf arch name, Q/K rows need llama.cpp's rope permutation)
SUPPORTED_ARCHITECTURES = {"LlamaForCausalLM": ("llama", True), "Qwen2ForCausalLM": ("qwen2", False)}
OUT_TYPES = ("f32", "f16", "q8_0")


def _rope_theta(config: Any) -> float:
    theta = getattr(config, "rope_theta", None)
    params = getattr(config, "rope_parameters", None) or {}
    if theta is None:
        theta = params.get("rope_theta", 10000.0)
    rope_type = params.get("rope_type", "default") if isinstance(params, dict) else "default"
    scaling = getattr(config, "rope_scaling", None)
    if rope_type != "default" or (scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default")):
        raise ModelError(f"rope scaling '{rope_type}' is not supported by the GGUF exporter", "export a model without rope scaling")
    return float(theta)


def _pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenization (it must split text exactly as in training).

    >>> _pre_tokenizer_name({"pre_tokenizer": {"type": "ByteLevel", "use_regex": True}})
    'gpt-2'
    """
    pre = tokenizer_json.get("pre_tokenizer") or {}
    kinds = [p.get("type") for p in pre.get("pretokenizers", [])] if pre.get("type") == "Sequence" else [pre.get("type")]
    if kinds == ["ByteLevel"] and pre.get("use_regex", True):
        return "gpt-2"  # llama.cpp's spelling; plain "gpt2" is the tokenizer *model* name, not a pre-tokenizer
    if kinds == ["Digits", "ByteLevel"] and pre["pretokenizers"][0].get("individual_digits"):
        return "smollm"
    if kinds == ["Split", "ByteLevel"]:
        return "qwen2"
    raise ModelError(f"tokenizer pre-tokenization {kinds} has no known llama.cpp equivalent",
                     "export a model with a byte-level BPE tokenizer (SmolLM2, Qwen2, GPT-2 style)")


def _permute_rope(w: Any, n_head: int) -> Any:
    """HF stores rotary Q/K rows as two halves; llama.cpp expects them interleaved per head."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_tokenizer(writer: Any, tokenizer: Any, vocab_size: int) -> None:
    import gguf

    tok_json = json.loads(tokenizer.backend_tokenizer.to_str())
    if tok_json.get("model", {}).get("type") != "BPE":
        raise ModelError("only BPE tokenizers can be exported to GGUF here", "use a byte-level BPE model (SmolLM2, Qwen2)")
    vocab = tokenizer.get_vocab()
    by_id = {i: t for t, i in vocab.items()}
    special_ids = set(tokenizer.all_special_ids) | {a["id"] for a in tok_json.get("added_tokens", []) if a.get("special")}
    tokens, types = [], []
    for i in range(vocab_size):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special_ids else gguf.TokenType.NORMAL)
        else:  # the embedding matrix can be larger than the vocabulary
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok_json["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(tok_json))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id), (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id), (writer.add_unk_token_id, tokenizer.unk_token_id)):
        if token_id is not None:
            setter(int(token_id))
    writer.add_add_bos_token(False)  # ChatML templates write their own special tokens
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def _tensor_data(name: str, tensor: Any, out_type: str) -> tuple[Any, Any]:
    import gguf
    import numpy as np

    data = tensor.detach().float().cpu().numpy()
    if data.ndim == 1 or out_type == "f32":  # norms and biases stay F32, as llama.cpp's converter keeps them
        return data.astype(np.float32), None
    if out_type == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    return data.astype(np.float16), None


def export_gguf(model_dir: str | os.PathLike, out_path: str | os.PathLike, *, out_type: str = "f16") -> Path:
    """Convert a model folder (HF, LoRA adapter — merged first — or ``bundled``) into one GGUF file, atomically."""
    import gguf

    from ehrforge.core.backends.transformers_backend import load_model_and_tokenizer
    from ehrforge.core.models import resolve_model

    if out_type not in OUT_TYPES:
        raise ModelError(f"unknown GGUF output type '{out_type}'", f"use one of: {', '.join(OUT_TYPES)}")
    out_path = Path(out_path)
    if out_path.suffix != ".gguf":
        raise ModelError(f"GGUF output must end in .gguf: {out_path}", "name the output like student.gguf")
    model, tokenizer = load_model_and_tokenizer(resolve_model(model_dir), device="cpu", dtype="float32")
    config = model.config
    arch_name = (config.architectures or [type(model).__name__])[0]
    if arch_name not in SUPPORTED_ARCHITECTURES:
        raise ModelError(f"architecture {arch_name} cannot be exported to GGUF here",
                         f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}; serve other models with the transformers or vLLM backend")
    arch, permute = SUPPORTED_ARCHITECTURES[arch_name]
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA if arch == "llama" else gguf.MODEL_ARCH.QWEN2, config.num_hidden_layers)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_name(Path(str(model_dir)).name or "ehrforge-model")
        writer.add_context_length(config.max_position_embeddings)
        writer.add_embedding_length(config.hidden_size)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_kv)
        writer.add_rope_freq_base(_rope_theta(config))
        writer.add_rope_dimension_count(head_dim)
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
        writer.add_vocab_size(config.vocab_size)
        writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[out_type])
        _write_tokenizer(writer, tokenizer, config.vocab_size)
        tied = bool(getattr(config, "tie_word_embeddings", False))
        for hf_name, tensor in model.state_dict().items():
            if hf_name == "lm_head.weight" and tied:
                continue  # llama.cpp reuses token_embd when there is no output tensor
            if hf_name.endswith("rotary_emb.inv_freq"):
                continue
            gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise ModelError(f"tensor {hf_name} has no GGUF name", "this model variant is not supported by the exporter")
            if permute and hf_name.endswith("q_proj.weight"):
                tensor = _permute_rope(tensor, n_head)
            elif permute and hf_name.endswith("k_proj.weight"):
                tensor = _permute_rope(tensor, n_kv)
            data, qtype = _tensor_data(hf_name, tensor, out_type)
            writer.add_tensor(gguf_name, data, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def export_merged(model_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Merge a LoRA adapter into its base and save a plain HF folder (what vLLM and other servers load)."""
    import shutil

    from ehrforge.core.backends.transformers_backend import load_model_and_tokenizer
    from ehrforge.core.models import resolve_model

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ModelError(f"output folder is not empty: {out_dir}", "choose a new folder or remove it first")
    model, tokenizer = load_model_and_tokenizer(resolve_model(model_dir), device="cpu", dtype="float32")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
