"""Cheap rule checks: empty output, length ratio to the source, repetition loops, truncation, copies."""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

from synth.verify.base import Candidate, Filter

_WORD = re.compile(r"\w+", re.UNICODE)

COPY_GRAM = 16  # characters: shorter runs are shared by cognates (French "discrimination ")
COPY_STRIDE = 4  # candidate grams looked up (every one of the source's is indexed)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_CODE = re.compile(r"```.*?```|`[^`\n]*`|https?://\S+", re.S)


def _fold(text: str) -> str:
    """Case-folded, whitespace runs as one space, code and URLs dropped (copied on purpose); NUL,
    which separates the texts of a batch, becomes a space."""
    if "`" in text or "://" in text:
        text = _CODE.sub(" ", text)
    return " ".join(text.replace("\x00", " ").casefold().split())


_BASE = 1099511628211  # odd, so invertible modulo 2^64
_POWERS: list[np.ndarray] = [np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)]  # BASE^i, BASE^-i


def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE^i and BASE^-i modulo 2^64 for i < size (grown on demand, kept)."""
    if _POWERS[0].size < size:
        grown = max(size, 2 * _POWERS[0].size)
        with np.errstate(over="ignore"):
            up = np.full(grown, _BASE, dtype=np.uint64)
            down = np.full(grown, pow(_BASE, -1, 2**64), dtype=np.uint64)
            up[0] = down[0] = 1
            _POWERS[:] = [np.cumprod(up, dtype=np.uint64), np.cumprod(down, dtype=np.uint64)]
    return _POWERS[0][:size], _POWERS[1][:size]


def _gram_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Texts joined by NUL as code points: a 64-bit hash per n-gram start, whether the n-gram stays
    inside one text, the text index of each start, and the text index of every position.

    Polynomial hashes from one prefix sum (sum of c_j * BASE^j, times BASE^-i), modulo 2^64: a few
    passes over the characters whatever n is."""
    # "replace": a lone surrogate (never in Parquet strings) becomes "?" instead of raising
    codes = np.frombuffer("\x00".join(texts).encode("utf-32-le", "replace"), dtype=np.uint32).astype(np.uint64)
    owner = np.cumsum(codes == 0)
    m = codes.size - n + 1
    if m <= 0:
        empty = np.empty(0, dtype=np.uint64)
        return empty, empty.astype(bool), empty.astype(np.int64), owner
    up, down = _powers(codes.size)
    with np.errstate(over="ignore"):
        prefix = np.zeros(codes.size + 1, dtype=np.uint64)
        np.cumsum(codes * up, out=prefix[1:])
        h = (prefix[n:] - prefix[:m]) * down[:m]
        h ^= h >> np.uint64(29)
        h *= _MIX
        h ^= h >> np.uint64(32)
    inside = owner[n - 1:n - 1 + m] == owner[:m]
    return h, inside, owner[:m], owner


def copied_share(texts: Sequence[str], others: Sequence[Sequence[str]], n: int = COPY_GRAM) -> np.ndarray:
    """For each text, the share of its (folded) characters covered by an n-gram found in its own
    `others`; one vectorised pass for the whole batch."""
    folded = [_fold(t) for t in texts]
    refs, ref_row = [], []
    for row, group in enumerate(others):
        for other in group:
            refs.append(_fold(other))
            ref_row.append(row)
    h, inside, row, owner = _gram_hashes(folded, n)
    rh, rinside, rrow, _ = _gram_hashes(refs, n)
    # the candidate's grams at every COPY_STRIDE-th position of each text, and its last one: a copied
    # run of n + COPY_STRIDE - 1 characters or more still holds one, its coverage starts at most
    # COPY_STRIDE - 1 late, and a whole copy scores 1. Positions count from the text's own start, so
    # a row scores the same in any batch.
    lengths = np.array([len(t) for t in folded], dtype=np.int64)
    text_start = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    pick = inside & ((np.arange(inside.size) - text_start[row]) % COPY_STRIDE == 0)
    pick[:-1] |= inside[:-1] & ~inside[1:]  # last gram of a text
    pick[-1:] |= inside[-1:]
    sampled = np.flatnonzero(pick)
    with np.errstate(over="ignore"):  # a gram counts only against the references of its own row
        keys = h[sampled] + row[sampled].astype(np.uint64) * _MIX
        rkeys = rh[rinside] + np.asarray(ref_row, dtype=np.uint64)[rrow[rinside]] * _MIX
    # sorted keys looked up in sorted reference keys: numpy 2's hash-based np.isin is 20x slower here
    rkeys.sort()
    starts = np.empty(0, dtype=np.int64)
    if rkeys.size and keys.size:
        order = np.argsort(keys)
        ordered = keys[order]
        at = np.minimum(np.searchsorted(rkeys, ordered), rkeys.size - 1)
        starts = np.sort(sampled[order[rkeys[at] == ordered]])
    edges = np.zeros(owner.size + 1, dtype=np.int32)
    edges[starts] += 1
    edges[starts + n] -= 1
    covered = np.cumsum(edges[:-1]) > 0
    counts = np.bincount(owner, weights=covered, minlength=len(folded))
    return np.minimum(counts / np.maximum(lengths, 1), 1.0)


class EmptyFilter(Filter):
    """Number of word characters; below the threshold the output is empty or nearly so."""

    name = "empty"
    default_threshold = 8
    description = "word characters in the candidate"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        return [float(len(c.text) - len(_WORD.sub("", c.text))) for c in batch]  # word characters

    def explain(self, score: float, lang: str) -> str:
        return f"empty: {score:.0f} word characters < {self.threshold_for(lang):.0f}"


class LengthRatioFilter(Filter):
    """|log(len(candidate) / len(source))|: symmetric, so 3x longer and 3x shorter score the same."""

    name = "length_ratio"
    higher_is_better = False
    default_threshold = math.log(3.0)
    description = "absolute log of the character length ratio candidate/source"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = []
        for c in batch:
            if not c.source:
                out.append(None)
            else:
                out.append(abs(math.log(max(len(c.text.strip()), 1) / max(len(c.source.strip()), 1))))
        return out

    def explain(self, score: float, lang: str) -> str:
        return f"length ratio x{math.exp(score):.2f} beyond x{math.exp(self.threshold_for(lang)):.2f}"


def _repeat_share(text: str) -> float:
    words = _WORD.findall(text.lower())
    if len(words) >= 6:  # zip builds the n-gram tuples in C
        grams = list(zip(words, words[1:], words[2:]) if len(words) >= 12 else zip(words, words[1:]))
    else:
        chars = re.sub(r"\s+", " ", text.lower())
        if len(chars) < 30:
            return 0.0
        grams = [chars[i:i + 6] for i in range(len(chars) - 5)]
    return 1.0 - len(set(grams)) / len(grams)


def repetition_score(text: str) -> float:
    """Share of repeated n-grams (word 3-grams, 2-grams for short text, character 6-grams for
    unspaced scripts), the worst of the whole text and each paragraph, so a loop in one short
    message is not diluted by the rest of the conversation."""
    parts = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return max([_repeat_share(text)] + [_repeat_share(p) for p in parts if len(parts) > 1])


class RepetitionFilter(Filter):
    name = "repetition"
    higher_is_better = False
    default_threshold = 0.25
    description = "share of repeated word 3-grams (character 6-grams for short or unspaced text)"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        return [repetition_score(c.text) for c in batch]


# Sentence-final marks of the scripts synth knows (Latin/Cyrillic, Armenian, Ethiopic, Devanagari,
# Burmese, Khmer, Arabic/Urdu, Tibetan, CJK, ellipsis), and what may close a sentence after them
_SENTENCE_END = set(".!?։።፧။។۔؟།。！？…।॥")
_CLOSERS = "\"'”’»›)]}）」』】〕〉》*_፡ \t\n\r\u200b"
# Scripts whose writers end sentences with a space, not a mark: UDHR Thai has none in 27 of 27 articles
_NO_SENTENCE_MARK = {"Thai", "Laoo"}


def ends_sentence(text: str) -> bool:
    """The text ends with a sentence-final mark (closing quotes, brackets and emphasis ignored)."""
    stripped = text.rstrip(_CLOSERS)
    return bool(stripped) and stripped[-1] in _SENTENCE_END


class TruncatedFilter(Filter):
    """Unfinished output: 1.0 when the engine stopped at max_tokens; 0.75 when the source ends a
    sentence and the candidate stops mid-sentence (cut off, whatever the engine said).

    A text cut at 20-40% of its length passes a length-ratio check when the language is longer than
    English (Burmese, x1.5 in characters) or the sentence was short; it almost never ends on a full
    stop (8 of 806 UDHR cuts do), while 99.5% of real translations of a source ending a sentence do
    (Thai and Lao, which end sentences with a space, are exempt).
    """

    name = "truncated"
    higher_is_better = False
    default_threshold = 0.5
    description = "1 if generation hit max_tokens; 0.75 if the candidate stops mid-sentence where its source ends one"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = []
        for c in batch:
            if c.truncated:
                out.append(1.0)
            elif c.source and c.lang[-4:] not in _NO_SENTENCE_MARK and ends_sentence(c.source) \
                    and c.text.strip() and not ends_sentence(c.text):
                out.append(0.75)
            elif c.truncated is None and not c.source:
                out.append(None)
            else:
                out.append(0.0)
        return out

    def explain(self, score: float, lang: str) -> str:
        if score >= 1.0:
            return "truncated: generation stopped at max_tokens"
        return "truncated: stops mid-sentence where the source ends a sentence"


class CopyFilter(Filter):
    """Share of the candidate's characters inside runs of COPY_GRAM+ characters that also occur in its
    source or a reference (case and whitespace folded): 1 for a verbatim copy, about 0.5 for an answer
    that switches back to the untranslated source half-way, ~0 for a translation.

    Untranslated spans, not overall similarity: sacrebleu's chrF scored a half-copied translation
    0.45-0.65, below any threshold that spares good translations of cognate-rich languages, and cost
    most of `synth verify`'s time. Long runs are script-agnostic and almost never shared by a real
    translation (the most of 806 UDHR translations in 30 languages is 0.13, French cognates), and a
    batch is scored in a few numpy passes (copied_share).
    """

    name = "copy"
    higher_is_better = False
    default_threshold = 0.5
    description = f"share of the candidate in runs of {COPY_GRAM}+ characters copied from the source or a seed"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        others = [([c.source] if c.source else []) + list(c.references) for c in batch]
        rows = [i for i, (c, o) in enumerate(zip(batch, others)) if o and c.text.strip()]
        out: list[float | None] = [None] * len(batch)
        if rows:
            shares = copied_share([batch[i].text for i in rows], [others[i] for i in rows])
            for i, share in zip(rows, shares.tolist()):
                out[i] = share
        return out

    def explain(self, score: float, lang: str) -> str:
        return f"copy: {score:.0%} of the text copied from the source or a seed (max {self.threshold_for(lang):.0%})"
