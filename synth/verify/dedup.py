"""Exact duplicates after normalisation, within a language, across rounds and against seeds."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterable, Sequence

from synth.verify.base import Candidate, Filter

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalised_hash(text: str) -> str:
    norm = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return hashlib.blake2b(norm.encode(), digest_size=12).hexdigest()


class DedupFilter(Filter):
    """1.0 if an earlier candidate (or a seed) in the same language has the same normalised text.

    Stateful: call `remember` with accepted rows so later rounds never repeat them.
    """

    name = "dedup"
    higher_is_better = False
    default_threshold = 0.5
    description = "1 if the normalised text was already seen in this language"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: set[tuple[str, str]] = set()

    def remember(self, lang: str, texts: Iterable[str]) -> None:
        self.seen.update((lang, normalised_hash(t)) for t in texts)

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = []
        batch_seen: set[tuple[str, str]] = set()
        for c in batch:
            key = (c.lang, normalised_hash(c.text))
            refs = {(c.lang, normalised_hash(r)) for r in c.references}
            out.append(1.0 if key in self.seen or key in batch_seen or key in refs else 0.0)
            batch_seen.add(key)
        return out

    def explain(self, score: float, lang: str) -> str:
        return "dedup: same text as an earlier row or a seed"
