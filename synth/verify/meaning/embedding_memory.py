"""Sources embedded once per process, for the meaning filters (LASER, `semantic`).

One English source is usually translated into several languages, and its rows reach a verifier in
different batches (slices of `synth run`, chunks of `synth verify`, which keep a language's rows
together). Its vector does not change, so each encoder keeps the vectors of the sources it embedded
and embeds only the texts it has not seen. Candidates are not kept: they are rarely met twice.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np

SOURCES_KEPT = 8_192  # vectors a memory keeps (1.5 KB each for e5, 4 KB for LASER), least recently used dropped first


class EmbeddingMemory:
    """Vectors of one encoder by text. Exact for an encoder that gives a text the same vector whatever
    it is batched with (e5: tests/verify/test_semantic.py); LASER's padded batches already differ in the
    last digits (within 1e-5: tests/verify/test_laser.py), and a kept vector differs no more."""

    def __init__(self, size: int = SOURCES_KEPT):
        self.size = size
        self.kept: OrderedDict[str, np.ndarray] = OrderedDict()

    def vectors(self, texts: list[str], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """One row per text; `embed` sees each distinct text not kept yet, once."""
        kept, distinct = self.kept, list(dict.fromkeys(texts))
        missing = [t for t in distinct if t not in kept]
        if missing:
            kept.update((t, v.copy()) for t, v in zip(missing, embed(missing)))  # copies: no batch array pinned
        for t in distinct:
            kept.move_to_end(t)
        out = np.stack([kept[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)
        while len(kept) > self.size:
            kept.popitem(last=False)
        return out
