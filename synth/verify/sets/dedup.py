"""Duplicates within a language, across rounds and against seeds: exact and near (MinHash + LSH).

Texts are normalised (case-folded; punctuation, symbols and runs of whitespace become one space).
Exact: a hash of the normalised text. Near: a MinHash signature of its character 5-grams
(script-agnostic, so Khmer, written without spaces, works like Swahili), indexed by LSH bands so a new
row is compared only with kept rows that share a band. The score is the highest estimated Jaccard
similarity to an earlier kept row or a seed; 1.0 for an exact duplicate.

Speed matters (every row of `synth verify` goes through here), so a batch is normalised, shingled and
signed in a few numpy passes over all its characters at once, with 32-bit arithmetic and one-permutation
MinHash (one hash per shingle, its minimum per bin, empty bins filled from the next bin), not 64
independent hashes per shingle.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from synth.text import fold, gap_table
from synth.verify.base import Candidate, Filter

SHINGLE = 5  # characters: one changed word leaves a text near-identical, distinct articles far apart (bench/README.md)
NUM_PERM = 64  # bins; estimate error (std) ~0.02-0.05 around Jaccard 0.7
BANDS = 16  # 16 bands of 4 bins: a pair at Jaccard 0.7 shares a band with probability 0.999, at 0.3 with 0.12
_ROWS = NUM_PERM // BANDS
_BIN_SHIFT = np.uint32(32 - (NUM_PERM.bit_length() - 1))  # the top log2(NUM_PERM) bits of a shingle hash pick its bin
_EMPTY = np.uint32(0xFFFFFFFF)
_POW = np.uint32(16777619) ** np.arange(SHINGLE, dtype=np.uint32)  # polynomial hash of code points, mod 2^32


@lru_cache(maxsize=1)
def _separators() -> np.ndarray:
    """Code points that normalisation turns into a space: synth.text's gaps between words (punctuation,
    symbols, separators, controls), but not NUL, which separates the texts of a batch."""
    table = gap_table().copy()
    table[0] = False
    return table


def _normalised_codes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Code points of the normalised texts joined by NUL, and each text's start in that array."""
    joined = fold("\x00".join(t.replace("\x00", " ") for t in texts))  # NFKC + casefold: synth.text
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).copy()  # any str hashes
    space = _separators()[codes]
    codes[space] = 32
    sep = codes == 0
    # a space survives only between two characters of the same text, once per run
    keep = ~(space & np.concatenate([[True], (space | sep)[:-1]]))
    codes, space, sep = codes[keep], space[keep], sep[keep]
    keep = ~(space & np.concatenate([sep[1:], [True]]))
    codes, sep = codes[keep], sep[keep]
    starts = np.concatenate([[0], np.flatnonzero(sep) + 1])
    return codes, starts


def _mix(h: np.ndarray) -> np.ndarray:
    """lowbias32 finaliser: spreads the polynomial hash over all 32 bits (the bin comes from the top ones)."""
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    return h


def sketch(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Exact keys (hash of the normalised text) and (len(texts), NUM_PERM) MinHash signatures."""
    n = len(texts)
    if n == 0:
        return [], np.empty((0, NUM_PERM), dtype=np.uint32)
    codes, starts = _normalised_codes(texts)
    ends = np.concatenate([starts[1:] - 1, [codes.size]])
    keys = [hashlib.blake2b(codes[s:e].tobytes(), digest_size=12).hexdigest() for s, e in zip(starts, ends)]
    flat = np.full(n * NUM_PERM, _EMPTY, dtype=np.uint32)
    m = codes.size - SHINGLE + 1
    if m > 0:
        with np.errstate(over="ignore"):
            h = codes[:m] * _POW[0]
            for j in range(1, SHINGLE):
                h += codes[j:j + m] * _POW[j]
        h = _mix(h)
        before = np.concatenate([[0], np.cumsum(codes == 0)])  # texts ended before each position
        inside = before[SHINGLE:SHINGLE + m] == before[:m]  # the shingle does not cross a NUL
        h = h[inside]
        np.minimum.at(flat, before[:m][inside] * NUM_PERM + (h >> _BIN_SHIFT), h)
    signatures = flat.reshape(n, NUM_PERM)
    empty = signatures == _EMPTY
    if empty.any():
        none = empty.all(axis=1)
        for r in np.flatnonzero(none):  # shorter than a shingle: a signature only its exact copies share
            signatures[r] = np.frombuffer(hashlib.blake2b(keys[r].encode("utf-8", "surrogatepass"), digest_size=64).digest() * 4, dtype=np.uint32)
        partly = empty.any(axis=1) & ~none
        if partly.any():  # densify: an empty bin takes the next non-empty bin's value, offset by the distance
            sub = signatures[partly]
            twice = np.concatenate([sub, sub], axis=1)
            pos = np.arange(2 * NUM_PERM)
            nxt = np.minimum.accumulate(np.where(twice != _EMPTY, pos, 2 * NUM_PERM)[:, ::-1], axis=1)[:, ::-1][:, :NUM_PERM]
            with np.errstate(over="ignore"):
                offset = (nxt - pos[:NUM_PERM]).astype(np.uint32) * np.uint32(0x9E3779B1)
                signatures[partly] = np.take_along_axis(twice, nxt, axis=1) + offset
    return keys, signatures


def estimated_jaccard(a: str, b: str) -> float:
    _, (sa, sb) = sketch([a, b])
    return float((sa == sb).mean())


@lru_cache(maxsize=4096)
def _reference_sketch(text: str) -> tuple[str, np.ndarray]:
    """Seeds shown in prompts recur in many rows: sketch each once."""
    keys, signatures = sketch([text])
    return keys[0], signatures[0]


_BAND_MIX = np.uint64(0x9E3779B97F4A7C15)


def band_keys(signatures: np.ndarray) -> list[list[int]]:
    """Each signature's BANDS band keys, one int per band (its _ROWS bins and its band number mixed
    into 64 bits), for a whole batch in numpy: a dict lookup of an int costs less than slicing and
    hashing bytes per band and row. Two different bands share a key with odds of about 2^-64 per pair;
    that would only make a row a candidate, whose similarity is then counted from its signature."""
    n = len(signatures)
    with np.errstate(over="ignore"):
        bins = signatures.reshape(n, BANDS, _ROWS).astype(np.uint64)
        h = np.broadcast_to(np.arange(1, BANDS + 1, dtype=np.uint64), (n, BANDS)) * _BAND_MIX
        for r in range(_ROWS):
            h = (h ^ bins[:, :, r]) * _BAND_MIX
            h ^= h >> np.uint64(31)
    return h.tolist()


class _Index:
    """Kept rows of one language: exact keys, signatures, and one dict of LSH band keys (`band_keys`).

    A band bucket keeps the first row that filled it: rows landing there later were kept, so they are
    not near-copies of it, and their other bands still find them.
    """

    def __init__(self):
        self.exact: set[str] = set()
        self.signatures = np.empty((64, NUM_PERM), dtype=np.uint32)  # grows by doubling; rows [0, count)
        self.count = 0
        self.bands: dict[int, int] = {}

    def add(self, key: str, signature: np.ndarray, bands: list[int]) -> None:
        if key in self.exact:
            return
        self.exact.add(key)
        if self.count == len(self.signatures):
            self.signatures = np.concatenate([self.signatures, np.empty_like(self.signatures)])
        row = self.count
        self.signatures[row] = signature
        self.count += 1
        setdefault = self.bands.setdefault
        for band in bands:
            setdefault(band, row)

    def best(self, key: str, signature: np.ndarray, bands: list[int]) -> float:
        """1.0 for an exact match, else the highest estimated Jaccard among rows sharing a band (0 if none)."""
        if key in self.exact:
            return 1.0
        rows = set(map(self.bands.get, bands))
        rows.discard(None)
        if not rows:
            return 0.0
        return int((self.signatures[sorted(rows)] == signature).sum(axis=1).max()) / NUM_PERM  # = the mean's value


class DedupFilter(Filter):
    """Highest estimated Jaccard (MinHash of character 5-grams) to an earlier kept row of the same
    language or a seed; 1.0 for an exact duplicate after normalisation. Lower is better.

    Stateful: `remember` accepted rows (and seeds) so later rounds and resumed runs never repeat them.
    Within a batch, a row is compared with the earlier rows of the batch that it would keep.
    """

    name = "dedup"
    higher_is_better = False
    default_threshold = 0.7
    description = "highest estimated Jaccard (MinHash of character 5-grams) to an earlier row or a seed; 1 = exact"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.indexes: dict[str, _Index] = {}

    def remember(self, lang: str, texts: Iterable[str]) -> None:
        self.remember_sketches(lang, *sketch(list(texts)))

    def remember_sketches(self, lang: str, keys: Sequence[str], signatures: np.ndarray,
                          bands: list[list[int]] | None = None) -> None:
        """`remember` for texts already sketched (and their `band_keys`, if made): a kept row is
        sketched once."""
        index = self.indexes.get(lang) or self.indexes.setdefault(lang, _Index())  # made once per language
        for key, signature, row_bands in zip(keys, signatures, bands or band_keys(signatures)):
            index.add(key, signature, row_bands)

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        return self.sketch_and_score(batch)[0]

    def sketch_and_score(self, batch: Sequence[Candidate], sketched: tuple[list[str], np.ndarray] | None = None,
                         ) -> tuple[list[float | None], list[str], np.ndarray, list[list[int]]]:
        """Scores, and each row's exact key, signature and band keys for `remember_sketches`.
        `sketched`: the rows' `sketch`, made already (by the process that scored them); then only the
        rows' languages and references are read here, not their texts."""
        out: list[float | None] = []
        in_batch: dict[str, _Index] = {}
        keys, signatures = sketched if sketched is not None else sketch([c.text for c in batch])
        bands = band_keys(signatures)
        for c, key, signature, row_bands in zip(batch, keys, signatures, bands):
            indexes = [i for i in (self.indexes.get(c.lang), in_batch.get(c.lang)) if i is not None]
            score = max((index.best(key, signature, row_bands) for index in indexes), default=0.0)
            for ref in c.references:
                ref_key, ref_signature = _reference_sketch(ref)
                score = max(score, 1.0 if ref_key == key else np.count_nonzero(ref_signature == signature) / NUM_PERM)
            out.append(score)
            if self.accept(score, c.lang):
                (in_batch.get(c.lang) or in_batch.setdefault(c.lang, _Index())).add(key, signature, row_bands)
        return out, keys, signatures, bands

    def explain(self, score: float, lang: str) -> str:
        if score >= 1.0:
            return "dedup: same text as an earlier row or a seed"
        return (f"dedup: near-duplicate of an earlier row or a seed "
                f"(estimated Jaccard {score:.2f} > {self.threshold_for(lang):.2f})")
