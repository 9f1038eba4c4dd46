"""synth: verified, balanced SFT data for low-resource languages.

Stages as packages: methods/ (generation methods), engines/ (vLLM on Ray, OpenAI-compatible servers),
verify/ (filters and the verifier), eval/ (`synth eval`: a model measured per language, category and
level, and the next round's targets). The job: config.py, languages.py, prompts.py, conversations.py,
datasource.py (seeds and sources from files, `datasets` folders and the Hub), models.py, prepare.py (every check before work starts), plan.py, standardise.py (language-aware cleaning before any filter scores a row), estimate.py (`synth run --dry-run`: the cost before the run); the run: runner.py (the round loop),
judging.py, budget.py (plan.budget), rundir.py, inputs.py (content digests of every input, for the resume check),
runfiles.py (the one way a run writes its directory: links it did not make are refused), progress.py, shards.py, outputs.py, report.py; the front: cli.py, job.py
(Python API), hub.py (`synth push`), _docs.py (the docs site's generated reference pages). Shared knowledge: loading.py (the one bounded reader of YAML and JSON
files), limits.py (bounds of user-set sizes), text.py, reasons.py, errors.py, secrets.py, paths.py, arrays.py,
devices.py.
"""

from synth.config import JobConfig, parse_job
from synth.errors import ConfigError
from synth.job import Job
from synth.prompts import PromptTemplate

__all__ = ["ConfigError", "Job", "JobConfig", "PromptTemplate", "parse_job"]
__version__ = "0.1.0"
