"""EVAL.yaml: which model answers which prompts, judged how, and how the next round is sized.

Checked before any work starts (`parse_eval`): a mistake is a ConfigError naming the key and the fix,
exit 2, nothing written. The engine blocks are the job file's own (synth.engines.configs), so a model
evaluated here is configured exactly as a teacher or a judge of `synth run`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from synth.loading import load_yaml
from synth.config import _format_validation_error
from synth.datasource import Columns, DatasetEntry, as_entry
from synth.engines.base import SamplingConfig
from synth.engines.configs import EngineConfig
from synth.errors import ConfigError
from synth.secrets import REDACTED, redact_url

Level = Literal["language", "domain", "culture"]
LEVELS: tuple[str, ...] = ("language", "domain", "culture")


# engine fields that say where and how fast a model runs, not which model answers (config_hash)
EXECUTION_ONLY = {"base_url", "api_key_env", "max_concurrency", "max_retries", "timeout_s", "backoff_s", "replicas",
                  "num_cpus", "batch_size", "max_inflight", "max_restarts", "device", "env"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptColumns(Columns):
    """Columns of an evaluation prompt file, where they differ from the usual names."""

    prompt: str | None = Field(None, description="a column holding the question as plain text (becomes the one "
                               "user turn); unset: the `messages` column (the last turn a user turn)")
    lang: str | None = Field(None, description="column holding the language code per row (default `lang`)")
    level: str | None = Field(None, description="column holding the level per row (default `level`)")
    reference: str | None = Field(None, description="column holding a reference answer (default `reference` "
                                  "when present)")
    choices: str | list[str] | None = Field(None, description="column holding the options of a multiple-choice "
                                            "item as a list, or a list of columns one option each (e.g. "
                                            "[option_a, option_b, option_c, option_d]); default `choices` when present")
    answer: str | None = Field(None, description="column holding the correct answer: an option's letter (A, B, "
                               "...), index or text for choices items, a number for numeric items (default "
                               "`answer` when present)")


class PromptsEntry(DatasetEntry):
    """One `prompts:` entry: a JSONL/Parquet file, a `datasets` folder or hf://datasets/OWNER/NAME,
    mapped to rows `id, lang, category, level, messages` (+ `reference`, `choices`, `answer`)."""

    columns: PromptColumns = Field(default_factory=PromptColumns, description="column names where they differ "
                                   "from id, lang, category, level, messages, reference, choices, answer")
    lang: str | None = Field(None, description="language of every row, when the file has no `lang` column")
    level: Level | None = Field(None, description="level of every row, when the file has no `level` column")


class GoalConfig(_Strict):
    """What a cell is measured against when its gap is computed."""

    score: float | None = Field(None, ge=0, le=1, description="the score every cell should reach; unset: 0.5 "
                                "with a baseline (parity: the win rate of equals) and 0.8 without")


class AllocationConfig(_Strict):
    """How the gaps become the next round's rows: w = floor + (1 - floor) * g^a / sum(g^a)."""

    floor: float = Field(0.05, ge=0, le=0.5, description="weight every cell keeps whatever its gap, so none is "
                         "starved (0.05-0.1 in practice)")
    power: float = Field(2.0, gt=0, le=8, description="the exponent a: above 1 favours the largest gaps")
    min_items: StrictInt = Field(10, ge=1, le=100_000, description="a cell with fewer scored items is marked "
                                 "`few_items` and gets only the floor")
    max_growth: float = Field(3.0, ge=1, le=100, description="at most this many times the previous round's rows "
                              "per cell, when `previous` names the previous round")
    previous: Path | None = Field(None, description="the previous round's targets: a job file or a "
                                  "next_targets.yaml (its `targets:`); unset: no cap")


class EvalJudgeConfig(_Strict):
    """`judge:` of EVAL.yaml: the engine that grades answers (and compares them with the baseline's)."""

    engine: EngineConfig = Field(description="the judge model: vLLM replicas or an OpenAI-compatible endpoint "
                                 "(same schema as a job's `engine:`)")
    prompt: str = Field("judge_eval", description="a template in prompts/ (method: judge) grading one answer, "
                        "with the reference when there is one")
    pairwise_prompt: str = Field("judge_pairwise", description="a template in prompts/ (method: judge_pairwise) "
                                 "comparing two answers, used with `baseline:`")
    temperature: float = Field(0.3, ge=0, le=2, description="sampling temperature of the judge; above 0 so the "
                               "one retry of an unparseable verdict (another seed) can differ")
    max_tokens: StrictInt = Field(384, ge=16, le=8192, description="longest verdict, in tokens")


class EvalConfig(_Strict):
    """EVAL.yaml: `synth eval EVAL.yaml --output DIR`."""

    name: str = Field("synth-eval", description="a plain name (letters, digits, - _ .): the default output is "
                      "out/<name>")
    model: EngineConfig = Field(description="the model evaluated (e.g. a student fine-tuned on synth's data): "
                                "vLLM replicas on Ray or an OpenAI-compatible endpoint, as a job's `engine:`")
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(temperature=0.0, top_p=1.0,
                                     max_tokens=512), description="sampling of the model's (and the baseline's) "
                                     "answers; greedy by default so a rerun answers the same")
    prompts: list[PromptsEntry] = Field(min_length=1, max_length=1000, description="evaluation prompt files: "
                                        "JSONL/Parquet with rows id, lang, category, level, messages (+ "
                                        "reference, choices, answer), datasets folders or hf://datasets/OWNER/NAME "
                                        "with a column mapping")
    judge: EvalJudgeConfig | None = Field(None, description="the LLM judge; needed by domain and culture items "
                                          "without choices, a numeric answer or a translation reference, and "
                                          "by `baseline`")
    baseline: EngineConfig | None = Field(None, description="a second model answering the same prompts: cell "
                                          "scores become the judge's pairwise win rate against it (ties halved)")
    next_rows: StrictInt = Field(1000, ge=1, le=100_000_000, description="total rows of the next round's targets")
    goal: GoalConfig = Field(default_factory=GoalConfig, description="the score a cell is measured against")
    allocation: AllocationConfig = Field(default_factory=AllocationConfig, description="how gaps become rows")
    bootstrap: StrictInt = Field(1000, ge=100, le=100_000, description="bootstrap resamples per cell for the "
                                 "confidence intervals")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="coverage of the confidence intervals")
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1, description="seed of the bootstrap (intervals are "
                            "deterministic) and of the answers' requests")
    preset: str = Field("default", description="filter preset whose language checks (lid, mixed_language, "
                        "script, fluency) and thresholds score every answer offline")
    languages_dir: Path | None = Field(None, description="extra language files (default: bundled languages/)")
    prompts_dir: Path | None = Field(None, description="extra prompt templates (default: bundled prompts/)")

    _entries = field_validator("prompts", mode="before")(
        classmethod(lambda cls, v: [as_entry(e) for e in v] if isinstance(v, list) else v))

    @field_validator("judge", mode="before")
    @classmethod
    def _engine_block(cls, value):
        """`judge:` may be an engine block itself (the issue's interface), or {engine: ..., prompt: ...}."""
        if isinstance(value, dict) and "engine" not in value and ("model" in value or "type" in value):
            return {"engine": value}
        return value

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", value) or set(value) == {"."}:
            raise ValueError("use a plain name of letters, digits, '-', '_' and '.' (no path), e.g. swahili-eval")
        return value

    @model_validator(mode="after")
    def _baseline_needs_judge(self) -> "EvalConfig":
        if self.baseline is not None and self.judge is None:
            raise ValueError("baseline: comparing two models needs a `judge:` (its engine compares the answers)")
        return self

    @property
    def goal_score(self) -> float:
        return self.goal.score if self.goal.score is not None else (0.5 if self.baseline is not None else 0.8)

    def engines(self) -> dict[str, object]:
        out = {"model": self.model}
        if self.baseline is not None:
            out["baseline"] = self.baseline
        if self.judge is not None:
            out["judge"] = self.judge.engine
        return out

    def public_dump(self) -> dict:
        """The config as written to DIR/_work/eval.json: URL credentials and `env` values redacted."""
        data = self.model_dump(mode="json")
        for engine in (data["model"], data.get("baseline"), (data.get("judge") or {}).get("engine")):
            if not engine:
                continue
            if engine.get("base_url"):
                engine["base_url"] = redact_url(engine["base_url"])
            if engine.get("env"):
                engine["env"] = {name: REDACTED for name in engine["env"]}
        return data

    def config_hash(self, inputs: dict[str, str]) -> str:
        """Identity of the evaluation's answers and scores: the config and the prompt files' digests.
        Where an engine runs (EXECUTION_ONLY: endpoint URL, key variable, concurrency, retries, replicas)
        is left out, so an evaluation stopped by an outage resumes on another endpoint of the same model."""
        data = self.model_dump(mode="json")
        for engine in (data["model"], data.get("baseline"), (data.get("judge") or {}).get("engine")):
            for key in EXECUTION_ONLY & set(engine or {}):
                del engine[key]
        payload = json.dumps({"config": data, "inputs": inputs}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def parse_eval(path: Path) -> EvalConfig:
    """Parse and validate an EVAL.yaml; relative paths are relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: evaluation file not found")
    raw = load_yaml(path, "evaluation file")  # within limits: size, nesting, aliases; duplicate keys refused
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an evaluation file is a YAML mapping with at least `model` and `prompts`")
    try:
        config = EvalConfig.model_validate(raw)
    except ValidationError as exc:
        message = _format_validation_error(path, exc).replace("invalid job config", "invalid evaluation config")
        for key in ("model", "baseline"):  # the engine union's tag is not a key the user wrote
            message = re.sub(rf"\b{key}\.(vllm|openai)\.", f"{key}.", message)
        message = re.sub(r"\bjudge\.engine\.(vllm|openai)\.", "judge.engine.", message)
        raise ConfigError(message) from exc
    base = path.resolve().parent
    for entry in config.prompts:
        entry.absolute(base)
    for attr in ("languages_dir", "prompts_dir"):
        value = getattr(config, attr)
        if value is not None and not value.is_absolute():
            setattr(config, attr, base / value)
    previous = config.allocation.previous
    if previous is not None and not previous.is_absolute():
        config.allocation.previous = base / previous
    if (config.preset.endswith((".yaml", ".yml")) or "/" in config.preset) and not Path(config.preset).is_absolute():
        config.preset = str(base / config.preset)
    return config
