"""The Python API: a custom prompt added from code drives generation and is recorded by name and hash."""

from pathlib import Path

import polars as pl

import synth
from tests.conftest import CPU_ENV

ROOT = Path(__file__).resolve().parents[1]


def test_custom_prompt_through_the_python_api(ray_address, tiny_model_dir, tmp_path):
    job = synth.Job.from_yaml(ROOT / "examples" / "demo.yaml")
    job.config.targets = job.config.targets[:1]
    job.config.targets[0].rows = 1
    job.config.targets[0].methods = {"icl": 1.0}
    job.config.targets[0].categories = ["open_qa"]
    job.config.engine.model = tiny_model_dir
    job.config.engine.max_model_len = 512
    job.config.engine.env = CPU_ENV
    job.config.sampling.max_tokens = 16
    job.config.plan.max_attempts_per_row = 3
    template = synth.PromptTemplate(
        name="my_icl", method="icl", variables=["language", "examples"],
        user="Write one new task in {{ language.name }} like: {{ examples[0].instruction }}",
    )
    manifest = job.add_prompt(template).run(tmp_path / "out")
    assert manifest["prompts"]["my_icl"] == {"hash": template.hash, "custom": True}
    rows = pl.read_parquet(tmp_path / "out" / "_work" / "*.parquet")
    assert rows.height == 3 and set(rows["prompt_template"]) == {"my_icl"}
