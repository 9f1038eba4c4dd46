"""What every filter shares: the candidate it scores and the score-then-threshold contract.

Like OpusFilter, a filter only scores; acceptance is a per-language threshold on that score, so the
same scores can be re-thresholded (calibration) without re-running models.

The contract, for built-in filters and a user's own alike (subclass Filter):

- `name`: a lower-case identifier, unique in the run: the score column (`score_<name>`, `scores.<name>`)
  and the reject reason;
- `higher_is_better`: True when a row passes with a score at or above its threshold, False at or below;
- `default_threshold` (or `thresholds.<name>` in the preset), per language under `languages:`;
- `description`: one line for the manifest and the reason registry;
- optional `survivors_only = True` for a costly filter: it scores only the rows no other filter
  rejected; such a filter is not run by the driver before back-translating unless it also says
  `light = True` (no neural model: cheap next to a generation);
- `score(batch) -> list[float | None]`: one score per Candidate, in order; None where the filter does
  not apply to a row (never a pass or a fail). A filter that raises, returns another number of scores
  or anything but numbers and None stops the job with a FilterError naming it: it is never skipped.
- `__init__(self, ..., threshold=None, per_language=None)`: pass those two on to Filter.__init__; other
  keyword arguments come from the preset entry's `args` (or your own code with `Job.add_filter`).

Filters may run in forked processes or Ray workers: keep them picklable and their module importable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np

from synth.errors import ConfigError


class FilterError(ConfigError):
    """A filter broke the contract (raised, returned the wrong number of scores, or not numbers): the
    job stops with a message naming it. Reported like a config error (the filter is the user's
    configuration), with exit code 1, since work may have started."""

    exit_code = 1


@dataclass
class Candidate:
    """One row to verify: text in `lang`, optionally its source and a back-translation."""

    id: str
    lang: str
    text: str
    source: str | None = None
    source_lang: str | None = None
    back_translation: str | None = None
    truncated: bool | None = None  # the engine stopped at max_tokens; None: unknown
    references: list[str] = field(default_factory=list)  # texts it must not copy (e.g. ICL seeds)


class Filter(ABC):
    """Scores a batch; `None` means not applicable to that row (never counted as a pass or a fail)."""

    name: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    default_threshold: ClassVar[float]
    description: ClassVar[str] = ""
    # A costly filter sees only the rows every filter before it in the preset accepted; the others
    # score None (they are rejected anyway).
    survivors_only: ClassVar[bool] = False
    needs_back_translation: ClassVar[bool] = False  # scores the back-translation (the round trip)
    # Needs no neural model, so the driver may run it before spending a back-translation on a row
    # (a forward translation it rejects is not back-translated). A `survivors_only` filter is taken
    # to be heavy unless its class says `light = True` (fluency does; LASER and `semantic` do not).
    light: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("survivors_only") and "light" not in cls.__dict__:
            cls.light = False

    def __init__(self, threshold: float | None = None, per_language: dict[str, float] | None = None):
        self.threshold = self.default_threshold if threshold is None else threshold
        self.per_language = dict(per_language or {})

    def threshold_for(self, lang: str) -> float:
        return self.per_language.get(lang, self.threshold)

    @abstractmethod
    def score(self, batch: Sequence[Candidate]) -> list[float | None]: ...

    def accept(self, score: float, lang: str) -> bool:
        limit = self.threshold_for(lang)
        return score >= limit if self.higher_is_better else score <= limit

    def rejected(self, scores: Sequence[float | None], langs: Sequence[str]) -> list[int]:
        """Indices of the rows `accept` refuses, for a whole batch at once (a call per row costs as
        much as a cheap filter); None is not applicable, NaN fails."""
        limit_of = {lang: self.threshold_for(lang) for lang in set(langs)}
        limits = np.fromiter(map(limit_of.__getitem__, langs), dtype=np.float64, count=len(langs))
        values = np.array(scores, dtype=np.float64)  # None -> NaN
        passed = values >= limits if self.higher_is_better else values <= limits
        return [i for i in np.flatnonzero(~passed).tolist() if scores[i] is not None]

    def explain(self, score: float, lang: str) -> str:
        op = "<" if self.higher_is_better else ">"
        return f"{self.name} {score:.3g} {op} {self.threshold_for(lang):.3g}"

    def explain_candidate(self, candidate: Candidate, score: float) -> str:
        """The reject detail of one row; filters that know more about the row (which evaluation set
        it overlaps) override this."""
        return self.explain(score, candidate.lang)
