"""The shipped example evaluation on real vLLM engines (the tiny random model standing in for the
bundled one, as model and as judge): plumbing from EVAL.yaml to next_targets.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import yaml

from tests.cpu_env import CPU_ENV

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_evaluation_runs_on_vllm_end_to_end(tmp_path, tiny_model_dir, ray_address):
    config = yaml.safe_load((ROOT / "examples" / "eval.yaml").read_text())
    engine = {"type": "vllm", "model": tiny_model_dir, "max_model_len": 512, "num_cpus": 1,
              "engine_kwargs": {"enforce_eager": True, "dtype": "float32"}, "env": CPU_ENV}
    config["model"] = engine
    config["judge"] = {"engine": engine, "max_tokens": 48}
    config["sampling"]["max_tokens"] = 16
    config["prompts"] = [str(ROOT / "examples" / "eval_prompts.jsonl")]
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "synth.cli", "eval", str(path), "--output", str(out)],
                            capture_output=True, text=True, timeout=1200, cwd=ROOT,
                            env={**os.environ, "RAY_ADDRESS": ray_address, "RAY_AUTH_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    results = pl.read_parquet(out / "results.parquet")
    assert results.height == 10 and results["id"].n_unique() == 10
    summary = json.loads((out / "eval.json").read_text())
    assert {c["lang"] for c in summary["cells"]} == {"swh_Latn", "fra_Latn"}
    # the domain items with a reference are always judged; language items only when the offline checks pass
    passing = results.filter(pl.col("level") == "language", pl.col("scores").struct.field("language_checks") == 1).height
    assert summary["judge"]["usage"]["requests"] >= 2 + passing
    plan = yaml.safe_load((out / "next_targets.yaml").read_text())
    assert sum(t["rows"] for t in plan["targets"]) == 18
