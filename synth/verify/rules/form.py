"""Cheap rule checks: empty output, length ratio to the source, repetition loops, truncation, copies."""

from __future__ import annotations

import functools
import math
import re
import threading
from typing import Sequence

import numpy as np

from synth.text import NO_SENTENCE_MARK, ends_sentence, prose, re_class_table
from synth.verify.base import Candidate, Filter
from synth.verify.grams import MIX as _MIX, gram_hashes, powers as _powers

_WORD = re.compile(r"\w+", re.UNICODE)

COPY_GRAM = 16  # characters: shorter runs are shared by cognates (French "discrimination ")
COPY_STRIDE = 4  # candidate grams looked up (every one of the source's is indexed)

_IS_WORD, _IS_SPACE = 1, 2


@functools.cache
def _char_classes() -> np.ndarray:
    """Per code point: _IS_WORD where `\\w` matches it, _IS_SPACE where `\\s` (= str.isspace, what
    str.split splits on) does. Taken from `re` itself, so batch counts over code points equal the
    per-text regex results (synth.text builds such tables once and caches them)."""
    return (re_class_table(r"\w") * _IS_WORD | re_class_table(r"\s") * _IS_SPACE).astype(np.uint8)


class _UsesCharClasses(Filter):
    """Builds the code point table when the filter is made: in `synth verify`'s parent, before it
    forks the workers, not once in each of them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        _char_classes()


def _code_points(texts: Sequence[str]) -> np.ndarray:
    """The texts joined by NUL, one uint32 per Python character (lone surrogates kept as they are)."""
    return np.frombuffer("\x00".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _folded_code_points(texts: Sequence[str]) -> np.ndarray:
    """The texts folded and joined by NUL, as code points: case-folded, whitespace runs as one space,
    code, URLs and e-mail addresses dropped (copied on purpose: synth.text.prose), a NUL inside a text as
    a space, a lone surrogate as "?".
    Per text that is " ".join(t.casefold().split()); the whitespace is collapsed in numpy over the
    whole batch instead (split + join per text cost twice as much)."""
    folded = [t.casefold() for t in prose(texts)]
    joined = "\x00".join(folded)
    if joined.count("\x00") != len(folded) - 1:  # a NUL inside a text: a space
        joined = "\x00".join(t.replace("\x00", " ") for t in folded)
    codes = np.frombuffer(joined.encode("utf-32-le", "replace"), dtype=np.uint32)
    space = _char_classes().take(codes) == _IS_SPACE
    if not space.any():
        return codes
    drop = space.copy()  # every whitespace character of a run but the first, and any that opens a text
    drop[1:] &= space[:-1] | (codes[:-1] == 0)
    if drop.any():
        codes, space = codes[~drop], space[~drop]
    drop = space.copy()  # runs are now one character after a non-space: drop those that close a text
    drop[:-1] &= codes[1:] == 0
    if drop.any():
        codes, space = codes[~drop], space[~drop]
    if np.count_nonzero(space) == np.count_nonzero(codes == 32):
        return codes  # only " " left
    return np.where(space, np.uint32(32), codes)


def _text_spans(codes: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each of the `count` NUL-separated texts in codes."""
    ends = np.flatnonzero(codes == 0)
    starts = np.zeros(count, dtype=np.int64)
    starts[1:] = ends + 1
    lengths = np.empty(count, dtype=np.int64)
    lengths[:-1] = ends - starts[:-1]
    lengths[-1:] = codes.size - starts[-1:]
    return starts, lengths


def _ranges(first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """first[i], first[i] + 1, ..., first[i] + count[i] - 1 for every i, concatenated."""
    offsets = np.cumsum(count) - count
    return np.arange(int(offsets[-1] + count[-1]) if count.size else 0, dtype=np.int64) \
        + np.repeat(first - offsets, count)


_SCRATCH = threading.local()


def _zeroed_bitmap(bits: int) -> np.ndarray:
    """A zeroed bool array of 2^bits kept per thread (users clear what they set): a fresh 4 MB one
    costs a page fault per 4 kB on first touch, more than the lookups. A bit left set only costs time:
    _members confirms every match by value."""
    maps = _SCRATCH.__dict__.setdefault("maps", {})
    if bits not in maps:
        maps[bits] = np.zeros(1 << bits, dtype=bool)
    return maps[bits]


def _members(keys: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Which keys occur in refs (uint64, exact).

    Sorting all references and binary-searching every key cost half of copied_share. Instead a bitmap
    of the keys' top bits keeps the few references that may match (equal values share their top bits),
    a bitmap of those references keeps the few keys that may match, and only those keys are compared,
    value by value, with the sorted surviving references of their bucket."""
    hit = np.zeros(keys.size, dtype=bool)
    if not keys.size or not refs.size:
        return hit
    bits = min(max(int(keys.size).bit_length() + 4, 12), 22)  # 16+ slots per key, 4 MB at most
    shift = np.uint64(64 - bits)
    seen = _zeroed_bitmap(bits)
    key_slot = (keys >> shift).view(np.intp)
    seen[key_slot] = True
    refs = refs[seen.take((refs >> shift).view(np.intp))]
    seen[key_slot] = False
    if not refs.size:
        return hit
    ref_slot = (refs >> shift).view(np.intp)
    seen[ref_slot] = True
    live = np.flatnonzero(seen.take(key_slot))
    seen[ref_slot] = False
    if not live.size:
        return hit
    refs.sort()
    refs = refs[np.concatenate(([True], refs[1:] != refs[:-1]))]
    bucket_shift = np.uint64(64 - min(max(int(refs.size).bit_length() + 1, 8), 20))
    sizes = np.bincount((refs >> bucket_shift).view(np.intp), minlength=1 << (64 - int(bucket_shift)))
    probe = keys[live]
    bucket = (probe >> bucket_shift).view(np.intp)
    at, left = (np.cumsum(sizes) - sizes).take(bucket), sizes.take(bucket)
    for _ in range(4):  # buckets hold about one reference
        keep = left > 0
        if not keep.all():
            live, probe, at, left = live[keep], probe[keep], at[keep], left[keep]
        if not live.size:
            return hit
        hit[live[refs.take(np.minimum(at, refs.size - 1)) == probe]] = True
        at += 1
        left -= 1
    live, probe = live[left > 0], probe[left > 0]  # crowded buckets (not with hashed keys): binary search
    hit[live[refs.take(np.minimum(np.searchsorted(refs, probe), refs.size - 1)) == probe]] = True
    return hit


_CHUNK_ROWS = 2_000  # rows scored together: bigger arrays spill the caches (bench/README.md, "figures behind")


def copied_share(texts: Sequence[str], others: Sequence[Sequence[str]], n: int = COPY_GRAM) -> np.ndarray:
    """For each text, the share of its (folded) characters covered by an n-gram found in its own
    `others`; a few vectorised passes per _CHUNK_ROWS rows.

    The texts (and, apart, the others) are folded and joined by NUL; every n-gram of the others that
    does not cross a NUL is a reference, keyed by its hash plus its row times _MIX. Of each text, the
    grams at every COPY_STRIDE-th position from its start and its last one are looked up: a copied
    run of n + COPY_STRIDE - 1 characters or more still holds one, its coverage starts at most
    COPY_STRIDE - 1 late, and a whole copy scores 1. Grams never cross a NUL, so a text shorter than n
    scores 0 and a row scores the same in any batch."""
    return np.concatenate([_copied_share(texts[first:first + _CHUNK_ROWS], others[first:first + _CHUNK_ROWS], n)
                           for first in range(0, len(texts), _CHUNK_ROWS)]) if len(texts) else np.zeros(0)


def _copied_share(texts: Sequence[str], others: Sequence[Sequence[str]], n: int) -> np.ndarray:
    """copied_share of at most _CHUNK_ROWS rows."""
    rows = len(texts)
    folded = _folded_code_points(texts)
    codes = np.concatenate((np.zeros(1, dtype=np.uint32), folded))  # every text after a NUL
    starts, lengths = _text_spans(folded, rows)
    starts += 1
    last = lengths - n  # a text's last gram, from its own start (< 0: shorter than a gram)
    count = np.where(last >= 0, (last + COPY_STRIDE - 1) // COPY_STRIDE + 1, 0)
    row = np.repeat(np.arange(rows, dtype=np.int64), count)
    at = np.repeat(starts, count) + np.minimum(_ranges(np.zeros(rows, dtype=np.int64), count) * COPY_STRIDE,
                                               np.repeat(last, count))
    refs = [other for group in others for other in group]
    if not refs or not at.size:
        return np.zeros(rows)
    # a source shared by many rows (one source, many target languages) is folded and hashed once
    distinct = list(dict.fromkeys(refs))
    slot = {ref: i for i, ref in enumerate(distinct)}
    which = np.fromiter(map(slot.__getitem__, refs), dtype=np.int64, count=len(refs))
    ref_codes = np.concatenate((np.zeros(1, dtype=np.uint32), _folded_code_points(distinct)))
    ref_starts, ref_lengths = _text_spans(ref_codes[1:], len(distinct))
    ref_grams = np.maximum(ref_lengths - n + 1, 0)  # every gram inside the reference
    with np.errstate(over="ignore"):  # a gram counts only against the references of its own row
        keys = gram_hashes(codes, at, n)
        keys += row.astype(np.uint64) * _MIX
        hashes = gram_hashes(ref_codes, _ranges(ref_starts + 1, ref_grams), n)
        offset = np.cumsum(ref_grams) - ref_grams
        ref_count = ref_grams[which]
        ref_keys = hashes[_ranges(offset[which], ref_count)]
        ref_rows = np.repeat(np.arange(len(others), dtype=np.uint64), [len(group) for group in others])
        ref_keys += np.repeat(ref_rows * _MIX, ref_count)
    hit = _members(keys, ref_keys)
    # covered characters: matched grams are n long and sorted, so each covers up to the next one
    at, row = at[hit], row[hit]
    cover = np.full(at.size, n, dtype=np.int64)
    np.minimum(np.diff(at), n, out=cover[:-1])
    counts = np.bincount(row, weights=cover, minlength=rows)
    return np.minimum(counts / np.maximum(lengths, 1), 1.0)


def word_characters(texts: Sequence[str]) -> np.ndarray:
    """Characters `\\w` matches in each text (len(t) - len(_WORD.sub("", t))), for a whole batch in
    one table lookup instead of a regex walk per text (bench/README.md)."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    word = _char_classes().take(_code_points(texts)) & _IS_WORD
    cumulative = np.zeros(word.size + 1, dtype=np.int64)
    np.cumsum(word, out=cumulative[1:])
    ends = np.cumsum(lengths + 1) - 1  # each text's end, at the NUL after it
    return cumulative[ends] - cumulative[ends - lengths]


class EmptyFilter(_UsesCharClasses):
    """Number of word characters; below the threshold the output is empty or nearly so."""

    name = "empty"
    default_threshold = 8
    description = "word characters in the candidate"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        return word_characters([c.text for c in batch]).astype(float).tolist()

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


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SPACES = re.compile(r"\s+")


def _distinct_word_grams(lowered: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per lower-cased text: its number of `\\w+` words, and its number of distinct word 3-grams
    (2-grams from 6 to 11 words), or -1: under 6 words, or where the exact check below failed.

    Building the words and a set of tuples per text was slow (bench/README.md). Here each gram gets one 64-bit
    hash (its words' characters end to end, and its words' lengths), sorted under its text's index:
    equal grams land side by side. Every gram whose hash equals the first of its run is compared with
    it, lengths and characters, so a collision cannot merge two different grams (that text is counted
    in Python instead)."""
    count = len(lowered)
    codes = _code_points(lowered)
    word = (_char_classes().take(codes) & _IS_WORD).view(bool)
    edge = np.zeros(codes.size + 1, dtype=bool)  # where a word starts or ends
    edge[:-1] = word
    edge[1:] ^= word
    bounds = np.flatnonzero(edge)
    starts, lengths = bounds[0::2], bounds[1::2] - bounds[0::2]
    text_lengths = np.fromiter((len(t) for t in lowered), dtype=np.int64, count=count)
    first_word = np.searchsorted(starts, np.cumsum(text_lengths + 1) - text_lengths - 1)
    nwords = np.diff(np.append(first_word, starts.size))
    size = np.where(nwords >= 12, 3, np.where(nwords >= 6, 2, 0))  # words per gram
    ngrams = np.where(size > 0, nwords - size + 1, 0)
    distinct = np.full(count, -1, dtype=np.int64)
    gram = _ranges(first_word, ngrams)  # each gram's first word
    text = np.repeat(np.arange(count, dtype=np.int64), ngrams)
    index_bits, text_bits = max(gram.size.bit_length(), 1), max(count.bit_length(), 1)
    hash_bits = 64 - index_bits - text_bits
    if not gram.size or hash_bits < 16:  # nothing to count, or an absurd batch: Python counts
        return nwords, distinct
    last = gram + np.repeat(size, ngrams) - 1
    chars = codes[word]  # the words' characters end to end
    word_start = np.cumsum(lengths) - lengths
    lo, hi = word_start[gram], word_start[last] + lengths[last]
    up, down = _powers(chars.size + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(chars.size + 1, dtype=np.uint64)
        np.cumsum(chars * up[:chars.size], out=prefix[1:])
        h = prefix[hi]
        h -= prefix[lo]
        h *= down[lo]
        h += (lengths[gram].astype(np.uint64) + (lengths[gram + 1].astype(np.uint64) << np.uint64(32))) * _MIX
        h ^= h >> np.uint64(29)
        h *= _MIX
        h ^= h >> np.uint64(32)
    key = (text.astype(np.uint64) << np.uint64(64 - text_bits)) \
        | ((h >> np.uint64(64 - hash_bits)) << np.uint64(index_bits)) | np.arange(gram.size, dtype=np.uint64)
    key.sort()
    which = (key & np.uint64((1 << index_bits) - 1)).view(np.int64)  # gram indices by (text, hash)
    run = key >> np.uint64(index_bits)
    head = np.ones(key.size, dtype=bool)
    np.not_equal(run[1:], run[:-1], out=head[1:])
    a = which[~head]  # a gram whose hash run it does not open, and (b) the gram that opens it
    b = which[np.maximum.accumulate(np.where(head, np.arange(key.size), 0))][~head]
    same = (hi[a] - lo[a] == hi[b] - lo[b]) & (lengths[gram[a]] == lengths[gram[b]]) \
        & (lengths[gram[a] + 1] == lengths[gram[b] + 1])
    n = (hi - lo)[a[same]]
    if n.size:
        offsets = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
        differ = chars[np.repeat(lo[a[same]], n) + offsets] != chars[np.repeat(lo[b[same]], n) + offsets]
        if differ.any():
            same[np.flatnonzero(same)[~np.logical_and.reduceat(~differ, np.cumsum(n) - n)]] = False
    distinct[:] = np.bincount(text[which[head]], minlength=count)
    distinct[ngrams == 0] = -1
    distinct[text[a[~same]]] = -1
    return nwords, distinct


def _char_repeat_share(lowered: str) -> float:
    """Share of repeated character 6-grams (whitespace runs as one space): texts under 6 words."""
    chars = _SPACES.sub(" ", lowered)
    if len(chars) < 30:
        return 0.0
    grams = [chars[i:i + 6] for i in range(len(chars) - 5)]
    return 1.0 - len(set(grams)) / len(grams)


def _repeat_share(text: str) -> float:
    """One text's share of repeated grams; repetition_scores counts the same for a whole batch."""
    lowered = text.lower()
    words = _WORD.findall(lowered)
    if len(words) >= 6:  # zip builds the n-gram tuples in C
        grams = list(zip(words, words[1:], words[2:]) if len(words) >= 12 else zip(words, words[1:]))
        return 1.0 - len(set(grams)) / len(grams)
    return _char_repeat_share(lowered)


def repetition_score(text: str) -> float:
    """Share of repeated n-grams (word 3-grams, 2-grams for short text, character 6-grams for
    unspaced scripts), the worst of the whole text and each paragraph, so a loop in one short
    message is not diluted by the rest of the conversation."""
    parts = [p for p in _PARAGRAPH_BREAK.split(text) if p.strip()] if "\n" in text else []
    return max([_repeat_share(text)] + [_repeat_share(p) for p in parts if len(parts) > 1])


def repetition_scores(texts: Sequence[str]) -> list[float]:
    """repetition_score of each text, the word grams of the whole batch (texts and paragraphs)
    counted at once (_distinct_word_grams)."""
    units, owner = list(texts), list(range(len(texts)))
    for i, text in enumerate(texts):
        if "\n" in text:
            parts = [p for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
            if len(parts) > 1:
                units.extend(parts)
                owner.extend([i] * len(parts))
    if not units:
        return []
    lowered = [unit.lower() for unit in units]
    counted = [_distinct_word_grams(lowered[i:i + _CHUNK_ROWS]) for i in range(0, len(lowered), _CHUNK_ROWS)]
    nwords, distinct = np.concatenate([c[0] for c in counted]), np.concatenate([c[1] for c in counted])
    scores = []
    for unit, low, n, d in zip(units, lowered, nwords.tolist(), distinct.tolist()):
        if d >= 0:
            scores.append(1.0 - d / (n - 2 if n >= 12 else n - 1))
        elif n < 6:
            scores.append(_char_repeat_share(low))
        else:  # a hash collision in the batch: count this one exactly
            scores.append(_repeat_share(unit))
    for i, share in zip(owner[len(texts):], scores[len(texts):]):  # paragraphs: the worst counts
        scores[i] = max(scores[i], share)
    return scores[:len(texts)]


class RepetitionFilter(_UsesCharClasses):
    name = "repetition"
    higher_is_better = False
    default_threshold = 0.25
    description = "share of repeated word 3-grams (character 6-grams for short or unspaced text)"

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        return list(repetition_scores([c.text for c in batch]))


class TruncatedFilter(Filter):
    """Unfinished output: 1.0 when the engine stopped at max_tokens; 0.75 when the source ends a
    sentence and the candidate stops mid-sentence (cut off, whatever the engine said).

    A text cut at 20-40% of its length passes a length-ratio check when the language is longer than
    English (Burmese) or the sentence was short; it almost never ends on a full stop, while nearly
    every real translation of a source ending a sentence does (UDHR counts: bench/README.md; Thai and
    Lao, which end sentences with a space, are exempt).
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
            elif c.source and c.lang[-4:] not in NO_SENTENCE_MARK and ends_sentence(c.source) \
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


class CopyFilter(_UsesCharClasses):
    """Share of the candidate's characters inside runs of COPY_GRAM+ characters that also occur in its
    source or a reference (case and whitespace folded): 1 for a verbatim copy, about 0.5 for an answer
    that switches back to the untranslated source half-way, ~0 for a translation.

    Untranslated spans, not overall similarity: sacrebleu's chrF scored a half-copied translation
    below any threshold that spares good translations of cognate-rich languages, and cost most of
    `synth verify`'s time. Long runs are script-agnostic and almost never shared by a real
    translation (French cognates share the most), and a batch is scored in a few numpy passes
    (copied_share). UDHR figures: bench/README.md.
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
