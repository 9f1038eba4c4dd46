"""LASER similarity between source and candidate (nano-laser: LASER2, LASER3 where it exists).

Weights live in a configured directory (`verify.laser_dir`); nano-laser downloads missing ones there
on a machine with network access. Without a directory the filter is not run, and says so.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from synth.verify.base import Candidate, Filter


class LaserFilter(Filter):
    name = "laser"
    default_threshold = 0.6
    description = "cosine similarity of LASER embeddings of source and candidate"

    def __init__(self, model_dir: str, laser3_langs: set[str], **kwargs):
        super().__init__(**kwargs)
        self.model_dir = str(model_dir)
        self.laser3_langs = laser3_langs
        self._encoders: dict[str, object] = {}

    def encoder(self, lang: str | None):
        """LASER3 encoder for languages that have one, the shared LASER2 encoder otherwise."""
        from nano_laser import LaserEncoderPipeline

        key = lang if lang in self.laser3_langs else "laser2"
        if key not in self._encoders:
            if key == "laser2":
                self._encoders[key] = LaserEncoderPipeline(laser="laser2", model_dir=self.model_dir)
            else:
                self._encoders[key] = LaserEncoderPipeline(lang=key, model_dir=self.model_dir)
        return self._encoders[key]

    def embed(self, texts: list[str], lang: str | None) -> np.ndarray:
        return self.encoder(lang).encode_sentences(texts, normalize_embeddings=True)

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = [None] * len(batch)
        groups: dict[tuple[str, str | None], list[int]] = {}
        for i, c in enumerate(batch):
            if c.source and c.source.strip() and c.text.strip():
                groups.setdefault((c.lang, c.source_lang), []).append(i)
        for (lang, source_lang), rows in groups.items():
            cand = self.embed([batch[i].text for i in rows], lang)
            src = self.embed([batch[i].source for i in rows], source_lang)
            # float32 rounding can put the cosine of identical texts just above 1
            for i, sim in zip(rows, np.clip(np.sum(cand * src, axis=1), -1.0, 1.0)):
                out[i] = float(sim)
        return out
