"""Round-trip check: chrF++ (and BLEU, reported only) between the source and the back-translation."""

from __future__ import annotations

from typing import Sequence

from sacrebleu.metrics import BLEU, CHRF

from synth.verify.base import Candidate, Filter


class RoundtripFilter(Filter):
    name = "roundtrip"
    needs_back_translation = True
    default_threshold = 25.0
    description = "sentence chrF++ between the source and the back-translation (0-100)"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.chrf = CHRF(word_order=2)
        self.bleu = BLEU(effective_order=True)

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        return [
            self.chrf.sentence_score(c.back_translation, [c.source]).score
            if c.source and c.back_translation is not None else None
            for c in batch
        ]

    def bleu_scores(self, batch: Sequence[Candidate]) -> list[float | None]:
        """Sentence BLEU of the same pairs: informative, not thresholded (too noisy per sentence)."""
        return [
            self.bleu.sentence_score(c.back_translation, [c.source]).score
            if c.source and c.back_translation is not None else None
            for c in batch
        ]
