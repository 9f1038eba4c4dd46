"""Python API: load a job, add custom prompt templates, run it.

    job = synth.Job.from_yaml("job.yaml")
    job.add_prompt(synth.PromptTemplate(name="my_icl", method="icl", variables=[...], user="..."))
    manifest = job.run("out/my-job")
"""

from __future__ import annotations

from pathlib import Path

from synth.config import JobConfig, parse_job
from synth.prompts import PromptTemplate


class Job:
    def __init__(self, config: JobConfig):
        self.config = config
        self.prompts: dict[str, PromptTemplate] = {}

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Job":
        return cls(parse_job(Path(path)))

    def add_prompt(self, template: PromptTemplate, use: bool = True) -> "Job":
        """Register a template; with `use`, the job's method of the same kind switches to it."""
        self.prompts[template.name] = template
        if use:
            if template.method == "icl":
                self.config.icl.prompt = template.name
            elif template.method == "translate":
                self.config.translate.prompt = template.name
            elif template.method == "judge":
                self.config.judge.prompt = template.name
            else:
                self.config.translate.back_prompt = template.name
        return self

    def run(self, output: str | Path, force_new: bool = False) -> dict:
        """Validate everything, run on Ray (local or RAY_ADDRESS), return the manifest. `output`: a
        path or an fsspec URL (s3://bucket/dir)."""
        from synth.prepare import prepare
        from synth.runner import JobRun

        return JobRun(prepare(self.config, self.prompts), output, force_new).run()
