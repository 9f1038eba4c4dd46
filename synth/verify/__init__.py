"""Verification stage: every filter scores every candidate; thresholds decide; reasons are kept.

The verifier's machinery lives here: base.py (the `Filter` contract and `Candidate`), pipeline.py
(filter presets and the `Verifier` that applies them), pairs.py (pairs in `synth verify`'s schema,
scored on every core), workers.py (Ray CPU actors of `synth run`), cli_verify.py (`synth verify`),
calibrate.py (`synth calibrate`); judge.py (the LLM judge) and grams.py (n-gram hashes several
filters compare). Filters by concern, one package each: lid/, fluency/, meaning/, rules/, sets/.
"""

from synth.verify.base import Candidate, Filter
from synth.verify.pipeline import FilterPreset, Verdict, Verifier, load_preset

__all__ = ["Candidate", "Filter", "FilterPreset", "Verdict", "Verifier", "load_preset"]
