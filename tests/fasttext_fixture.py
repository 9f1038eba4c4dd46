"""Writes small random fastText classifiers in the exact binary format of facebookresearch/fastText
(`FastText::saveModel`: args, dictionary, input and output matrices, dense or product-quantised), so
tests can run any variant (loss, quantisation, pruning, word n-grams) through both fasttext-predict
and synth's numpy reader without downloading models."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

LOSS_IDS = {"hs": 1, "ns": 2, "softmax": 3, "ova": 4}


def _dense(rng: np.random.Generator, m: int, n: int, scale: float) -> bytes:
    return struct.pack("<qq", m, n) + (rng.normal(size=(m, n)) * scale).astype("<f4").tobytes()


def _pq(rng: np.random.Generator, dim: int, dsub: int, scale: float) -> tuple[bytes, int]:
    """ProductQuantizer::save with random centroids; returns the bytes and nsubq."""
    nsubq = -(-dim // dsub)
    lastdsub = dim % dsub or dsub
    centroids = (rng.normal(size=dim * 256) * scale).astype("<f4")
    return struct.pack("<iiii", dim, nsubq, dsub, lastdsub) + centroids.tobytes(), nsubq


def _quant(rng: np.random.Generator, m: int, n: int, dsub: int, qnorm: bool, scale: float) -> bytes:
    """QuantMatrix::save: qnorm, m, n, codesize, codes, pq, [norm codes, norm pq]."""
    pq, nsubq = _pq(rng, n, dsub, scale)
    codes = rng.integers(0, 256, size=m * nsubq, dtype=np.uint8)
    out = struct.pack("<?qqi", qnorm, m, n, codes.size) + codes.tobytes() + pq
    if qnorm:
        norm_pq, _ = _pq(rng, 1, 1, 1.0)
        out += rng.integers(0, 256, size=m, dtype=np.uint8).tobytes() + norm_pq
    return out


def write_fasttext_model(path: Path, words: list[str], labels: list[str], *, loss: str = "softmax",
                         dim: int = 8, bucket: int = 2000, minn: int = 2, maxn: int = 4, word_ngrams: int = 1,
                         quantised: bool = False, qnorm: bool = False, qout: bool = False, pruned: int = 0,
                         dsub: int = 2, scale: float = 1.0, seed: int = 0) -> Path:
    """A supervised model: `words` (EOS first, as fastText's dictionary has it) with descending counts,
    `labels` (with the `__label__` prefix) with descending counts. `pruned` > 0 keeps that many random
    n-gram buckets (a quantised model's `pruneidx`); 0 keeps every bucket."""
    rng = np.random.default_rng(seed)
    vocab = ["</s>"] + [w for w in dict.fromkeys(words) if w != "</s>"]
    out = bytearray(struct.pack("<ii", 793712314, 12))
    out += struct.pack("<12id", dim, 5, 5, 1, 5, word_ngrams, LOSS_IDS[loss], 3, bucket, minn, maxn, 100, 1e-4)
    out += struct.pack("<iiiqq", len(vocab) + len(labels), len(vocab), len(labels), 10**6, pruned if pruned else -1)
    for i, word in enumerate(vocab):
        out += word.encode("utf-8") + b"\x00" + struct.pack("<qb", 10**5 - i, 0)
    for i, label in enumerate(labels):
        out += label.encode("utf-8") + b"\x00" + struct.pack("<qb", 10**4 * (len(labels) - i) + 7 * i, 1)
    rows = len(vocab) + (pruned or bucket)
    if pruned:
        kept = rng.choice(bucket, size=pruned, replace=False)
        for new, old in enumerate(kept.tolist()):
            out += struct.pack("<ii", old, new)
    out += struct.pack("<?", quantised)
    out += _quant(rng, rows, dim, dsub, qnorm, scale) if quantised else _dense(rng, rows, dim, scale)
    out += struct.pack("<?", qout)
    out += _quant(rng, len(labels), dim, dsub, qnorm, scale) if quantised and qout \
        else _dense(rng, len(labels), dim, scale)
    path.write_bytes(bytes(out))
    return path
