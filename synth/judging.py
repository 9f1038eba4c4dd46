"""The judge stage driver: runs synth.verify.judge's requests through an engine, retries once, keeps count.

`judge_batch` is what the runner calls on each slice's survivors (with its own pool or a separate
judge engine); `judge_verified_file` is `synth verify --judge`: the same judge over the accepted rows
of a `synth verify` output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import polars as pl
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from synth.config import DIMENSIONS, JudgeConfig
from synth.engines.base import Completion, Engine, GenerationRequest, SamplingConfig
from synth.engines.capabilities import EngineNeeds
from synth.engines.configs import EngineConfig
from synth.errors import ConfigError
from synth.loading import load_yaml
from synth.prompts import PromptTemplate, load_prompts
from synth.verify.base import Candidate
from synth.verify.judge import (
    SCORE_NAMES,
    Judge,
    JudgeVerdict,
    pivot_request_id,
    pivot_texts,
    request_id,
    verdict_schema,
)

log = logging.getLogger(__name__)

# what an engine started for the judge alone is asked for (seeded: judge_sampling sets a seed)
JUDGE_NEEDS = EngineNeeds(schemas={"judge.enabled": verdict_schema()}, seeds=True)


@dataclass
class JudgeUsage:
    """What judging cost, for the manifest: requests sent and their tokens, per language and in total."""

    requests: int = 0  # judge requests, retries included
    retries: int = 0
    pivot_requests: int = 0  # translations into the pivot (judge.pivot: translate)
    prompt_tokens: int = 0
    output_tokens: int = 0
    by_lang: dict[str, dict[str, int]] = field(default_factory=dict)  # lang -> {prompt_tokens, output_tokens}

    def add(self, lang: str, completion: Completion | None) -> None:
        if completion is None:
            return
        self.prompt_tokens += completion.prompt_tokens
        self.output_tokens += completion.output_tokens
        per = self.by_lang.setdefault(lang, {"prompt_tokens": 0, "output_tokens": 0})
        per["prompt_tokens"] += completion.prompt_tokens
        per["output_tokens"] += completion.output_tokens

    def merge(self, other: "JudgeUsage") -> None:
        self.requests += other.requests
        self.retries += other.retries
        self.pivot_requests += other.pivot_requests
        self.prompt_tokens += other.prompt_tokens
        self.output_tokens += other.output_tokens
        for lang, counts in other.by_lang.items():
            per = self.by_lang.setdefault(lang, {"prompt_tokens": 0, "output_tokens": 0})
            for key, value in counts.items():
                per[key] += value

    def as_dict(self) -> dict:
        return {"requests": self.requests, "retries": self.retries, "pivot_requests": self.pivot_requests,
                "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens,
                "by_lang": {k: dict(v) for k, v in sorted(self.by_lang.items())}}


def _generate(engine: Engine, requests: list[GenerationRequest]) -> dict[str, Completion]:
    """Completions joined by request id (never by position)."""
    if not requests:
        return {}
    return {c.id: c for c in engine.generate(requests)}


def judge_batch(engine: Engine, judge: Judge, batch: Sequence[Candidate],
                turns: Mapping[str, Sequence[Mapping[str, str]]] | None = None
                ) -> tuple[list[JudgeVerdict], JudgeUsage]:
    """Judge every candidate of `batch` (the rows that passed the cheap filters), in batch order.

    `turns`: the rows' messages by candidate id, when known (ICL rows: instruction and answer apart).
    A verdict that does not parse is asked for once more (another request id, so another seed); a
    second failure rejects the row as judge_unparseable. EngineUnavailable from the engine propagates:
    the runner stops the job resumable, no row is rejected for it.
    """
    ids = [c.id for c in batch]
    if len(set(ids)) != len(ids):
        raise ValueError("judge_batch: candidate ids must be unique within a batch (requests are joined by id)")
    usage = JudgeUsage()
    lang_of = {c.id: c.lang for c in batch}

    pivot_requests = judge.pivot_requests(batch)
    pivots = {}
    if pivot_requests:
        done = _generate(engine, pivot_requests)
        usage.pivot_requests = len(pivot_requests)
        for c in batch:
            usage.add(c.lang, done.get(pivot_request_id(c.id)))
        pivots = pivot_texts(batch, list(done.values()))

    grades = {}
    quoted = {c.id: judge.quoted(c, turns, pivots) for c in batch}  # verdict-shaped text inside the rows
    pending = list(batch)
    for attempt in (0, 1):
        if not pending:
            break
        requests = judge.requests(pending, attempt=attempt, turns=turns, pivots=pivots)
        done = _generate(engine, requests)
        usage.requests += len(requests)
        usage.retries += len(requests) if attempt else 0
        for c in pending:
            completion = done.get(request_id(c.id, attempt))
            usage.add(lang_of[c.id], completion)
            grades[c.id] = judge.read(completion, quoted[c.id])
        pending = [c for c in pending if isinstance(grades[c.id], str)]
        if pending and attempt == 0:
            log.info("judge: %d of %d verdicts unparseable, asking once more", len(pending), len(batch))
    return [judge.verdict(c, grades[c.id]) for c in batch], usage


class JudgeStage:
    """The runner's judge stage: built when the job is prepared (config errors before any work), started
    with the run, applied to each slice's rows between the stateless filters and dedup, recorded in the
    manifest."""

    def __init__(self, config: JudgeConfig, languages, preset, prompts: Mapping[str, PromptTemplate] | None = None):
        self.config = config
        self.judge = build_judge(config, languages, preset, prompts)
        self.usage = JudgeUsage()
        self.engine: Engine | None = None
        self.model: str | None = None
        self._owns_engine = False

    def start(self, job_engine: Engine, job_model: str, seed: int = 0) -> None:
        """Judge with `judge.engine` (started here, with the judge's sampling) or the job's own engine."""
        if self.config.engine is None:
            self.engine, self.model = job_engine, job_model
            return
        from synth.engines.start import start_engine

        self.engine = start_engine(self.config.engine, judge_sampling(self.config, seed), JUDGE_NEEDS)
        self.model, self._owns_engine = self.config.engine.model, True

    def apply(self, rows: Sequence, verdicts: Sequence) -> int:
        """Judge the rows no filter rejected (`verdict.reasons` empty; every verified row with `rows: all`;
        rows without a verdict failed before verification) and merge the judge's scores and rejects into
        their verdicts. `rows`: synth.methods.base.Row (or anything with id, messages, candidate()).
        Returns the rows judged."""
        every = self.config.rows == "all"
        survivors = [(row, verdict) for row, verdict in zip(rows, verdicts)
                     if verdict is not None and (every or not verdict.reasons)]
        if not survivors:
            return 0
        if self.engine is None:
            raise RuntimeError("JudgeStage.apply before start()")
        batch = [row.candidate() for row, _ in survivors]
        turns = {row.id: row.messages for row, _ in survivors if row.messages}
        judged, usage = judge_batch(self.engine, self.judge, batch, turns)
        for (_, verdict), judge_verdict in zip(survivors, judged):
            judge_verdict.apply_to(verdict)
        self.usage.merge(usage)
        return len(survivors)

    def manifest(self) -> dict:
        """The manifest's `judge` entry: what judged, with which prompt and thresholds, at what cost."""
        from synth.engines.start import capabilities_of

        capabilities = capabilities_of(self.engine) if self._owns_engine else None
        return {"model": self.model, "separate_engine": self.config.engine is not None,
                "capabilities": capabilities.manifest() if capabilities else None,
                "prompt": self.judge.template.name, "prompt_hash": self.judge.template.hash,
                "pivot": self.config.pivot, "thresholds": self.judge.thresholds(), "usage": self.usage.as_dict()}

    def shutdown(self) -> None:
        if self._owns_engine and self.engine is not None:
            self.engine.shutdown()
        self.engine = None


# ---- synth verify --judge ---------------------------------------------------------------------

class JudgeSpec(BaseModel):
    """What `synth verify --judge FILE` reads from a job YAML or an engine-only YAML."""

    model_config = ConfigDict(extra="forbid")

    judge: JudgeConfig
    engine: EngineConfig
    languages_dir: Path | None = None
    prompts_dir: Path | None = None


def _invalid(path: Path, exc: ValidationError, prefix: str) -> ConfigError:
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in (prefix, *error["loc"]) if p not in ("", "vllm", "openai")) or "(top level)"
        msg = "unknown key; remove it or fix its spelling" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"{where}: {msg}")
    return ConfigError(f"{path}: invalid judge engine config:\n  " + "\n  ".join(lines))


def load_judge_spec(path: Path) -> JudgeSpec:
    """The judge and its engine from a job YAML (`judge.engine`, else `engine`) or an engine-only YAML
    (`{type: vllm, model: ...}` or `{engine: {...}, judge: {...}}`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--judge {path}: file not found; give a job YAML or an engine YAML (type, model, ...)")
    raw = load_yaml(path, "--judge")
    if not isinstance(raw, dict):
        raise ConfigError(f"--judge {path}: expected a mapping: a job file, or an engine config with `model`")
    base = path.resolve().parent
    if "engine" in raw or "judge" in raw:
        try:
            judge = JudgeConfig.model_validate(raw.get("judge") or {})
        except ValidationError as exc:
            raise _invalid(path, exc, "judge") from exc
        engine_raw, where = raw.get("engine"), "engine"
        if judge.engine is None and engine_raw is None:
            raise ConfigError(f"--judge {path}: no `engine` and no `judge.engine`; add the engine the judge runs on")
        dirs = {k: (base / raw[k] if not Path(raw[k]).is_absolute() else Path(raw[k]))
                for k in ("languages_dir", "prompts_dir") if raw.get(k)}
    else:
        judge, engine_raw, where, dirs = JudgeConfig(), raw, "", {}
    if judge.engine is not None:
        return JudgeSpec(judge=judge, engine=judge.engine, **dirs)
    try:
        engine = TypeAdapter(EngineConfig).validate_python(engine_raw)
    except ValidationError as exc:
        raise _invalid(path, exc, where) from exc
    return JudgeSpec(judge=judge, engine=engine, **dirs)


def judge_sampling(config: JudgeConfig, seed: int = 0) -> SamplingConfig:
    """Sampling of an engine started for the judge alone."""
    return SamplingConfig(temperature=config.temperature, top_p=1.0, max_tokens=config.max_tokens, seed=seed)


def build_judge(config: JudgeConfig, languages, preset, prompts: Mapping[str, PromptTemplate] | None = None) -> Judge:
    """The Judge of a job: its template by name among `prompts` (the runner's: bundled, the job's
    prompts_dir, and those added through the Python API; default: the bundled ones), thresholds from
    the preset's `judge:` section. Raises ConfigError before any engine starts."""
    prompts = load_prompts() if prompts is None else prompts
    if config.prompt not in prompts:
        judge_names = sorted(n for n, t in prompts.items() if t.method == "judge")
        raise ConfigError(f"judge.prompt: no prompt template {config.prompt!r}; judge templates: {judge_names}")
    return Judge(prompts[config.prompt], languages, config, preset.judge, back_template=prompts.get("back_translate_turn"))




def judge_verified_file(path: Path, spec: JudgeSpec | Path, preset_name: str = "default", batch_rows: int = 256,
                        engine: Engine | None = None, template: PromptTemplate | None = None) -> dict:
    """`synth verify --judge SPEC`: judge the accepted rows of the `synth verify` output at `path` and
    rewrite it: score_judge_<dim> and judge_<dim>_reason columns (null for rows not judged), rows the
    judge refuses become accepted=false with its reasons appended to reject_reasons.

    `spec`: a JudgeSpec, or the path of a job / engine YAML (load it first with load_judge_spec to
    refuse a bad one before anything is written). `engine`: an engine already running (tests, Python
    API); else the spec's engine is started here and shut down at the end. `template`: a judge prompt
    used instead of the spec's `judge.prompt`.
    """
    from synth.languages import load_registry
    from synth.shards import atomic_write_parquet
    from synth.verify.pairs import VERIFY_MARK, written_by_verify
    from synth.verify.pipeline import load_preset

    spec = spec if isinstance(spec, JudgeSpec) else load_judge_spec(spec)
    preset = load_preset(preset_name)
    if not written_by_verify(path):
        raise ConfigError(f"{path}: not written by synth verify; --judge rewrites only synth verify's own output")
    frame = pl.read_parquet(path)
    needed = ("id", "lang", "source_lang", "source", "text", "accepted", "reject_reasons")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: missing columns {missing}; --judge reads the output of `synth verify`")
    registry = dict(load_registry())
    if spec.languages_dir is not None:
        registry.update(load_registry(str(spec.languages_dir)))
    prompts = dict(load_prompts())
    if spec.prompts_dir is not None:
        prompts.update(load_prompts(spec.prompts_dir))
    config = spec.judge
    if template is not None:
        prompts[template.name] = template
        config = config.model_copy(update={"prompt": template.name})
    judge = build_judge(config, registry, preset, prompts)

    columns = frame.to_dict(as_series=False)
    back = columns.get("back_translation")
    rows = [i for i, ok in enumerate(columns["accepted"]) if ok]
    # ids by row number: deterministic, and unique even where the input repeats an id
    candidates = [Candidate(id=f"row{i}", lang=columns["lang"][i], text=columns["text"][i] or "",
                            source=columns["source"][i], source_lang=columns["source_lang"][i],
                            back_translation=back[i] if back else None) for i in rows]
    for c in candidates:
        judge.pivot_of(c)  # unknown languages fail before the engine starts
    usage, verdicts = JudgeUsage(), {}
    started = engine is None and bool(candidates)
    if started:
        from synth.engines.start import start_engine

        engine = start_engine(spec.engine, judge_sampling(spec.judge), JUDGE_NEEDS)
    try:
        for start in range(0, len(candidates), batch_rows):
            batch = candidates[start:start + batch_rows]
            judged, cost = judge_batch(engine, judge, batch)
            usage.merge(cost)
            verdicts.update((v.id, v) for v in judged)
    finally:
        if started:
            engine.shutdown()

    n = frame.height
    scores = {name: [None] * n for name in SCORE_NAMES}
    reasons = {d: [None] * n for d in DIMENSIONS}
    accepted, reject_reasons = list(columns["accepted"]), [list(r or []) for r in columns["reject_reasons"]]
    counts: dict[str, int] = {}
    for i in rows:
        v = verdicts[f"row{i}"]
        for name in SCORE_NAMES:
            scores[name][i] = v.scores[name]
        for d in DIMENSIONS:
            reasons[d][i] = v.reasons.get(d)
        if v.rejects:
            accepted[i] = False
            reject_reasons[i].extend(v.rejects)
            for r in v.rejects:
                counts[r] = counts.get(r, 0) + 1
    out = frame.with_columns(
        *(pl.Series(f"score_{name}", values, dtype=pl.Float64) for name, values in scores.items()),
        *(pl.Series(f"judge_{d}_reason", values, dtype=pl.String) for d, values in reasons.items()),
        pl.Series("accepted", accepted, dtype=pl.Boolean),
        pl.Series("reject_reasons", reject_reasons, dtype=pl.List(pl.String)),
    )
    atomic_write_parquet(path, out, VERIFY_MARK)
    return {"judged": len(rows), "accepted": sum(accepted), "rejected_by_judge": counts,
            "model": spec.engine.model, "thresholds": judge.thresholds(), "usage": usage.as_dict()}
