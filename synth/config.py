"""Job configuration: what to generate, with which engine, verified how, written where.

Everything is checked before any work starts (`parse_job`, then `synth.prepare`); a mistake raises
ConfigError naming the field and the fix, and the CLI exits 2 without writing anything.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator,
                      model_validator)

from synth.datasource import DatasetEntry, as_entry
from synth.engines.base import SamplingConfig
from synth.engines.configs import EngineConfig
from synth.errors import ConfigError
from synth.limits import MAX_ATTEMPTS, MAX_NGRAM, MAX_ROWS, MAX_WEIGHT
from synth.loading import load_yaml
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


# a path field takes the YAML string (strict mode alone would want a Path object)
FilePath = Annotated[Path, Strict(False)]


class _Strict(BaseModel):
    # strict: `rows: true` or `rows: "5"` is refused, not read as 1 or 5; an int still passes as a float.
    # Finite floats only: `.inf` or `.nan` is refused where it is written.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class TargetConfig(_Strict):
    """Per-language goal: `rows` accepted rows, split over methods (weights) and categories."""

    lang: str = Field(max_length=64, description="language code of the registry, e.g. swh_Latn")
    rows: int = Field(ge=1, le=MAX_ROWS, description=f"accepted rows wanted (1 to {MAX_ROWS:,}; with every "
                      f"target's rows x plan.max_attempts_per_row at most {MAX_ATTEMPTS:,} per job)")
    methods: dict[Method, Annotated[float, Field(le=MAX_WEIGHT)]] = Field(
        default_factory=lambda: {"icl": 0.5, "translate": 0.5},
        description=f"weight of each method (positive, finite, at most {MAX_WEIGHT:g}; only the ratios matter)")
    categories: list[str] = Field(default_factory=lambda: ["open_qa", "reasoning", "writing"], min_length=1,
                                  max_length=len(CATEGORIES), description="categories of the rows, among CATEGORIES "
                                  "(1 to 8, each once)")
    seeds: DatasetEntry | None = Field(None, description="native examples (needed by icl): a JSONL/Parquet file "
                                       "in messages form, or an entry like sources (a datasets folder, "
                                       "hf://datasets/OWNER/NAME, with config/split/format/columns/where)")
    lid: Literal["auto", "skip"] = Field("auto", description="skip: the LID model does not cover this language")
    category_weights: dict[str, Annotated[float, Field(gt=0, le=MAX_WEIGHT)]] | None = Field(
        None, description=f"share of the rows per category, as positive weights over `categories` (at most "
        f"{MAX_WEIGHT:g} each; e.g. the rows per category `synth eval` wrote in next_targets.yaml); unset: the rows "
        "are spread evenly")

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
        if len(set(value)) != len(value):
            raise ValueError(f"a category is listed twice in {value}; list each once")
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

    lang: str = Field("eng_Latn", max_length=64, description="language code of the sources")


class IclConfig(_Strict):
    """The `icl:` section: few-shot generation from native seed examples."""

    k: int = Field(3, ge=1, le=64, description="seed examples per prompt (1 to 64)")
    prompt: str = Field("icl_pair", max_length=200, description="a template in prompts/ with method: icl")
    structured: bool = Field(False, description="ask for JSON {instruction, response} through the engine's "
                             "structured outputs instead of parsing the ### format: json_schema where the server "
                             "takes it, else json_object with the schema in the prompt (the preflight checks; a "
                             "server with neither is exit 2). A resume may change it (not in the config hash)")


class TranslateConfig(_Strict):
    prompt: str = Field("translate_turn", max_length=200, description="a template in prompts/ with method: translate")
    back_prompt: str = Field("back_translate_turn", max_length=200,
                             description="a template in prompts/ with method: back_translate")
    max_chars: int = Field(1500, ge=100, le=100_000, description="longest text per translation request (100 to "
                           "100,000): longer messages are cut at paragraph (then sentence) boundaries and rejoined; "
                           "keep its translation (about max_chars/2 tokens) under sampling.max_tokens")
    back_translate: Literal["survivors", "all"] = Field(
        "survivors", description="survivors: back-translate only forward translations that passed the cheap "
        "checks (rules, language ID, script, structure, fluency), the rest are rejected anyway; all: every one "
        "(cost baseline)")
    max_source_chars: int = Field(20000, ge=100, le=1_000_000, description="a source message longer than this "
                                  "(100 to 1,000,000) is not sent: its attempt is rejected as source_too_long (bounds "
                                  "the requests per attempt)")


class ContaminationConfig(_Strict):
    """Evaluation sets that generated rows must not overlap (the `contamination` filter)."""

    paths: list[FilePath] = Field(min_length=1, max_length=1000,
                              description="JSONL, Parquet or text files of evaluation items (1 to 1000)")
    ngram: int = Field(13, ge=3, le=MAX_NGRAM, description=f"words per n-gram (3 to {MAX_NGRAM})")
    char_ngram: int = Field(50, ge=8, le=1000, description="characters per n-gram for scripts written without "
                            "spaces (8 to 1000)")


class VerifyConfig(_Strict):
    preset: str = Field("default", max_length=4096, description="a file in filters/ (without .yaml) or a path")
    laser_dir: FilePath | None = Field(None,
                                   description="directory with LASER2/LASER3 weights; unset: LASER not run")
    thresholds: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="per-language overrides (finite numbers): {swh_Latn: {lid: 0.4}}"
    )
    # where verification runs (not part of the job's identity: see EXECUTION_ONLY)
    workers: Annotated[int, Field(ge=0, le=1024)] | Literal["auto"] = Field(
        "auto", description="verifier actors on Ray CPU workers (0 to 1024), scoring slice k while slice k+1 is "
        "generated; 0: verify in the driver after each slice (no overlap); auto: as many as the free CPUs hold, at most 4")
    num_cpus: float = Field(0.5, ge=0, le=1024, description="CPUs each verifier actor reserves (0 to 1024); shrunk "
                            "to what the engine left free, so a 1-CPU machine with one replica never waits for resources")
    laser_num_gpus: float = Field(0.0, ge=0, le=1, description="GPU share (0 to 1) each verifier takes for LASER "
                                  "when laser_dir is set and that much GPU is free; 0: LASER on the CPU")
    contamination: ContaminationConfig | None = Field(
        None, description="evaluation sets for the contamination filter; unset: contamination not run"
    )


DIMENSIONS = ("language", "content", "culture")  # what the LLM judge grades (synth/verify/judge.py)
Dimension = Literal["language", "content", "culture"]


class JudgeConfig(_Strict):
    """The job's `judge:` section. Off by default: every judged row costs a generation."""

    enabled: bool = Field(False, description="grade rows with an LLM judge (true or false)")
    prompt: str = Field("judge_row", max_length=200, description="a template in prompts/ with method: judge")
    thresholds: dict[Dimension, Annotated[float, Field(ge=1, le=5)]] = Field(
        default_factory=dict, description="override the preset's judge thresholds (1 to 5) for every language: "
        "{content: 4}")
    engine: EngineConfig | None = Field(
        None, description="a separate judge engine (vLLM or OpenAI-compatible); unset: the job's own engine")
    temperature: float = Field(0.3, ge=0, le=10, description="sampling temperature (0 to 10) of a separate judge "
                               "engine (the job's own engine keeps the job's sampling); above 0 so the one retry can differ")
    max_tokens: int = Field(256, ge=16, le=100_000, description="longest verdict, in tokens (16 to 100,000; on the "
                            "job's own engine at most its sampling.max_tokens)")
    rows: Literal["survivors", "all"] = Field(
        "survivors", description="which rows the judge grades: `survivors` (those no filter rejected: a judge call "
        "spent on a row already lost buys nothing), or `all` generated rows, to audit the filters against the "
        "judge at the cost of a judge call per row")
    pivot: Literal["off", "back_translation", "translate"] = Field(
        "back_translation", description="for targets whose reasoning_language is a pivot, also show the judge "
        "a pivot-language rendering: the back-translation of translated rows; `translate` also asks for one "
        "translation of each ICL row into the pivot (a request per row)")


class BudgetConfig(_Strict):
    """`plan.budget`: a ceiling on what the job spends. Checked between slices: when a limit is reached the
    slice being verified is committed and the run stops `interrupted`; raising the limit (it is not part
    of the job's identity) and running the same command resumes it."""

    tokens: int | None = Field(None, ge=1, le=10**15, description="prompt + output tokens of every request "
                               "(forward, back-translation, judge; 1 to 10^15)")
    engine_hours: float | None = Field(None, gt=0, le=1e7, allow_inf_nan=False, description="engine time of the "
                                       "generated slices (their wall time x replicas), in hours (above 0, at most 10^7)")
    money: float | None = Field(None, gt=0, le=1e12, allow_inf_nan=False, description="tokens priced at "
                                "engine.price (and judge.engine.price), in its currency (above 0, at most 10^12); "
                                "needs engine.price")

    @model_validator(mode="after")
    def _some_limit(self) -> "BudgetConfig":
        if self.tokens is None and self.engine_hours is None and self.money is None:
            raise ValueError("give at least one of tokens, engine_hours, money (or remove plan.budget)")
        return self


class PlanConfig(_Strict):
    initial_acceptance: float = Field(0.5, gt=0, le=1, description="acceptance guessed before any is observed "
                                      "(above 0, at most 1)")
    oversample: float = Field(1.3, ge=1.0, le=10.0, description="most attempts per expected need (1 to 10): need / "
                              "rate x this while the rate is a guess and in the last round; with a measured rate, "
                              "rounds take just enough to meet the need with ~95% probability, at most this")
    max_attempts_per_row: float = Field(8.0, ge=1.0, le=1000.0, description="budget: attempts <= rows x this, per "
                                        f"language (1 to 1000; every target's rows x this at most {MAX_ATTEMPTS:,})")
    max_rounds: int = Field(5, ge=1, le=100, description="most rounds of generation (1 to 100)")
    budget: BudgetConfig | None = Field(None, description="stop the job resumable once it has spent this many "
                                        "tokens, engine-hours or money (checked between slices); unset: no ceiling")


class OutputConfig(_Strict):
    shard_rows: int = Field(1000, ge=1, le=10_000_000, description="rows per Parquet shard (1 to 10,000,000)")
    license: str = Field("other", max_length=200, description="license named in the dataset card")


# what only sizes or bounds spending (estimates, budgets) is not the data's identity either: a run stopped by
# its budget resumes with a raised one
SPENDING_ONLY = {"throughput_tokens_per_s", "price"}
EXECUTION_ONLY = {"verify": {"workers", "num_cpus", "laser_num_gpus"}, "icl": {"structured"}, "plan": {"budget"}}

# Engine settings that change only how (or from where) requests are sent, never which attempts a job
# makes or how a row is verified: a resume may change them (a longer timeout, fewer concurrent requests,
# a server restarted on another port, `structured: false` for a server without structured output)
# and keeps its committed rows. Sampling, the model, its context length, dtype and kwargs stay in the
# hash: they change what an attempt produces.
REQUEST_ONLY = {
    "openai": {"base_url", "api_key_env", "max_concurrency", "max_retries", "timeout_s", "backoff_s",
               "continue_final_message"} | SPENDING_ONLY,
    "vllm": {"replicas", "batch_size", "max_inflight", "max_restarts", "num_cpus"} | SPENDING_ONLY,
}


class JobConfig(_Strict):
    name: str = Field("synth-job", description="a plain name (letters, digits, - _ .): the default output is out/<name>")
    targets: list[TargetConfig] = Field(min_length=1, max_length=1000, description="one per language (1 to 1000)")
    sources: SourcesConfig | None = Field(None, description="high-resource conversations to translate (method translate)")
    engine: EngineConfig = Field(description="the teacher: vLLM replicas or an OpenAI-compatible server")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="sampling of every request")
    icl: IclConfig = Field(default_factory=IclConfig, description="method icl")
    translate: TranslateConfig = Field(default_factory=TranslateConfig, description="method translate")
    verify: VerifyConfig = Field(default_factory=VerifyConfig, description="filters and where they run")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="the optional LLM judge")
    plan: PlanConfig = Field(default_factory=PlanConfig, description="rounds and the attempt budget")
    output: OutputConfig = Field(default_factory=OutputConfig, description="shards and the dataset card")
    languages_dir: FilePath | None = Field(None, description="extra language files (default: bundled languages/)")
    prompts_dir: FilePath | None = Field(None, description="extra prompt templates (default: bundled prompts/)")

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
        budget = sum(math.ceil(t.rows * self.plan.max_attempts_per_row) for t in self.targets)
        if budget > MAX_ATTEMPTS:
            raise ValueError(f"targets: rows x plan.max_attempts_per_row add up to {budget:,} attempts, above the "
                             f"limit of {MAX_ATTEMPTS:,} per job (a round's planned attempts are held in memory); "
                             f"lower rows or plan.max_attempts_per_row, or split the job")
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


MAX_ERROR_LINES = 20


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
    if len(lines) > MAX_ERROR_LINES:  # a hostile file can hold thousands of mistakes: the first ones say enough
        lines[MAX_ERROR_LINES:] = [f"... and {len(lines) - MAX_ERROR_LINES} more"]
    return f"{path}: invalid job config:\n  " + "\n  ".join(lines)


def parse_job(path: Path) -> JobConfig:
    """Parse and validate the schema of a job file; relative paths are relative to the job file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: job file not found")
    raw = load_yaml(path, "job file")
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
