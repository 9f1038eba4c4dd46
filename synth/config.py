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

    lang: str
    rows: int = Field(ge=1)
    methods: dict[Method, float] = Field(default_factory=lambda: {"icl": 0.5, "translate": 0.5})
    categories: list[str] = Field(default_factory=lambda: ["open_qa", "reasoning", "writing"], min_length=1)
    seeds: Path | None = Field(None, description="JSONL of native examples in messages form (needed by icl)")
    lid: Literal["auto", "skip"] = Field("auto", description="skip: the LID model does not cover this language")

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


class SourcesConfig(_Strict):
    """High-resource SFT conversations to translate (JSONL or Parquet with a `messages` column)."""

    path: Path
    lang: str = "eng_Latn"


class IclConfig(_Strict):
    """The `icl:` section: few-shot generation from native seed examples."""

    k: int = Field(3, ge=1, description="seed examples per prompt")
    prompt: str = "icl_pair"
    structured: bool = Field(False, description="ask for JSON {instruction, response} through the engine's "
                             "structured outputs instead of parsing the ### format: json_schema where the server "
                             "takes it, else json_object with the schema in the prompt (the preflight checks; a "
                             "server with neither is exit 2). A resume may change it (not in the config hash)")


class TranslateConfig(_Strict):
    prompt: str = "translate_turn"
    back_prompt: str = "back_translate_turn"
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

    enabled: bool = False
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
    max_rounds: int = Field(5, ge=1)


class OutputConfig(_Strict):
    shard_rows: int = Field(1000, ge=1)
    license: str = "other"


EXECUTION_ONLY = {"verify": {"workers", "num_cpus", "laser_num_gpus"}, "icl": {"structured"}}

# Engine settings that change only how (or from where) requests are sent, never which attempts a job
# makes or how a row is verified: a resume may change them (a longer timeout, fewer concurrent requests,
# a server restarted on another port, `structured: false` for a server without structured output)
# and keeps its committed rows. Sampling, the model, its context length, dtype and kwargs stay in the
# hash: they change what an attempt produces.
REQUEST_ONLY = {
    "openai": {"base_url", "api_key_env", "max_concurrency", "max_retries", "timeout_s", "backoff_s",
               "continue_final_message"},
    "vllm": {"replicas", "batch_size", "max_inflight", "max_restarts", "num_cpus"},
}


class JobConfig(_Strict):
    name: str = Field("synth-job", description="a plain name (letters, digits, - _ .): the default output is out/<name>")
    targets: list[TargetConfig] = Field(min_length=1)
    sources: SourcesConfig | None = None
    engine: EngineConfig
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    icl: IclConfig = Field(default_factory=IclConfig)
    translate: TranslateConfig = Field(default_factory=TranslateConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    plan: PlanConfig = Field(default_factory=PlanConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    languages_dir: Path | None = Field(None, description="extra language files (default: bundled languages/)")
    prompts_dir: Path | None = Field(None, description="extra prompt templates (default: bundled prompts/)")

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
        """Identity of the job's data: knobs that only change where work runs or how requests are sent
        (EXECUTION_ONLY, REQUEST_ONLY) are left out, so a run resumes with them changed."""
        data = self.model_dump(mode="json", exclude=EXECUTION_ONLY)
        for engine in (data["engine"], data["judge"]["engine"]):
            for key in REQUEST_ONLY.get((engine or {}).get("type"), ()):
                engine.pop(key, None)
        payload = json.dumps(data, sort_keys=True)
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
            target.seeds = absolute(target.seeds) or target.seeds
    if job.sources is not None:
        job.sources.path = absolute(job.sources.path) or job.sources.path
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
