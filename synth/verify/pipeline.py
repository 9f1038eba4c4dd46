"""Builds the filters of a preset and applies them: score, then accept by per-language threshold.

A preset names built-in filters (FILTERS) and may add a user's own: a `filters:` entry
`{module: my_pkg.filters, class: MyFilter, args: {...}}` imports a `synth.verify.Filter` subclass
(see base.py for the contract); its thresholds go under its `name` like any filter's. Filter objects
made in code join through `Verifier(..., filters=[...])` (the Python API's `Job.add_filter`).
"""

from __future__ import annotations

import gc
import importlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from synth.reasons import FIXED, Reason, registry
from synth.errors import ConfigError
from synth.loading import load_yaml
from synth.languages import LanguageSpec
from synth.paths import data_dir
from synth.standardise import StandardiseConfig, encoding_verdicts
from synth.verify.rules.alignment import StructureMismatchFilter
from synth.verify.base import Candidate, Filter, FilterError
from synth.verify.sets.contamination import ContaminationFilter
from synth.verify.sets.dedup import DedupFilter, sketch
from synth.verify.fluency.filter import FluencyFilter
from synth.verify.judge import JudgePreset
from synth.verify.meaning.laser import LaserFilter, LaserSetup, laser_setup
from synth.verify.lid.router import LidFilter, LidRouter, MixedLanguageFilter
from synth.verify.meaning.roundtrip import RoundtripFilter
from synth.verify.rules.form import CopyFilter, EmptyFilter, LengthRatioFilter, RepetitionFilter, TruncatedFilter
from synth.verify.rules.script import ScriptFilter
from synth.verify.meaning.semantic import ENCODER as SEMANTIC_ENCODER, SemanticFilter

FILTERS: dict[str, type[Filter]] = {
    f.name: f
    for f in (EmptyFilter, TruncatedFilter, RepetitionFilter, LengthRatioFilter, CopyFilter,
              LidFilter, MixedLanguageFilter, ScriptFilter, FluencyFilter, LaserFilter, SemanticFilter, RoundtripFilter,
              DedupFilter, ContaminationFilter, StructureMismatchFilter)
}


class PluginFilter(BaseModel):
    """A user's filter in a preset: `{module: my_pkg.filters, class: MyFilter, args: {...}}`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    module: str = Field(description="importable module holding the class, e.g. my_pkg.filters")
    class_name: str = Field(alias="class", description="a synth.verify.Filter subclass in that module")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of its constructor")

    def load(self, where: str) -> type[Filter]:
        """The class, after checking it keeps the Filter contract (base.py)."""
        label = f"{where}: filter {self.module}.{self.class_name}"
        try:
            module = importlib.import_module(self.module)
        except Exception as exc:  # ImportError, or the module itself failing
            raise ConfigError(f"{label}: cannot import {self.module!r} ({type(exc).__name__}: {exc}); "
                              f"install it or put its directory on PYTHONPATH") from exc
        cls = getattr(module, self.class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Filter)):
            raise ConfigError(f"{label}: {self.module} has no synth.verify.Filter subclass {self.class_name!r}")
        if not isinstance(getattr(cls, "name", None), str) or not cls.name.isidentifier():
            raise ConfigError(f"{label}: set a class attribute `name` (a lower-case identifier: its score column "
                              f"and reject reason)")
        if not isinstance(getattr(cls, "higher_is_better", None), bool):
            raise ConfigError(f"{label}: `higher_is_better` must be True or False")
        return cls


class FilterPreset(BaseModel):
    """A file in `filters/`: which filters run, their thresholds, per-language overrides.

    `filters` holds names; a user's filter written inline as `{module, class, args}` is listed by its
    class's `name` and kept in `plugins` (load_preset does that; a preset may also spell `plugins` out)."""

    # strict: a bool or a string is not a threshold; finite numbers only (docs/safety.md)
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str = Field(max_length=200, description="the preset's name, recorded in the manifest (at most 200 "
                      "characters)")
    description: str = Field("", description="what the preset is for, in a sentence or two")
    filters: list[str] = Field(max_length=200, description="the filters that run, by name, in order (at most 200; "
                               "a user's filter may be written inline as {module, class, args})")
    plugins: dict[str, PluginFilter] = Field(default_factory=dict, description="user filters by name")
    thresholds: dict[str, float] = Field(default_factory=dict, description="threshold per filter name for every "
                                         "language, over the filter's default_threshold (finite numbers)")
    languages: dict[str, dict[str, float]] = Field(default_factory=dict, description="per-language thresholds "
                                                   "over `thresholds` (finite numbers): {jav_Latn: {lid: 0.37}}")
    lid_model: str | None = Field(
        None, description="a fastText LID model: a path or hf://owner/repo (e.g. hf://cis-lmu/glotlid); default: bundled lid.176")
    lid_backends: dict[str, list[Literal["fasttext", "cld2"]]] = Field(
        default_factory=dict, description="LID backend(s) per language, {som_Latn: [fasttext, cld2]}; "
                                          "default: fastText where it has the language, else CLD2")
    judge: JudgePreset = Field(default_factory=JudgePreset, description="LLM judge thresholds (used only when "
                               "the job enables the judge, or `synth verify --judge`)")
    standardise: StandardiseConfig = Field(default_factory=StandardiseConfig, description="the standardisation "
                                           "stage run before any filter scores a row (on by default)")

    def check(self, where: str) -> None:
        for name, plugin in self.plugins.items():
            cls = plugin.load(where)
            if cls.name != name:
                raise ConfigError(f"{where}: plugins.{name} is {plugin.module}.{plugin.class_name}, whose name is {cls.name!r}")
            if name in FILTERS or name in FIXED:
                raise ConfigError(f"{where}: filter {plugin.module}.{plugin.class_name} is named {name!r}, like a "
                                  f"built-in filter or reject reason; give it another `name`")
            if getattr(cls, "default_threshold", None) is None and name not in self.thresholds:
                raise ConfigError(f"{where}: filter {name!r} ({plugin.module}.{plugin.class_name}) has no "
                                  f"default_threshold; set thresholds.{name} in the preset")
        named = set(self.filters) | set(self.thresholds)
        for lang_thresholds in self.languages.values():
            named |= set(lang_thresholds)
        unknown = sorted(named - set(FILTERS) - set(self.plugins))
        if unknown:
            raise ConfigError(f"{where}: unknown filters {unknown}; known: {', '.join(FILTERS)}, or a user's filter "
                              f"as {{module: my_pkg.filters, class: MyFilter}}")


def _inline_plugins(raw: Any, where: str) -> Any:
    """A preset's `filters:` entries written as {module, class, args}: listed by name, kept in `plugins`."""
    if not isinstance(raw, dict) or not isinstance(raw.get("filters"), list):
        return raw
    raw = dict(raw)
    plugins = dict(raw.get("plugins") or {})
    names = []
    for i, entry in enumerate(raw["filters"]):
        if not isinstance(entry, dict):
            names.append(entry)
            continue
        try:
            plugin = PluginFilter.model_validate(entry)
        except Exception as exc:
            raise ConfigError(f"{where}: filters[{i}]: a user filter is {{module: my_pkg.filters, class: MyFilter, "
                              f"args: {{...}}}}: {exc}") from exc
        name = plugin.load(f"{where}: filters[{i}]").name
        if name in plugins or name in names:
            raise ConfigError(f"{where}: filters[{i}]: a second filter named {name!r}")
        plugins[name] = plugin.model_dump()
        names.append(name)
    raw["filters"], raw["plugins"] = names, plugins
    return raw


def _extended(raw: Any, path: Path, depth: int = 0) -> Any:
    """`extends: default` (a preset name or a path next to this one): the base preset's keys, with this
    file's `filters` (and scalars) instead and its `thresholds`, `languages`, `lid_backends` merged over."""
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    raw = dict(raw)
    base_name = str(raw.pop("extends"))
    base_path = Path(base_name) if Path(base_name).suffix else data_dir("filters") / f"{base_name}.yaml"
    base_path = base_path if base_path.is_absolute() or not Path(base_name).suffix else path.parent / base_path
    if depth > 4 or not base_path.is_file() or base_path.resolve() == path.resolve():
        raise ConfigError(f"{path}: extends: {base_name!r} is not another preset; name one in filters/ or a path")
    base = _extended(load_yaml(base_path, "filter preset"), base_path, depth + 1)
    merged = {**base, **raw}
    for key in ("thresholds", "lid_backends"):
        merged[key] = {**(base.get(key) or {}), **(raw.get(key) or {})}
    langs = {lang: dict(v) for lang, v in (base.get("languages") or {}).items()}
    for lang, values in (raw.get("languages") or {}).items():
        langs.setdefault(lang, {}).update(values)
    merged["languages"] = langs
    return merged


def load_preset(name_or_path: str) -> FilterPreset:
    """A preset by name (`default` -> filters/default.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = data_dir("filters") / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in data_dir("filters").glob("*.yaml")))
        raise ConfigError(f"verify.preset: no filter preset {name_or_path!r}; use one of: {known}, or a path to a YAML file")
    raw = _extended(load_yaml(path, "filter preset"), path)
    raw = _inline_plugins(raw, str(path))
    try:
        preset = FilterPreset.model_validate(raw)
    except Exception as exc:
        raise ConfigError(f"{path}: invalid filter preset: {exc}") from exc
    preset.check(str(path))
    return preset


def known_reasons() -> dict[str, Reason]:
    """Every reject reason of synth's own stages and built-in filters (a run adds its user filters':
    Verifier.reasons)."""
    return registry((name, cls.description) for name, cls in FILTERS.items())


_NUMBER_TYPES = (int, float, np.integer, np.floating)


def checked_scores(f: Filter, batch: Sequence[Candidate]) -> list[float | None]:
    """`f.score(batch)`, or FilterError naming the filter when it raises or breaks the contract: one
    score per row, each a number or None (a filter is never skipped silently)."""
    label = f"filter {f.name!r} ({type(f).__module__}.{type(f).__qualname__})"
    try:
        scores = f.score(batch)
    except Exception as exc:
        raise FilterError(f"{label} failed on a batch of {len(batch)} rows: {type(exc).__name__}: {exc}") from exc
    if not isinstance(scores, (list, tuple, np.ndarray)) or len(scores) != len(batch):
        got = f"{len(scores)} scores" if hasattr(scores, "__len__") else type(scores).__name__
        raise FilterError(f"{label} returned {got} for a batch of {len(batch)} rows; score() must return "
                          f"one float (or None: not applicable) per row, in order")
    wrong = next((t for t in set(map(type, scores))
                  if t is not type(None) and (not issubclass(t, _NUMBER_TYPES) or issubclass(t, (bool, np.bool_)))), None)
    if wrong is not None:
        example = next(s for s in scores if type(s) is wrong)
        raise FilterError(f"{label} returned a {wrong.__name__} score ({example!r}); scores are floats, or None "
                          f"where the filter does not apply")
    return list(scores)


@dataclass
class Verdict:
    scores: dict[str, float | None]
    accepted: bool
    reasons: list[str] = field(default_factory=list)  # filter names that rejected the row
    details: list[str] = field(default_factory=list)  # human-readable, one per reason


@dataclass
class VerdictColumns:
    """The verdicts of consecutive rows as columns: what `synth verify`'s workers send back and what it
    writes (a list of Verdicts, a dict per row, costs several times more to pickle and to tabulate)."""

    scores: dict[str, list[float | None]]  # filter -> its score of each row (None: not scored)
    reasons: list[list[str]]
    details: list[list[str]]

    @classmethod
    def of(cls, verdicts: Sequence[Verdict], names: Sequence[str]) -> "VerdictColumns":
        return cls({n: [v.scores.get(n) for v in verdicts] for n in names},
                   [v.reasons for v in verdicts], [v.details for v in verdicts])

    def __len__(self) -> int:
        return len(self.reasons)

    @property
    def accepted(self) -> list[bool]:
        return [not r for r in self.reasons]


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
        filters: Sequence[Filter] = (),  # filter objects made in code (Job.add_filter), run after the preset's
        meaning_langs: set[str] | None = None,  # languages whose rows will be scored: LASER3 fetched for these
        fetch_laser: bool = True,  # False: LASER from laser_dir or the cache only, no download (verifier workers)
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
        self.laser: LaserSetup | None = None
        if "laser" in preset.filters:  # LASER where it can run; else `semantic` (when listed) fills in
            laser3 = {code for code, spec in languages.items() if spec.laser3}
            self.laser = laser_setup(laser_dir, laser3, meaning_langs, fetch=fetch_laser)
        for name in preset.filters:
            kwargs = {"threshold": preset.thresholds.get(name), "per_language": per_lang.get(name)}
            if name in ("lid", "mixed_language"):
                if not hasattr(self, "lid_router"):
                    self.lid_router = LidRouter(languages, preset.lid_model, preset.lid_backends, set(lid_skip))
                    self.lid_model = self.lid_router.fasttext
                self.filters.append(FILTERS[name](self.lid_router, **kwargs))
            elif name == "laser":
                if self.laser.directory is None:
                    self.not_run["laser"] = self.laser.note
                    continue
                self.filters.append(LaserFilter(str(self.laser.directory), self.laser.laser3, **kwargs))
            elif name == "semantic":
                if self.laser is not None and self.laser.directory is not None:
                    self.not_run["semantic"] = f"LASER scores meaning ({self.laser.note})"
                    continue
                self.filters.append(SemanticFilter(**kwargs))
            elif name == "script":
                self.filters.append(ScriptFilter({code: spec.script for code, spec in languages.items()}, **kwargs))
            elif name == "fluency":
                fluency = FluencyFilter(languages, **kwargs)
                uncovered = fluency.uncovered(languages)
                if uncovered:  # runs for the others; these rows score null (never a pass)
                    self.not_run["fluency"] = (f"not run for {', '.join(uncovered)}: no usable spelling dictionary, "
                                               f"subword model nor word list (synth.verify.fluency.filter.fluency_coverage)")
                self.filters.append(fluency)
            elif name == "contamination":
                if contamination is None:
                    self.not_run["contamination"] = "no evaluation sets configured (set verify.contamination.paths)"
                    continue
                self.filters.append(ContaminationFilter(contamination.paths, contamination.ngram,
                                                        contamination.char_ngram, **kwargs))
            elif name == "dedup":
                self.dedup = DedupFilter(**kwargs)
            elif name in preset.plugins:
                plugin = preset.plugins[name]
                try:
                    self.filters.append(plugin.load(f"filter preset {preset.name}")(**plugin.args, **kwargs))
                except ConfigError:
                    raise
                except Exception as exc:
                    raise ConfigError(f"filter preset {preset.name}: filter {name!r} ({plugin.module}.{plugin.class_name}) "
                                      f"could not be made from args {plugin.args}: {type(exc).__name__}: {exc}") from exc
            else:
                self.filters.append(FILTERS[name](**kwargs))
        for f in filters:
            if not isinstance(f, Filter):
                raise ConfigError(f"filters: {f!r} is not a synth.verify.Filter; subclass it (see synth/verify/base.py)")
            for lang, value in (per_lang.get(f.name) or {}).items():  # the job's per-language overrides
                f.per_language[lang] = value
            self.filters.append(f)
        names = self.names
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"filters: more than one filter named {twice}; each filter needs its own `name`")
        try:
            self.reason_registry = registry((f.name, f.description) for f in self.filters + [self.dedup] if f)
        except ValueError as exc:
            raise ConfigError(f"filters: {exc}") from exc
        self.roundtrip = next((f for f in self.filters if isinstance(f, RoundtripFilter)), None)

    def meaning_encoder(self, lang: str) -> str | None:
        """Which encoder scores source/candidate similarity of `lang`'s rows (the manifest lists it per
        language): laser3 or laser2, the offline semantic encoder, or None (no meaning filter runs)."""
        for f in self.filters:
            if isinstance(f, LaserFilter):
                return f.encoder_name(lang)
            if isinstance(f, SemanticFilter):
                return SEMANTIC_ENCODER
        return None

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.filters] + (["dedup"] if self.dedup else [])

    def reasons(self) -> dict[str, Reason]:
        """Every reason a row of this run can be rejected for: synth's fixed ones and one per filter."""
        return self.reason_registry

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
        """Every stateless filter (no dedup): safe to run anywhere, in any order (verifier workers).
        Cheap filters first, then the slow (`survivors_only`) ones, each group in preset order."""
        with paused_gc():
            verdicts = [Verdict(scores={}, accepted=True, reasons=reasons, details=details)
                        for reasons, details in encoding_verdicts(c.text for c in batch)]
            langs = [c.lang for c in batch]
            for f in sorted(self.filters, key=lambda f: f.survivors_only):
                self._apply(f, batch, verdicts, langs)
            if self.roundtrip:
                for verdict, bleu in zip(verdicts, self.roundtrip.bleu_scores(batch)):
                    verdict.scores["roundtrip_bleu"] = bleu
            return verdicts

    def _apply(self, f: Filter, batch: Sequence[Candidate], verdicts: list[Verdict], langs: list[str]) -> None:
        """Score `batch` (languages `langs`) with one filter (a slow one only on the rows no filter
        rejected so far: None for the rest) and add its rejects to the verdicts."""
        if f.survivors_only:
            rows = [i for i, v in enumerate(verdicts) if not v.reasons]
            kept = checked_scores(f, [batch[i] for i in rows])
            scores: list[float | None] = [None] * len(batch)
            for i, score in zip(rows, kept):
                scores[i] = score
        else:
            scores = checked_scores(f, batch)
        for verdict, score in zip(verdicts, scores):
            verdict.scores[f.name] = score
        try:
            rejected = ([rows[j] for j in f.rejected(kept, [langs[i] for i in rows])] if f.survivors_only
                        else f.rejected(scores, langs))
            for i in rejected:
                verdicts[i].reasons.append(f.name)
                verdicts[i].details.append(f.explain_candidate(batch[i], scores[i]))
        except Exception as exc:
            raise FilterError(f"filter {f.name!r} ({type(f).__module__}.{type(f).__qualname__}) failed to "
                              f"threshold or explain its scores: {type(exc).__name__}: {exc}") from exc

    def dedup_sketches(self, batch: Sequence[Candidate], verdicts: list[Verdict]) -> tuple | None:
        """What `finish`'s dedup needs of the rows' texts (their sketches), made where the rows were
        scored: a forked worker sends these back with its verdicts instead of the parent sketching."""
        if not self.dedup:
            return None
        return sketch([batch[i].text for i, v in enumerate(verdicts) if not v.reasons])

    def finish(self, batch: Sequence[Candidate], verdicts: list[Verdict]) -> list[Verdict]:
        """The stateful part: dedup against what was accepted before, then remember. Call in order."""
        columns = self.finish_columns(batch, VerdictColumns.of(verdicts, ()))  # shares their reason lists
        for verdict, score in zip(verdicts, columns.scores.get("dedup", ())):
            verdict.scores["dedup"] = score
        for verdict in verdicts:
            verdict.accepted = not verdict.reasons
        return verdicts

    def finish_columns(self, batch: Sequence[Candidate], columns: VerdictColumns, sketched: tuple | None = None,
                       ) -> VerdictColumns:
        """`finish` for verdicts held as columns; `sketched`: `dedup_sketches` of the rows, made where
        they were scored (then their texts are not read here)."""
        if self.dedup:
            with paused_gc():
                passing = [i for i, r in enumerate(columns.reasons) if not r]
                scores = self._dedup([batch[i] for i in passing], [columns.reasons[i] for i in passing],
                                     [columns.details[i] for i in passing], sketched)
                column: list[float | None] = [None] * len(columns)
                for i, score in zip(passing, scores):
                    column[i] = score
                columns.scores["dedup"] = column
        return columns

    def _dedup(self, rows: Sequence[Candidate], reasons: list[list[str]], details: list[list[str]],
               sketched: tuple | None) -> list[float | None]:
        """Dedup of `rows`, the rows that passed every other filter (so a rejected row never blocks a
        good one), in order: adds its rejects to their `reasons` and `details`, remembers the rows it
        keeps, returns their scores."""
        scores, keys, signatures, bands = self.dedup.sketch_and_score(rows, sketched)
        for j, (row, score) in enumerate(zip(rows, scores)):
            if self.dedup.accept(score, row.lang):  # in row order, with the sketches just made
                self.dedup.remember_sketches(row.lang, keys[j:j + 1], signatures[j:j + 1], bands[j:j + 1])
            else:
                reasons[j].append("dedup")
                details[j].append(self.dedup.explain(score, row.lang))
        return scores

    def rejected_before_back_translation(self, batch: Sequence[Candidate]) -> set[int]:
        """Rows of `batch` (translations not yet back-translated) that a filter needing no
        back-translation and no neural model (`light`) already rejects: a back-translation of these
        would be spent on a row that is lost anyway. As in `score_filters`, the slow ones
        (`survivors_only`, e.g. fluency) see only the rows the others kept."""
        langs = [c.lang for c in batch]
        failed: set[int] = {i for i, (reasons, _) in enumerate(encoding_verdicts(c.text for c in batch)) if reasons}
        usable = [f for f in self.filters if f.light and not f.needs_back_translation]
        for f in sorted(usable, key=lambda f: f.survivors_only):
            rows = [i for i in range(len(batch)) if i not in failed] if f.survivors_only else range(len(batch))
            if rows:
                scores = checked_scores(f, [batch[i] for i in rows])
                failed.update(rows[j] for j in f.rejected(scores, [langs[i] for i in rows]))
        return failed

    def score_names(self) -> list[str]:
        """Columns of the `scores` struct, stable across rows."""
        names = [f.name for f in self.filters]
        if self.roundtrip:
            names.append("roundtrip_bleu")
        if self.dedup:
            names.append("dedup")
        return names
