"""synth: verified, balanced SFT data for low-resource languages."""

from synth.config import JobConfig, parse_job
from synth.errors import ConfigError
from synth.job import Job
from synth.prompts import PromptTemplate

__all__ = ["ConfigError", "Job", "JobConfig", "PromptTemplate", "parse_job"]
__version__ = "0.1.0"
