"""Builds the filters of a preset and applies them: score, then accept by per-language threshold."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field

from synth.errors import ConfigError
from synth.languages import LanguageSpec
from synth.paths import data_dir
from synth.verify.base import Candidate, Filter
from synth.verify.contamination import ContaminationFilter
from synth.verify.dedup import DedupFilter
from synth.verify.fluency import FluencyFilter
from synth.verify.judge import JudgePreset
from synth.verify.laser import LaserFilter
from synth.verify.lid import LidFilter, MixedLanguageFilter, load_lid
from synth.verify.roundtrip import RoundtripFilter
from synth.verify.rules import CopyFilter, EmptyFilter, LengthRatioFilter, RepetitionFilter, TruncatedFilter
from synth.verify.script import ScriptFilter

FILTERS: dict[str, type[Filter]] = {
    f.name: f
    for f in (EmptyFilter, TruncatedFilter, RepetitionFilter, LengthRatioFilter, CopyFilter,
              LidFilter, MixedLanguageFilter, ScriptFilter, FluencyFilter, LaserFilter, RoundtripFilter,
              DedupFilter, ContaminationFilter)
}


class FilterPreset(BaseModel):
    """A file in `filters/`: which filters run, their thresholds, per-language overrides."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    filters: list[str]
    thresholds: dict[str, float] = Field(default_factory=dict)
    languages: dict[str, dict[str, float]] = Field(default_factory=dict)
    lid_model: str | None = Field(None, description="path to a fastText LID model; default: bundled lid.176")
    judge: JudgePreset = Field(default_factory=JudgePreset, description="LLM judge thresholds (used only when "
                               "the job enables the judge, or `synth verify --judge`)")

    def check(self, where: str) -> None:
        named = set(self.filters) | set(self.thresholds)
        for lang_thresholds in self.languages.values():
            named |= set(lang_thresholds)
        unknown = sorted(named - set(FILTERS))
        if unknown:
            raise ConfigError(f"{where}: unknown filters {unknown}; known: {', '.join(FILTERS)}")


def load_preset(name_or_path: str) -> FilterPreset:
    """A preset by name (`default` -> filters/default.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = data_dir("filters") / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in data_dir("filters").glob("*.yaml")))
        raise ConfigError(f"verify.preset: no filter preset {name_or_path!r}; use one of: {known}, or a path to a YAML file")
    try:
        preset = FilterPreset.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except Exception as exc:
        raise ConfigError(f"{path}: invalid filter preset: {exc}") from exc
    preset.check(str(path))
    return preset


@dataclass
class Verdict:
    scores: dict[str, float | None]
    accepted: bool
    reasons: list[str] = field(default_factory=list)  # filter names that rejected the row
    details: list[str] = field(default_factory=list)  # human-readable, one per reason


@contextmanager
def paused_gc():
    """Python's cyclic GC off while scoring: a batch allocates millions of short-lived containers
    (token lists, score dicts) and every 700th allocation starts a collection that walks every live
    object, the batch's rows included. Scoring makes no reference cycles, so reference counting
    frees everything all the same."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Verifier:
    """Runs a preset on batches of candidates. Filters that cannot run are listed in `not_run`."""

    def __init__(
        self,
        preset: FilterPreset,
        languages: dict[str, LanguageSpec],
        lid_skip: set[str] = frozenset(),
        laser_dir: str | Path | None = None,
        overrides: dict[str, dict[str, float]] | None = None,
        contamination=None,  # a config.ContaminationConfig (paths, ngram, char_ngram); None: not run
    ):
        self.preset = preset
        self.not_run: dict[str, str] = {}
        per_lang: dict[str, dict[str, float]] = {}
        for source in (preset.languages, overrides or {}):
            for lang, values in source.items():
                for name, value in values.items():
                    per_lang.setdefault(name, {})[lang] = value
        self.filters: list[Filter] = []
        self.dedup: DedupFilter | None = None
        for name in preset.filters:
            kwargs = {"threshold": preset.thresholds.get(name), "per_language": per_lang.get(name)}
            if name in ("lid", "mixed_language"):
                self.lid_model = load_lid(preset.lid_model)
                labels = {code: (None if code in lid_skip else spec.lid_label) for code, spec in languages.items()}
                self.filters.append(FILTERS[name](self.lid_model, labels, **kwargs))
            elif name == "laser":
                if laser_dir is None:
                    self.not_run["laser"] = "no LASER weights configured (set verify.laser_dir)"
                    continue
                laser3 = {code for code, spec in languages.items() if spec.laser3}
                self.filters.append(LaserFilter(str(laser_dir), laser3, **kwargs))
            elif name == "script":
                self.filters.append(ScriptFilter({code: spec.script for code, spec in languages.items()}, **kwargs))
            elif name == "fluency":
                fluency = FluencyFilter(languages, **kwargs)
                uncovered = fluency.uncovered(languages)
                if uncovered:  # runs for the others; these rows score null (never a pass)
                    self.not_run["fluency"] = (f"not run for {', '.join(uncovered)}: no usable spelling dictionary "
                                               f"(synth.verify.fluency.fluency_coverage)")
                self.filters.append(fluency)
            elif name == "contamination":
                if contamination is None:
                    self.not_run["contamination"] = "no evaluation sets configured (set verify.contamination.paths)"
                    continue
                self.filters.append(ContaminationFilter(contamination.paths, contamination.ngram,
                                                        contamination.char_ngram, **kwargs))
            elif name == "dedup":
                self.dedup = DedupFilter(**kwargs)
            else:
                self.filters.append(FILTERS[name](**kwargs))
        self.roundtrip = next((f for f in self.filters if isinstance(f, RoundtripFilter)), None)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.filters] + (["dedup"] if self.dedup else [])

    def thresholds(self) -> dict[str, dict]:
        """For the manifest: each filter's direction, default and per-language thresholds."""
        every = self.filters + ([self.dedup] if self.dedup else [])
        return {
            f.name: {"higher_is_better": f.higher_is_better, "threshold": f.threshold,
                     "per_language": f.per_language, "description": f.description}
            for f in every
        }

    def verify(self, batch: Sequence[Candidate]) -> list[Verdict]:
        return self.finish(batch, self.score_filters(batch))

    def score_filters(self, batch: Sequence[Candidate]) -> list[Verdict]:
        """Every stateless filter (no dedup): safe to run anywhere, in any order (verifier workers)."""
        with paused_gc():
            return self._score_filters(batch)

    def _score_filters(self, batch: Sequence[Candidate]) -> list[Verdict]:
        verdicts = [Verdict(scores={}, accepted=True) for _ in batch]
        langs = [c.lang for c in batch]
        for f in self.filters:
            if f.survivors_only:
                alive = [i for i, v in enumerate(verdicts) if not v.reasons]
                scored = f.score([batch[i] for i in alive]) if alive else []
                scores = [None] * len(batch)
                for i, score in zip(alive, scored):
                    scores[i] = score
            else:
                scores = f.score(batch)
            for verdict, score in zip(verdicts, scores):
                verdict.scores[f.name] = score
            for i in f.rejected(scores, langs):
                verdicts[i].reasons.append(f.name)
                verdicts[i].details.append(f.explain_candidate(batch[i], scores[i]))
        if self.roundtrip:
            for verdict, bleu in zip(verdicts, self.roundtrip.bleu_scores(batch)):
                verdict.scores["roundtrip_bleu"] = bleu
        return verdicts

    def finish(self, batch: Sequence[Candidate], verdicts: list[Verdict]) -> list[Verdict]:
        """The stateful part: dedup against what was accepted before, then remember. Call in order."""
        with paused_gc():
            # dedup only among rows that passed everything else, so a rejected row never blocks a good one
            passing = [i for i, v in enumerate(verdicts) if not v.reasons] if self.dedup else []
            rows = [batch[i] for i in passing]
            if self.dedup:
                scores, keys, signatures = self.dedup.sketch_and_score(rows)
                for v in verdicts:
                    v.scores["dedup"] = None
                for i, row, score in zip(passing, rows, scores):
                    verdicts[i].scores["dedup"] = score
                    if not self.dedup.accept(score, row.lang):
                        verdicts[i].reasons.append("dedup")
                        verdicts[i].details.append(self.dedup.explain(score, row.lang))
            for verdict in verdicts:
                verdict.accepted = not verdict.reasons
            for j, (i, row) in enumerate(zip(passing, rows)):  # in row order, with the sketches just made
                if verdicts[i].accepted:
                    self.dedup.remember_sketches(row.lang, keys[j:j + 1], signatures[j:j + 1])
            return verdicts

    def score_names(self) -> list[str]:
        """Columns of the `scores` struct, stable across rows."""
        names = [f.name for f in self.filters]
        if self.roundtrip:
            names.append("roundtrip_bleu")
        if self.dedup:
            names.append("dedup")
        return names
