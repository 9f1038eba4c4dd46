"""Python API: load a job, add custom prompt templates and filters, run it.

    job = synth.Job.from_yaml("job.yaml")
    job.add_prompt(synth.PromptTemplate(name="my_icl", method="icl", variables=[...], user="..."))
    job.add_filter(MyFilter(threshold=0.5, per_language={"swh_Latn": 0.6}))  # a synth.verify.Filter
    manifest = job.run("out/my-job")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from synth.config import JobConfig, parse_job
from synth.errors import ConfigError
from synth.prompts import PromptTemplate

if TYPE_CHECKING:  # `import synth` does not load the verifier
    from synth.verify.base import Filter


class Job:
    def __init__(self, config: JobConfig):
        self.config = config
        self.prompts: dict[str, PromptTemplate] = {}
        self.filters: list[Filter] = []

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

    def add_filter(self, f: Filter) -> "Job":
        """Run a filter of your own after the preset's, on every row, like a built-in one: its scores go
        to `scores.<name>`, its rejects to `reject_reasons`. The contract: synth/verify/base.py."""
        from synth.verify.base import Filter

        if not isinstance(f, Filter):
            raise ConfigError(f"add_filter: {f!r} is not a synth.verify.Filter; subclass it (see synth/verify/base.py)")
        if any(other.name == f.name for other in self.filters):
            raise ConfigError(f"add_filter: a filter named {f.name!r} was already added; give each its own `name`")
        self.filters.append(f)
        return self

    def estimate(self) -> dict:
        """What `synth run JOB --dry-run --format json` prints: attempts, tokens, engine-hours and money
        the job is expected to spend (and at most), after every check a run makes; nothing started."""
        from synth.estimate import estimate
        from synth.prepare import prepare

        return estimate(prepare(self.config, self.prompts))

    def run(self, output: str | Path, force_new: bool = False) -> dict:
        """Validate everything, run on Ray (local or RAY_ADDRESS), return the manifest. `output`: a
        path or an fsspec URL (s3://bucket/dir)."""
        from synth.prepare import prepare
        from synth.runner import JobRun

        prepared = prepare(self.config, self.prompts)
        prepared.filters = list(self.filters)
        return JobRun(prepared, output, force_new).run()
