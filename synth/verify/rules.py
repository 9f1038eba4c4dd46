"""Cheap rule checks: empty output, length ratio to the source, repetition loops, truncation, copies."""

from __future__ import annotations

import math
import re
from typing import Sequence

from sacrebleu.metrics import CHRF

from synth.verify.base import Candidate, Filter

_WORD = re.compile(r"\w+", re.UNICODE)


class EmptyFilter(Filter):
    """Number of word characters; below the threshold the output is empty or nearly so."""

    name = "empty"
    default_threshold = 8
    description = "word characters in the candidate"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        return [float(sum(len(w) for w in _WORD.findall(c.text))) for c in batch]

    def explain(self, score: float, lang: str) -> str:
        return f"empty: {score:.0f} word characters < {self.threshold_for(lang):.0f}"


class LengthRatioFilter(Filter):
    """|log(len(candidate) / len(source))|: symmetric, so 3x longer and 3x shorter score the same."""

    name = "length_ratio"
    higher_is_better = False
    default_threshold = math.log(3.0)
    description = "absolute log of the character length ratio candidate/source"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = []
        for c in batch:
            if not c.source:
                out.append(None)
            else:
                out.append(abs(math.log(max(len(c.text.strip()), 1) / max(len(c.source.strip()), 1))))
        return out

    def explain(self, score: float, lang: str) -> str:
        return f"length ratio x{math.exp(score):.2f} beyond x{math.exp(self.threshold_for(lang)):.2f}"


def _repeat_share(text: str) -> float:
    words = _WORD.findall(text.lower())
    n = 3 if len(words) >= 12 else 2
    if len(words) >= 6:
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    else:
        chars = re.sub(r"\s+", " ", text.lower())
        if len(chars) < 30:
            return 0.0
        grams = [chars[i:i + 6] for i in range(len(chars) - 5)]
    return 1.0 - len(set(grams)) / len(grams)


def repetition_score(text: str) -> float:
    """Share of repeated n-grams (word 3-grams, 2-grams for short text, character 6-grams for
    unspaced scripts), the worst of the whole text and each paragraph, so a loop in one short
    message is not diluted by the rest of the conversation."""
    parts = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return max([_repeat_share(text)] + [_repeat_share(p) for p in parts if len(parts) > 1])


class RepetitionFilter(Filter):
    name = "repetition"
    higher_is_better = False
    default_threshold = 0.25
    description = "share of repeated word 3-grams (character 6-grams for short or unspaced text)"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        return [repetition_score(c.text) for c in batch]


class TruncatedFilter(Filter):
    """1.0 when the engine stopped at max_tokens: the answer is cut off."""

    name = "truncated"
    higher_is_better = False
    default_threshold = 0.5
    description = "1 if generation hit max_tokens"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        return [None if c.truncated is None else float(c.truncated) for c in batch]

    def explain(self, score: float, lang: str) -> str:
        return "truncated: generation stopped at max_tokens"


class CopyFilter(Filter):
    """chrF (0-1) between candidate and source or references: high means the model copied."""

    name = "copy"
    higher_is_better = False
    default_threshold = 0.75
    description = "highest chrF/100 between the candidate and its source or seed examples"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.chrf = CHRF()

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = []
        for c in batch:
            others = ([c.source] if c.source else []) + list(c.references)
            if not others or not c.text.strip():
                out.append(None)
                continue
            out.append(max(self.chrf.sentence_score(c.text, [o]).score for o in others) / 100.0)
        return out

    def explain(self, score: float, lang: str) -> str:
        return f"copy: {score:.2f} chrF similarity to the source or a seed > {self.threshold_for(lang):.2f}"
