"""A tiny, random, locally built chat model for tests and smoke runs (no download, < 1 s).

Same architecture family as the bundled model (Llama) and the same ChatML chat template, so every code path that
runs on SmolLM2 (generation with log-probs, LoRA SFT, GRPO, adapter loading) runs on this too, only nonsensically.
"""

from __future__ import annotations

from pathlib import Path

# ChatML with `{% generation %}` markers so TRL can compute assistant-only loss.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "SELECT COUNT(*) FROM patients WHERE patients.gender = 'f'",
    "SELECT admissions.admittime FROM admissions WHERE admissions.subject_id = 10021118",
    "The patient is a 67 year old man with hypertension and diabetes. Creatinine 1.2 mg/dL.",
    "Is this table a schedule of events? yes no null <answer>42</answer>",
    "Question: how many patients were admitted in 2100? Answer: null",
]


def make_tiny_chat_model(path: str | Path, *, seed: int = 0, vocab_size: int = 512) -> Path:
    """Build and save a tiny random Llama chat model with a byte-level BPE tokenizer trained on a few strings."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(str(path))

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(str(path))
    return path


def make_tiny_encoder(path: str | Path, tokenizer_dir: str | Path, *, seed: int = 0) -> Path:
    """A random 2-layer BERT (hidden 32) with a given word-piece tokenizer (e.g. the packaged MiniLM one): the
    encoder students (classification head, token classification) train on it for real, a few steps a second."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tokenizer.save_pretrained(str(out))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256)
    BertModel(config).save_pretrained(str(out))
    return out
