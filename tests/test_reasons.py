"""The registry of reject reasons: every reason the engines, methods and filters can give is in it."""

import re
from pathlib import Path

import pytest

from synth import reasons
from synth.verify.pipeline import FILTERS, known_reasons

ROOT = Path(__file__).resolve().parents[1]


def test_every_reason_written_by_engines_and_methods_is_registered():
    """Engines and methods write `reason: detail` strings; each literal reason in their source must be
    in the registry (a new one added without a description fails here)."""
    written = set()
    for path in [*(ROOT / "synth" / "methods").glob("*.py"), *(ROOT / "synth" / "engines").glob("*.py")]:
        source = path.read_text()
        written |= set(re.findall(r'(?:row\.error, row\.error_detail = |error=|_Failure\(|return )f?"([a-z_]+)(?::|",)',
                                  source))
    assert {"engine_error", "prompt_too_long", "unparseable", "echo", "novelty", "structure_lost"} <= written
    assert written <= set(reasons.FIXED)


def test_registry_has_every_stage_and_every_filter():
    known = known_reasons()
    assert set(FILTERS) <= set(known) and all(known[name].stage == reasons.Stage.FILTER for name in FILTERS)
    for name in ("judge_language", "judge_content", "judge_culture", "judge_unparseable"):
        assert known[name].stage == reasons.Stage.JUDGE
    assert known["surplus"].stage == reasons.Stage.POLICY and "source_too_long" in known
    assert all(r.description and r.name == name for name, r in known.items())
    assert reasons.split_error("engine_error: HTTP 500: busy") == ("engine_error", "engine_error: HTTP 500: busy")
    with pytest.raises(ValueError, match="reserved"):
        reasons.registry([("surplus", "a filter named like a policy")])
