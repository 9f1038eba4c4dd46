"""A user's filter from a preset through `synth run` (tiny random-weight model, real Ray and vLLM):
its scores reach the committed rows, shards and rejects, its reason and detail the rejects, its name
the manifest."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import polars as pl
import yaml

from tests.conftest import CPU_ENV

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

PLUGIN = '''
from synth.verify import Filter


class Chars(Filter):
    name = "chars"
    higher_is_better = True
    default_threshold = 1
    description = "characters in the text"

    def score(self, batch):
        return [float(len(c.text)) for c in batch]
'''


def test_a_preset_filter_runs_in_synth_run(ray_address, tiny_model_dir, tmp_path):
    module = f"plugins_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(PLUGIN)
    preset = {"name": "mine", "filters": ["empty", "lid", {"module": module, "class": "Chars"}],
              "thresholds": {"empty": 1, "lid": 0.0},
              "languages": {"fra_Latn": {"chars": 1e9}}}  # every French row that reaches it fails it
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(preset))
    job = {
        "name": "plugin",
        "targets": [{"lang": lang, "rows": 2, "methods": {"translate": 1.0}, "categories": ["open_qa"]}
                    for lang in ("fra_Latn", "swh_Latn")],
        "sources": {"path": str(EXAMPLES / "sources" / "en_sft.jsonl")},
        "engine": {"type": "vllm", "model": tiny_model_dir, "max_model_len": 1024, "num_cpus": 1, "batch_size": 4,
                   "engine_kwargs": {"enforce_eager": True, "dtype": "float32"}, "env": CPU_ENV},
        "sampling": {"max_tokens": 16, "temperature": 0.0, "top_p": 1.0, "seed": 0, "repetition_penalty": 2.0},
        "plan": {"max_rounds": 1, "max_attempts_per_row": 2},
        # in the driver: Ray verifier actors import the module only where it is installed or on their path
        "verify": {"preset": str(tmp_path / "mine.yaml"), "workers": 0},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    env = {**os.environ, "RAY_ADDRESS": ray_address, "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", str(ROOT))])}
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "synth.cli", "run", str(tmp_path / "job.yaml"), "--output", str(out)],
                            capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert "chars" in manifest["filters"]["run"]
    rows = pl.concat([pl.read_parquet(p) for p in sorted((out / "_work").glob("round-*.parquet"))])
    verified = rows.filter(pl.col("scores").struct.field("chars").is_not_null())
    assert verified.height > 0  # rows reached the filters (not all refused before verification)
    french = pl.concat([pl.read_parquet(p) for p in (out / "rejected" / "fra_Latn").glob("*.parquet")])
    scored = french.filter(pl.col("scores").struct.field("chars").is_not_null())
    assert scored.height > 0 and all("chars" in r for r in scored["reject_reasons"].to_list())
    assert all(any(d.startswith("chars ") for d in ds) for ds in scored["reject_details"].to_list())
    assert not (out / "fra_Latn").exists() or not list((out / "fra_Latn").glob("*.parquet"))
