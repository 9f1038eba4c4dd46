"""Job configuration: what to generate, with which engine, verified how, written where.

Everything is checked before any work starts (`parse_job`, then `synth.prepare`); a mistake raises
ConfigError naming the field and the fix, and the CLI exits 2 without writing anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from synth.datasource import DatasetEntry, as_entry
from synth.engines.base import SamplingConfig
from synth.engines.configs import EngineConfig
from synth.errors import ConfigError
from synth.secrets import REDACTED, redact_url

Method = Literal["icl", "translate"]

CATEGORIES: dict[str, str] = {
    "open_qa": "open question answering",
    "reasoning": "step-by-step reasoning",
    "writing": "creative and practical writing",
    "summarisation": "summarisation",
    "classification": "classification",
    "extraction": "information extraction",
    "math": "arithmetic word problem",
    "local_culture": "local culture and everyday life",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetConfig(_Strict):
    """Per-language goal: `rows` accepted rows, split over methods (weights) and categories."""

    lang: str = Field(description="the language's code in the registry (FLORES-200 style, e.g. swh_Latn; "
                      "`synth languages` lists them)")
    rows: int = Field(ge=1, description="accepted rows to produce for this language")
    methods: dict[Method, float] = Field(default_factory=lambda: {"icl": 0.5, "translate": 0.5},
                                         description="share of the rows per method, as positive weights "
                                         "(icl: from native seeds; translate: from `sources`)")
    categories: list[str] = Field(default_factory=lambda: ["open_qa", "reasoning", "writing"], min_length=1,
                                  description="task categories the rows are spread over, evenly; one of: "
                                  + ", ".join(CATEGORIES))
    seeds: DatasetEntry | None = Field(None, description="native examples (needed by icl): a JSONL/Parquet file "
                                       "in messages form, or an entry like sources (a datasets folder, "
                                       "hf://datasets/OWNER/NAME, with config/split/format/columns/where)")
    lid: Literal["auto", "skip"] = Field("auto", description="skip: the LID model does not cover this language")
    category_weights: dict[str, Annotated[float, Field(gt=0)]] | None = Field(
        None, description="share of the rows per category, as positive weights over `categories` (e.g. the "
        "rows per category `synth eval` wrote in next_targets.yaml); unset: the rows are spread evenly")

    _seeds_entry = field_validator("seeds", mode="before")(as_entry)

    @field_validator("methods")
    @classmethod
    def _positive_weights(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(w <= 0 for w in value.values()):
            raise ValueError("give at least one method with a positive weight, e.g. {icl: 0.5, translate: 0.5}")
        return value

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; choose from {sorted(CATEGORIES)}")
        return value

    @model_validator(mode="after")
    def _weights_of_the_categories(self) -> "TargetConfig":
        if self.category_weights is not None and set(self.category_weights) != set(self.categories):
            raise ValueError(f"category_weights: give one weight per category of `categories` "
                             f"{self.categories} (got {sorted(self.category_weights)})")
        return self


class SourcesConfig(DatasetEntry):
    """High-resource SFT conversations to translate: a JSONL/Parquet file with a `messages` column, a
    `datasets` folder or a Hub dataset (hf://datasets/OWNER/NAME), mapped by synth/datasource.py."""

    lang: str = Field("eng_Latn", description="language of the sources (a registry code)")


class IclConfig(_Strict):
    k: int = Field(3, ge=1, description="seed examples per prompt")
    prompt: str = Field("icl_pair", description="a template in prompts/ (or added with Job.add_prompt) with "
                        "method: icl")
    structured: bool = Field(False, description="ask for JSON {instruction, response} through the engine's "
                             "structured outputs (vLLM, OpenAI json_schema) instead of parsing the ### format")


class TranslateConfig(_Strict):
    prompt: str = Field("translate_turn", description="template of the forward translation (method: translate)")
    back_prompt: str = Field("back_translate_turn", description="template of the back-translation the round "
                             "trip scores (method: back_translate)")
    max_chars: int = Field(1500, ge=100, description="longest text per translation request: longer messages are "
                           "cut at paragraph (then sentence) boundaries and rejoined; keep its translation "
                           "(about max_chars/2 tokens) under sampling.max_tokens")
    back_translate: Literal["survivors", "all"] = Field(
        "survivors", description="survivors: back-translate only forward translations that passed the cheap "
        "checks (rules, language ID, script, structure, fluency), the rest are rejected anyway; all: every one "
        "(cost baseline)")
    max_source_chars: int = Field(20000, ge=100, description="a source message longer than this is not sent: "
                                  "its attempt is rejected as source_too_long (bounds the requests per attempt)")


class ContaminationConfig(_Strict):
    """Evaluation sets that generated rows must not overlap (the `contamination` filter)."""

    paths: list[Path] = Field(min_length=1, description="JSONL, Parquet or text files of evaluation items")
    ngram: int = Field(13, ge=3, description="words per n-gram")
    char_ngram: int = Field(50, ge=8, description="characters per n-gram for scripts written without spaces")


class VerifyConfig(_Strict):
    preset: str = Field("default", description="a file in filters/ (without .yaml) or a path")
    laser_dir: Path | None = Field(None, description="directory with LASER2/LASER3 weights; unset: LASER not run")
    thresholds: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="per-language overrides: {swh_Latn: {lid: 0.4}}"
    )
    # where verification runs (not part of the job's identity: see EXECUTION_ONLY)
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto", description="verifier actors on Ray CPU workers, scoring slice k while slice k+1 is generated; "
        "0: verify in the driver after each slice (no overlap); auto: as many as the free CPUs hold, at most 4")
    num_cpus: float = Field(0.5, ge=0, description="CPUs each verifier actor reserves; shrunk to what the engine "
                            "left free, so a 1-CPU machine with one replica never waits for resources")
    laser_num_gpus: float = Field(0.0, ge=0, le=1, description="GPU share each verifier takes for LASER when "
                                  "laser_dir is set and that much GPU is free; 0: LASER on the CPU")
    contamination: ContaminationConfig | None = Field(
        None, description="evaluation sets for the contamination filter; unset: contamination not run"
    )


DIMENSIONS = ("language", "content", "culture")  # what the LLM judge grades (synth/verify/judge.py)
Dimension = Literal["language", "content", "culture"]


class JudgeConfig(_Strict):
    """The job's `judge:` section. Off by default: every judged row costs a generation."""

    enabled: bool = Field(False, description="grade rows with the LLM judge (each judged row costs a generation)")
    prompt: str = Field("judge_row", description="a template in prompts/ with method: judge")
    thresholds: dict[Dimension, Annotated[float, Field(ge=1, le=5)]] = Field(
        default_factory=dict, description="override the preset's judge thresholds for every language: {content: 4}")
    engine: EngineConfig | None = Field(
        None, description="a separate judge engine (vLLM or OpenAI-compatible); unset: the job's own engine")
    temperature: float = Field(0.3, ge=0, description="sampling temperature of a separate judge engine (the "
                               "job's own engine keeps the job's sampling); above 0 so the one retry can differ")
    max_tokens: int = Field(256, ge=16, description="longest verdict, in tokens (on the job's own engine at most "
                            "its sampling.max_tokens)")
    rows: Literal["survivors", "all"] = Field(
        "survivors", description="which rows the judge grades: `survivors` (those no filter rejected: a judge call "
        "spent on a row already lost buys nothing), or `all` generated rows, to audit the filters against the "
        "judge at the cost of a judge call per row")
    pivot: Literal["off", "back_translation", "translate"] = Field(
        "back_translation", description="for targets whose reasoning_language is a pivot, also show the judge "
        "a pivot-language rendering: the back-translation of translated rows; `translate` also asks for one "
        "translation of each ICL row into the pivot (a request per row)")


class PlanConfig(_Strict):
    initial_acceptance: float = Field(0.5, gt=0, le=1, description="acceptance guessed before any is observed")
    oversample: float = Field(1.3, ge=1.0, description="most attempts per expected need: need / rate x this while the "
                              "rate is a guess and in the last round; with a measured rate, rounds take just enough "
                              "to meet the need with ~95% probability, at most this")
    max_attempts_per_row: float = Field(8.0, ge=1.0, description="budget: attempts <= rows x this, per language")
    max_rounds: int = Field(5, ge=1, description="generation rounds at most; each round plans attempts from the "
                            "acceptance observed so far")


class OutputConfig(_Strict):
    shard_rows: int = Field(1000, ge=1, description="rows per Parquet shard of accepted rows")
    license: str = Field("other", description="licence written into the dataset card (DIR/README.md front matter)")


EXECUTION_ONLY = {"verify": {"workers", "num_cpus", "laser_num_gpus"}}


class JobConfig(_Strict):
    name: str = Field("synth-job", description="a plain name (letters, digits, - _ .): the default output is out/<name>")
    targets: list[TargetConfig] = Field(min_length=1, description="one entry per language: how many rows, by "
                                        "which methods, in which categories")
    sources: SourcesConfig | None = Field(None, description="English (or other) SFT data to translate; "
                                          "needed by the translate method")
    engine: EngineConfig = Field(description="the teacher model: vLLM replicas on Ray (type: vllm, the "
                                 "default) or an OpenAI-compatible endpoint (type: openai)")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="sampling of every "
                                     "generation request")
    icl: IclConfig = Field(default_factory=IclConfig, description="the icl method: rows written from native seeds")
    translate: TranslateConfig = Field(default_factory=TranslateConfig, description="the translate method: "
                                       "sources translated, then back-translated for the round trip")
    verify: VerifyConfig = Field(default_factory=VerifyConfig, description="which filter preset scores the "
                                 "rows, and where verification runs")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="the optional LLM judge")
    plan: PlanConfig = Field(default_factory=PlanConfig, description="how many attempts each round makes, "
                             "and the budget")
    output: OutputConfig = Field(default_factory=OutputConfig, description="shards and dataset card")
    languages_dir: Path | None = Field(None, description="extra language files (default: bundled languages/)")
    prompts_dir: Path | None = Field(None, description="extra prompt templates (default: bundled prompts/)")

    _sources_entry = field_validator("sources", mode="before")(as_entry)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", value) or set(value) == {"."}:
            raise ValueError("use a plain name of letters, digits, '-', '_' and '.' (no path), e.g. swahili-sft; "
                             "the default output directory is out/<name>")
        return value

    @model_validator(mode="after")
    def _unique_targets(self) -> "JobConfig":
        langs = [t.lang for t in self.targets]
        dupes = sorted({l for l in langs if langs.count(l) > 1})
        if dupes:
            raise ValueError(f"targets: {dupes} listed more than once; merge them into one target each")
        return self

    def public_dump(self) -> dict:
        """The config as synth writes it (DIR/_work/job.json): URL credentials and `engine.env` values
        redacted, so no secret reaches a file. The config hash still sees the values."""
        data = self.model_dump(mode="json")
        engines = [data["engine"]] + ([data["judge"]["engine"]] if (data.get("judge") or {}).get("engine") else [])
        for engine in engines:
            if engine.get("base_url"):
                engine["base_url"] = redact_url(engine["base_url"])
            if engine.get("env"):
                engine["env"] = {name: REDACTED for name in engine["env"]}
        return data

    def config_hash(self) -> str:
        """Identity of the job's data: knobs that only change where work runs are left out, so a run
        resumes with other verifier settings."""
        payload = json.dumps(self.model_dump(mode="json", exclude=EXECUTION_ONLY), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        if loc[:1] == ["engine"] and len(loc) > 2:
            del loc[1]  # the union's tag (vllm / openai) is not a key the user wrote
        where = ".".join(str(p) for p in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key; remove it or fix its spelling")
        elif error["type"] == "missing":
            lines.append(f"{where}: required field missing; add it")
        else:
            lines.append(f"{where}: {error['msg']}")
    return f"{path}: invalid job config:\n  " + "\n  ".join(lines)


def parse_job(path: Path) -> JobConfig:
    """Parse and validate the schema of a job file; relative paths are relative to the job file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: job file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the job file as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a job file is a YAML mapping with at least `targets` and `engine`")
    try:
        job = JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from exc
    base = path.resolve().parent

    def absolute(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    for target in job.targets:
        if target.seeds is not None:
            target.seeds.absolute(base)
    if job.sources is not None:
        job.sources.absolute(base)
    for attr in ("languages_dir", "prompts_dir"):
        value = getattr(job, attr)
        if value is not None:
            setattr(job, attr, absolute(value) or value)
    preset = job.verify.preset
    if (preset.endswith((".yaml", ".yml")) or "/" in preset) and not Path(preset).is_absolute():
        job.verify.preset = str(base / preset)  # a preset file next to the job, like seeds and sources
    if job.verify.laser_dir is not None:
        job.verify.laser_dir = absolute(job.verify.laser_dir) or job.verify.laser_dir
    if job.verify.contamination is not None:
        job.verify.contamination.paths = [absolute(p) or p for p in job.verify.contamination.paths]
    return job
