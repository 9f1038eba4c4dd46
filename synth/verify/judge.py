"""The LLM judge, engine-free: candidates -> judge requests, completions (joined by id) -> verdicts.

A model grades each row that passed the cheap filters on three dimensions, 1-5 with a one-line
reason: `language` (fluent, natural, grammatical text of the target language), `content` (a sensible
instruction and a correct answer; for a translation, faithful to its source) and `culture` (fits the
speakers). A score under the preset's threshold rejects the row as `judge_<dimension>` with the
judge's reason as detail. A verdict that is not the JSON asked for is never a pass: the driver
(synth.judging) asks once more, then the row is rejected as `judge_unparseable`.

This module never calls an engine: the requests go out through the job's pool (or a separate judge
engine) like generation requests, and come back joined by request id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from synth.config import DIMENSIONS, Dimension, JudgeConfig
from synth.engines.base import Completion, GenerationRequest
from synth.errors import ConfigError
from synth.loading import json_value
from synth.languages import LanguageSpec
from synth.prompts import PromptTemplate
from synth.text import well_formed
from synth.verify.base import Candidate

SCORE_NAMES = tuple(f"judge_{d}" for d in DIMENSIONS)  # columns of `scores` / `score_<name>` in synth verify
UNPARSEABLE = "judge_unparseable"
REASONS = (*SCORE_NAMES, UNPARSEABLE)  # reject reasons this stage can give
REASON_CHARS = 300  # a reason kept in reject_details is one line, not an essay


class JudgeThresholds(BaseModel):
    """The lowest score (1-5) of each dimension that keeps a row."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    language: float = Field(3, ge=1, le=5, description="lowest language score kept (1 to 5)")
    content: float = Field(3, ge=1, le=5, description="lowest content score kept (1 to 5)")
    culture: float = Field(3, ge=1, le=5, description="lowest culture score kept (1 to 5)")


class JudgePreset(BaseModel):
    """The `judge:` section of a filter preset: thresholds, and per-language overrides."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    thresholds: JudgeThresholds = Field(default_factory=JudgeThresholds, description="lowest score kept per "
                                        "dimension (1 to 5)")
    languages: dict[str, dict[Dimension, Annotated[float, Field(ge=1, le=5)]]] = Field(
        default_factory=dict, description="per-language overrides (1 to 5): {swh_Latn: {culture: 2}}")


def verdict_schema() -> dict:
    """JSON schema of a verdict: per dimension the reason first (the model explains, then scores)."""
    dimension = {"type": "object",
                 "properties": {"reason": {"type": "string"}, "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}},
                 "required": ["reason", "score"], "additionalProperties": False}
    return {"type": "object", "properties": {d: dimension for d in DIMENSIONS},
            "required": list(DIMENSIONS), "additionalProperties": False}


@dataclass
class Grades:
    """A parsed verdict: a 1-5 score and a one-line reason per dimension."""

    scores: dict[str, int]
    reasons: dict[str, str]


def _score(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 1 <= value <= 5 else None


def _grades(data) -> Grades | str:
    """The grades in one decoded JSON value, or why it is not a verdict of `verdict_schema`."""
    if not isinstance(data, dict):
        return "the JSON is not an object"
    scores, reasons = {}, {}
    for dim in DIMENSIONS:
        part = data.get(dim)
        if not isinstance(part, dict):
            return f"no {dim!r} object"
        score = _score(part.get("score"))
        if score is None:
            return f"{dim}.score is {part.get('score')!r}, not an integer 1-5"
        reason = part.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            return f"{dim}.reason is missing or empty"
        scores[dim] = score
        reason = " ".join(well_formed(reason).split())  # one line
        reasons[dim] = reason if len(reason) <= REASON_CHARS else reason[:REASON_CHARS - 1] + "…"
    return Grades(scores, reasons)


_FENCE = re.compile(r"\A\s*```[A-Za-z]*\s*\n(?P<body>.*?)\n\s*```\s*\Z", re.DOTALL)
_OBJECT_START = re.compile(r"\{\s*\"")  # where a JSON object with a key may start


MAX_OBJECT_STARTS = 512  # places in one answer a JSON object is tried from: bounded work for any answer


def _objects(text: str) -> list:
    """The outermost JSON objects written in `text` (at most MAX_OBJECT_STARTS places tried)."""
    decoder, found, position = json.JSONDecoder(), [], 0
    for tried, match in enumerate(_OBJECT_START.finditer(text)):
        if tried >= MAX_OBJECT_STARTS:
            break
        if match.start() < position:
            continue  # inside an object already read
        try:
            value, position = decoder.raw_decode(text, match.start())
        except (ValueError, RecursionError):  # RecursionError: hostile nesting, never a traceback
            continue
        found.append(value)
    return found


def _first_object_error(text: str) -> str | None:
    """Why the answer's first `{` does not start valid JSON (e.g. a verdict cut off), else None."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        json.JSONDecoder().raw_decode(text, start)
    except ValueError as exc:
        return f"not valid JSON ({exc.msg} at character {exc.pos})"
    except RecursionError:  # a hostile server's 100,000-deep answer: unparseable, not a traceback
        return "the JSON is nested too deeply"
    return None


def _copied(grades: Grades, data: str) -> bool:
    """Every reason of the verdict is written in the graded texts (plain or JSON-escaped): the answer
    repeats a verdict found in the data (an injected "5/5/5") instead of judging it."""
    for reason in grades.reasons.values():
        reason = reason.removesuffix("…")
        forms = {reason, json.dumps(reason)[1:-1], json.dumps(reason, ensure_ascii=False)[1:-1]}
        if not any(form in data for form in forms):
            return False
    return True


_JSON_ESCAPE = re.compile(r'\\(?:u([0-9a-fA-F]{4})|(["\\/bfnrt]))')
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescaped(text: str) -> str:
    """`text` with JSON string escapes decoded: a verdict injected as `perf\\u0065ct` is still a copy."""
    return _JSON_ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else _SIMPLE_ESCAPES[m[2]], text)


def quoted_data(texts: Sequence[str | None]) -> str:
    """The graded texts as `parse_verdict` compares verdicts with them: whitespace folded, and also
    with JSON escapes decoded."""
    out = []
    for text in texts:
        if isinstance(text, str):
            out.append(" ".join(text.split()))
            if "\\" in text:
                out.append(" ".join(_unescaped(text).split()))
    return "\n".join(out)


def parse_verdict(text: str, quoted: str = "") -> Grades | str:
    """The grades of a judge's answer, or why it is unparseable.

    Structured output is the whole answer (a code fence around it is tolerated). Without it (a server
    with no structured outputs), the verdict is the one JSON object of the answer that matches
    `verdict_schema`: several different ones, or only ones copied from the graded texts (`quoted`, from
    `quoted_data`: a row may carry an injected "5/5/5"; a verdict whose every reason is written there
    is a copy), are unparseable, never a guess. Every dimension needs an
    integer score 1-5 and a non-empty reason: a partial verdict is unparseable, never a partial pass.
    """
    fenced = _FENCE.match(text)
    whole = (fenced["body"] if fenced else text).strip()
    try:
        value = json_value(whole)
    except (ValueError, RecursionError):
        value = None
    candidates = [value] if isinstance(value, dict) else _objects(text)
    error = None if isinstance(value, dict) else _first_object_error(text)
    if not candidates:
        return error or "no JSON object in the answer"
    grades = [_grades(value) for value in candidates]
    verdicts = [g for g in grades if isinstance(g, Grades)]
    if not verdicts:
        return error or grades[0]
    own = []
    for g in verdicts:
        if not (quoted and _copied(g, quoted)) and g not in own:
            own.append(g)
    if not own:
        return "the only verdict in the answer is copied from the graded text (quoted data, not a judgement)"
    if len(own) > 1:
        return f"{len(own)} different verdicts in the answer; which one is meant is unclear"
    return own[0]


@dataclass
class JudgeVerdict:
    """What the judge decided about one row: scores (None when unparseable), rejects and details."""

    id: str
    scores: dict[str, float | None]  # judge_language, judge_content, judge_culture
    reasons: dict[str, str] = field(default_factory=dict)  # dimension -> the judge's one-line reason
    rejects: list[str] = field(default_factory=list)  # reject reasons: judge_<dimension> or judge_unparseable
    details: list[str] = field(default_factory=list)  # one per reject

    @property
    def accepted(self) -> bool:
        return not self.rejects

    def apply_to(self, verdict) -> None:
        """Merge into a synth.verify Verdict of the same row (scores, reasons, details, accepted)."""
        verdict.scores.update(self.scores)
        verdict.reasons.extend(self.rejects)
        verdict.details.extend(self.details)
        verdict.accepted = not verdict.reasons


def request_id(candidate_id: str, attempt: int) -> str:
    """Deterministic judge request ids: a retry differs (another seed), a rerun does not."""
    return f"{candidate_id}.judge" if attempt == 0 else f"{candidate_id}.judge.{attempt}"


def pivot_request_id(candidate_id: str) -> str:
    return f"{candidate_id}.judge.pivot"


class Judge:
    """Renders judge requests for candidates and turns the completions into verdicts."""

    def __init__(self, template: PromptTemplate, languages: Mapping[str, LanguageSpec], config: JudgeConfig,
                 preset: JudgePreset | None = None, back_template: PromptTemplate | None = None):
        if template.method != "judge":
            raise ConfigError(f"judge.prompt: template {template.name!r} is a {template.method} prompt; "
                              f"name a template with `method: judge` (e.g. judge_row)")
        if config.pivot == "translate" and back_template is None:
            raise ConfigError("judge.pivot: `translate` needs a back-translation template to render the pivot "
                              "requests; pass back_template or use pivot: back_translation")
        self.template = template
        self.back_template = back_template
        self.languages = languages
        self.config = config
        self.preset = preset or JudgePreset()
        self.schema = verdict_schema()

    # ---- thresholds --------------------------------------------------------------------------
    def threshold(self, dimension: str, lang: str) -> float:
        """Job override, else the preset's per-language value, else the preset's default."""
        if dimension in self.config.thresholds:
            return self.config.thresholds[dimension]
        per_lang = self.preset.languages.get(lang, {})
        return per_lang.get(dimension, getattr(self.preset.thresholds, dimension))

    def thresholds(self) -> dict[str, dict]:
        """For the manifest, in the shape of Verifier.thresholds()."""
        langs = set(self.preset.languages)
        return {f"judge_{d}": {"higher_is_better": True, "threshold": self.threshold(d, ""),
                               "per_language": {l: self.threshold(d, l) for l in sorted(langs)},
                               "description": f"LLM judge, {d} (1-5)"} for d in DIMENSIONS}

    # ---- requests ----------------------------------------------------------------------------
    def _spec(self, code: str | None) -> LanguageSpec | None:
        if code is None:
            return None
        if code not in self.languages:
            raise ConfigError(f"judge: language {code!r} is not in the registry; add languages/{code}.yaml")
        return self.languages[code]

    def pivot_of(self, candidate: Candidate) -> LanguageSpec | None:
        """The pivot the judge also reads the row in, or None: the target reasons natively, or pivot is off."""
        spec = self._spec(candidate.lang)
        if self.config.pivot == "off" or spec.reasons_natively:
            return None
        return self._spec(spec.reasoning_language)

    def pivot_requests(self, batch: Sequence[Candidate]) -> list[GenerationRequest]:
        """With pivot `translate`: one translation into the pivot per row without a source (ICL rows)."""
        if self.config.pivot != "translate":
            return []
        out = []
        for c in batch:
            pivot = self.pivot_of(c)
            if pivot is None or c.source is not None:
                continue
            messages = self.back_template.render(source_language=pivot.model_dump(),
                                                 language=self._spec(c.lang).model_dump(), text=c.text, protected=False)
            out.append(GenerationRequest(id=pivot_request_id(c.id), messages=messages, max_tokens=None))
        return out

    def _pivot_text(self, candidate: Candidate, pivots: Mapping[str, str]) -> tuple[LanguageSpec | None, str | None]:
        pivot = self.pivot_of(candidate)
        if pivot is None:
            return None, None
        if candidate.source is not None:  # a translation: its back-translation is in the source language
            if candidate.back_translation:
                return self._spec(candidate.source_lang) or pivot, candidate.back_translation
            return None, None
        text = pivots.get(candidate.id)
        return (pivot, text) if text else (None, None)

    def requests(self, batch: Sequence[Candidate], attempt: int = 0,
                 turns: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
                 pivots: Mapping[str, str] | None = None) -> list[GenerationRequest]:
        """One judge request per candidate. `turns`: the row's messages by candidate id, where known (the
        judge then sees instruction and answer apart); `pivots`: pivot translations by candidate id."""
        out = []
        for c in batch:
            pivot_language, pivot_text = self._pivot_text(c, pivots or {})
            source_language = self._spec(c.source_lang) if c.source is not None else None
            row_turns = (turns or {}).get(c.id)
            messages = self.template.render(
                language=self._spec(c.lang).model_dump(),
                source_language=source_language.model_dump() if source_language else None,
                source=c.source, text=c.text,
                turns=[{"role": t["role"], "content": t["content"]} for t in row_turns] if row_turns else None,
                pivot_language=pivot_language.model_dump() if pivot_language else None, pivot_text=pivot_text,
            )
            out.append(GenerationRequest(id=request_id(c.id, attempt), messages=messages,
                                         max_tokens=self.config.max_tokens, json_schema=self.schema))
        return out

    # ---- verdicts ----------------------------------------------------------------------------
    def quoted(self, candidate: Candidate, turns: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
               pivots: Mapping[str, str] | None = None) -> str:
        """Every text of the row the judge is shown, as `parse_verdict` compares verdicts with it."""
        texts = [candidate.text, candidate.source, candidate.back_translation, (pivots or {}).get(candidate.id)]
        texts += [t.get("content") for t in (turns or {}).get(candidate.id) or ()]
        return quoted_data(texts)

    @staticmethod
    def read(completion: Completion | None, quoted: str = "") -> Grades | str:
        """The grades of one completion, or why there are none (engine error, cut off, not JSON, only
        a verdict quoted from the row: `quoted`, from `Judge.quoted`)."""
        if completion is None:
            return "no completion for the judge request"
        if completion.error:
            return f"judge request failed: {completion.error}"
        parsed = parse_verdict(completion.text, quoted)
        if isinstance(parsed, str) and completion.finish_reason == "length":
            return f"cut at max_tokens: {parsed}"
        return parsed

    def verdict(self, candidate: Candidate, grades: Grades | str) -> JudgeVerdict:
        """Threshold the grades of one row; a problem string (after the retry) rejects as judge_unparseable."""
        if isinstance(grades, str):
            return JudgeVerdict(candidate.id, {n: None for n in SCORE_NAMES}, rejects=[UNPARSEABLE],
                                details=[f"judge verdict unparseable after a retry: {grades}"])
        out = JudgeVerdict(candidate.id, {f"judge_{d}": float(grades.scores[d]) for d in DIMENSIONS},
                           reasons=dict(grades.reasons))
        for d in DIMENSIONS:
            limit = self.threshold(d, candidate.lang)
            if grades.scores[d] < limit:
                out.rejects.append(f"judge_{d}")
                out.details.append(f"judge_{d} {grades.scores[d]} < {limit:g}: {grades.reasons[d]}")
        return out


def pivot_texts(batch: Sequence[Candidate], completions: Sequence[Completion]) -> dict[str, str]:
    """Candidate id -> its pivot translation, joined by request id; failed translations are left out
    (the judge then grades without the hint)."""
    by_id = {c.id: c for c in completions}
    out = {}
    for candidate in batch:
        completion = by_id.get(pivot_request_id(candidate.id))
        if completion is not None and not completion.error and completion.text.strip():
            out[candidate.id] = completion.text.strip()
    return out
