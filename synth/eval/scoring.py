"""How one answer is scored, per level (docs/eval.md):

- language: the verifier's own offline language checks of the answer (the preset's empty, lid,
  mixed_language, script and fluency filters with its per-language thresholds) pass or fail it; with a
  judge, a pass is further graded by the judge's `language` score. A wrong-language answer scores 0
  with or without a judge.
- domain: exact match for choices and numeric items, chrF++ against the reference for translation
  items, else the judge's `content` grade (against the reference when there is one).
- culture: exact match for choices items, else the judge's `culture` grade.

A 1-5 grade g becomes (g - 1) / 4. With a baseline every item is a comparison instead: metrics are
compared directly, judged items by the judge in both orders; the row score is the model's win rate
(1 win, 0.5 tie, 0 loss, averaged over the two orders).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from sacrebleu.metrics import CHRF

from synth.config import DIMENSIONS, JudgeConfig
from synth.engines.base import Completion, GenerationRequest
from synth.eval.items import LETTERS, Item
from synth.prompts import PromptTemplate
from synth.text import well_formed
from synth.verify.base import Candidate
from synth.verify.judge import REASON_CHARS, Judge, request_id

LANGUAGE_CHECKS = ("empty", "lid", "mixed_language", "script", "fluency")  # filters that say "is this the language"
_CHRF = CHRF(word_order=2)  # chrF++


def language_verifier(preset, languages: Mapping, lid_skip: set[str] = frozenset()):
    """The preset's language checks only (its thresholds and per-language overrides kept): the same
    filters `synth run` rejects rows with, applied to the model's answers."""
    from synth.verify.pipeline import Verifier

    checks = [name for name in preset.filters if name in LANGUAGE_CHECKS]
    return Verifier(preset.model_copy(update={"filters": checks}), dict(languages), set(lid_skip))


@dataclass
class Offline:
    """The offline checks of one answer: each filter's score, and whether every check passed."""

    scores: dict[str, float | None]
    passed: bool
    failed: list[str]


def offline_checks(verifier, items: Sequence[Item], answers: Sequence[str]) -> list[Offline]:
    batch = [Candidate(id=item.id, lang=item.lang, text=answer or "") for item, answer in zip(items, answers)]
    verdicts = verifier.verify(batch) if batch else []
    return [Offline(dict(v.scores), not v.reasons, list(v.reasons)) for v in verdicts]


# ---- metrics ----------------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(?:[,\u00a0 ]\d{3})*(?:[.,]\d+)?")


def chosen_option(item: Item, answer: str) -> int | None:
    """The option an answer picks: a letter on its own or before ). . : (first one), else the one option
    whose text it contains."""
    n = len(item.choices or [])
    letters = LETTERS[:n]
    for pattern in (rf"^\s*\(?([{letters}])\)?\s*(?:[.):\]]|$)", rf"\b(?:answer|option|jibu|réponse)\W{{0,3}}\(?([{letters}])\b",
                    rf"(?:^|\s)\(?([{letters}])[.)\]](?:\s|$)"):
        match = re.search(pattern, answer, re.IGNORECASE if "answer" in pattern else 0)
        if match:
            return letters.index(match.group(1).upper())
    folded = answer.casefold()
    hits = [i for i, c in enumerate(item.choices or []) if c.strip().casefold() in folded]
    return hits[0] if len(hits) == 1 else None


def last_number(answer: str) -> float | None:
    matches = _NUMBER.findall(answer)
    if not matches:
        return None
    text = matches[-1].replace("\u00a0", "").replace(" ", "")
    if re.fullmatch(r"-?\d+(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    else:
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def exact(item: Item, answer: str) -> float:
    """1 when a choices item picks the right option or a numeric item ends with the right number."""
    if item.choices is not None:
        return float(chosen_option(item, answer) == item.answer_index)
    number = last_number(answer)
    return float(number is not None and abs(number - item.numeric) <= 1e-6 * max(1.0, abs(item.numeric)))


def chrf(item: Item, answer: str) -> float:
    """chrF++ (0-100) of the answer against the reference translation."""
    return float(_CHRF.sentence_score(answer, [item.reference]).score)


def grade(value: float | None) -> float | None:
    """A 1-5 judge grade on [0, 1]."""
    return None if value is None else (value - 1.0) / 4.0


# ---- the judge ------------------------------------------------------------------------------------

class EvalJudge(Judge):
    """synth.verify.judge's Judge (its verdict schema, parsing, retries via synth.judging.judge_batch)
    with a template that sees the question, the answer and the reference."""

    def __init__(self, template: PromptTemplate, languages, max_tokens: int):
        super().__init__(template, languages, JudgeConfig(prompt=template.name, max_tokens=max_tokens, pivot="off"))
        self.references: dict[str, str | None] = {}

    def requests(self, batch: Sequence[Candidate], attempt: int = 0, turns=None, pivots=None) -> list[GenerationRequest]:
        out = []
        for c in batch:
            messages = self.template.render(language=self._spec(c.lang).model_dump(),
                                            turns=[dict(t) for t in (turns or {}).get(c.id, [])],
                                            text=c.text, reference=self.references.get(c.id))
            out.append(GenerationRequest(id=request_id(c.id, attempt), messages=messages,
                                         max_tokens=self.config.max_tokens, json_schema=self.schema))
        return out


def pairwise_schema() -> dict:
    return {"type": "object", "properties": {"reason": {"type": "string"},
                                             "winner": {"type": "string", "enum": ["A", "B", "tie"]}},
            "required": ["reason", "winner"], "additionalProperties": False}


def parse_pairwise(text: str) -> tuple[str, str] | str:
    """(winner A|B|tie, reason) of a pairwise verdict, or why it is unparseable."""
    start = text.find("{")
    if start < 0:
        return "no JSON object in the answer"
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError as exc:
        return f"not valid JSON ({exc.msg})"
    if not isinstance(data, dict):
        return "the JSON is not an object"
    winner = data.get("winner")
    winner = winner.strip() if isinstance(winner, str) else winner
    if isinstance(winner, str) and winner.lower() == "tie":
        winner = "tie"
    elif isinstance(winner, str) and winner.upper() in ("A", "B"):
        winner = winner.upper()
    else:
        return f"winner is {data.get('winner')!r}, not A, B or tie"
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return "reason is missing or empty"
    reason = " ".join(well_formed(reason).split())
    return winner, reason[:REASON_CHARS]


@dataclass
class PairVerdict:
    id: str
    winner: str | None  # A, B, tie; None: unparseable after the retry
    reason: str


class PairwiseJudge:
    """Pairwise requests for synth.judging.judge_batch (same retry and usage counting as the row judge).
    A candidate is one order of one item: `{item id}.ab` shows the model's answer as A, `.ba` as B."""

    def __init__(self, template: PromptTemplate, languages, max_tokens: int):
        self.template, self.languages, self.max_tokens = template, languages, max_tokens
        self.schema = pairwise_schema()
        self.context: dict[str, dict] = {}  # candidate id -> turns, level, reference, answer_a, answer_b

    def pivot_requests(self, batch) -> list:
        return []

    def requests(self, batch: Sequence[Candidate], attempt: int = 0, turns=None, pivots=None) -> list[GenerationRequest]:
        out = []
        for c in batch:
            ctx = self.context[c.id]
            messages = self.template.render(language=self.languages[c.lang].model_dump(), **ctx)
            out.append(GenerationRequest(id=request_id(c.id, attempt), messages=messages, max_tokens=self.max_tokens,
                                         json_schema=self.schema))
        return out

    def quoted(self, candidate: Candidate, turns=None, pivots=None) -> str:
        """No verdict-shaped text to guard against: a pairwise verdict names a winner, which an answer
        quoting one cannot pass for once the template quotes the answers as data."""
        return ""

    @staticmethod
    def read(completion: Completion | None, quoted: str = ""):
        if completion is None:
            return "no completion for the judge request"
        if completion.error:
            return f"judge request failed: {completion.error}"
        return parse_pairwise(completion.text)

    @staticmethod
    def verdict(candidate: Candidate, parsed) -> PairVerdict:
        if isinstance(parsed, str):
            return PairVerdict(candidate.id, None, f"unparseable after a retry: {parsed}")
        return PairVerdict(candidate.id, *parsed)


def win_of(value: float | None, other: float | None) -> float | None:
    """1 when the model's metric beats the baseline's, 0.5 on a tie, 0 when it loses."""
    if value is None or other is None:
        return None
    return 1.0 if value > other else 0.5 if value == other else 0.0


def pairwise_score(ab: str | None, ba: str | None) -> float | None:
    """The model's win rate over both orders (the model is A in `ab`, B in `ba`); ties halved."""
    wins = []
    if ab is not None:
        wins.append({"A": 1.0, "tie": 0.5, "B": 0.0}[ab])
    if ba is not None:
        wins.append({"B": 1.0, "tie": 0.5, "A": 0.0}[ba])
    return sum(wins) / len(wins) if wins else None


def absolute_score(item: Item, offline: Offline, judged: Mapping[str, float | None] | None,
                   metric: float | None) -> float | None:
    """The row score without a baseline, from the level's rule (module docstring). None: not scorable
    (the judge's verdict unparseable twice)."""
    if item.level == "language":
        if not offline.passed:
            return 0.0
        if judged is None:
            return 1.0
        return grade(judged.get("judge_language"))
    if item.kind in ("choices", "numeric"):
        return metric
    if item.kind == "translation":
        return None if metric is None else metric / 100.0
    dimension = "judge_content" if item.level == "domain" else "judge_culture"
    return grade((judged or {}).get(dimension))


JUDGE_SCORES = tuple(f"judge_{d}" for d in DIMENSIONS)
