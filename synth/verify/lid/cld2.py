"""CLD2 (pycld2, Chromium's compact language detector) as a LID backend: offline, its tables ship in
the wheel, and it reads languages lid.176 lacks (Hausa, Igbo, Zulu, Xhosa, Kinyarwanda, Luganda,
Lingala, Chichewa, Shona, Oromo, Tigrinya, Wolof, Akan/Twi, Aymara)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import numpy as np
import pycld2

from synth.text import words
from synth.verify.lid.windows import WindowScan, window_scan

# C0/C1 controls and lone surrogates: CLD2 refuses text containing them ("invalid UTF-8")
_REFUSED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class Cld2Model:
    """CLD2 run on the same windows as fastText (`synth.verify.lid.windows`). A window's "probability"
    of a language is CLD2's share of the window's bytes it gives that language (its top 3); the
    rest of the window is in no language."""

    name = "cld2"
    # CLD2's shares are no probabilities: on a 40-character window it names one language at ~97% even
    # where it takes Xhosa for Zulu or Kinyarwanda for Kirundi, so `mixed_language` trusts only its
    # windows in the source language (see MixedLanguageFilter.foreign)
    probabilistic = False

    def __init__(self) -> None:
        self.path = f"pycld2 {getattr(pycld2, '__version__', '')}".strip()
        self.label_list = sorted({code for name, code in pycld2.LANGUAGES if name in pycld2.DETECTED_LANGUAGES})
        self.label_ids = {label: i for i, label in enumerate(self.label_list)}
        self._last: tuple[tuple[str, ...], WindowScan] | None = None

    def covers(self, label: str | None) -> bool:
        return label in self.label_ids

    def detect(self, text: str) -> list[tuple[int, float]]:
        """(label id, share of the text) of CLD2's top 3 languages, best first ("unknown" left out)."""
        try:
            details = pycld2.detect(text, bestEffort=True)[2]
        except (pycld2.error, UnicodeError):
            try:
                details = pycld2.detect(_REFUSED.sub(" ", text), bestEffort=True)[2]
            except (pycld2.error, UnicodeError):
                return []
        ids = self.label_ids
        return [(ids[code], percent / 100) for _, code, percent, _ in details if code in ids and percent > 0]

    def scan(self, texts: Sequence[str], k: int = 3) -> WindowScan:
        """Each text's windows with CLD2's top 3 languages; the last batch is kept (see LidModel.scan)."""
        key = tuple(texts)
        if self._last is not None and self._last[0] == key:
            return self._last[1]

        def classify(windows: list[str]) -> tuple[np.ndarray, np.ndarray]:
            labels = np.full((len(windows), k), -1, dtype=np.int64)
            probs = np.zeros((len(windows), k))
            for row, window in enumerate(windows):
                for col, (label, p) in enumerate(self.detect(window)[:k]):
                    labels[row, col], probs[row, col] = label, p
            return labels, probs

        scan = window_scan(texts, classify)
        self._last = (key, scan)
        return scan

    def predict(self, texts: Sequence[str], k: int = 3) -> list[dict[str, float]]:
        """Top-k label shares of each whole text."""
        return [{self.label_list[i]: p for i, p in self.detect(" ".join(words(text)))[:k]} for text in texts]


@lru_cache(maxsize=1)
def load_cld2() -> Cld2Model:
    return Cld2Model()
