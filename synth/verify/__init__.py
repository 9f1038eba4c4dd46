"""Verification stage: every filter scores every candidate; thresholds decide; reasons are kept."""

from synth.verify.base import Candidate, Filter
from synth.verify.pipeline import FilterPreset, Verdict, Verifier, load_preset

__all__ = ["Candidate", "Filter", "FilterPreset", "Verdict", "Verifier", "load_preset"]
