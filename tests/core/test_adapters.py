"""A stack of LoRA adapters (a run continued on top of its first epoch) flattened into one, on a real tiny model."""

import json

import pytest
import torch

from ehrforge.core.adapters import concatenate_loras
from ehrforge.core.sft import SFTSettings, train_sft

from tests.core.test_sft import EchoTask


def _lora(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors")), json.loads((folder / "adapter_config.json").read_text())


def _logits(model, tokens):
    with torch.no_grad():
        return model(input_ids=tokens).logits


def test_two_stacked_adapters_equal_their_concatenation(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    task = EchoTask()
    settings = SFTSettings(max_steps=4, learning_rate=1e-2, batch_size=4, save_steps=100, dtype="float32")
    first = train_sft(task, task.load("train"), str(tiny_model_dir), tmp_path / "e1", settings)
    second = train_sft(task, task.load("train"), str(first), tmp_path / "e2",
                       settings.model_copy(update={"lora_alpha": 64}))  # another scaling than the first
    tokens = torch.tensor([[1, 5, 9, 13, 17, 21]])

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), torch_dtype=torch.float32)
    plain = _logits(base, tokens)
    stacked = PeftModel.from_pretrained(base, str(first)).merge_and_unload()
    stacked = PeftModel.from_pretrained(stacked, str(second))
    want = _logits(stacked, tokens)
    assert not torch.allclose(want, plain, atol=1e-4)  # both adapters moved the model

    weights, config = concatenate_loras([_lora(first), _lora(second)])
    assert config["r"] == _lora(first)[1]["r"] + _lora(second)[1]["r"]
    flat = tmp_path / "flat"
    flat.mkdir()
    save_file(weights, str(flat / "adapter_model.safetensors"), metadata={"format": "pt"})
    (flat / "adapter_config.json").write_text(json.dumps(config))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), torch_dtype=torch.float32)
    got = _logits(PeftModel.from_pretrained(base, str(flat)), tokens)
    assert torch.allclose(got, want, atol=1e-4)


def test_adapters_on_other_modules_are_refused():
    a = {"m.lora_A.weight": torch.zeros(2, 3), "m.lora_B.weight": torch.zeros(3, 2)}
    config = {"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}
    with pytest.raises(ValueError, match="do not stack"):
        concatenate_loras([(a, config), (a, {**config, "target_modules": ["v_proj"]})])
    with pytest.raises(ValueError, match="do not stack"):
        concatenate_loras([(a, config), (a, {**config, "use_dora": True})])
