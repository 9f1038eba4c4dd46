"""LID windows: each text cut into consecutive windows of whole words, laid out for a whole batch at
once (Python's split, or Arrow's kernels), and `WindowScan`, a backend's labels for every window. Every
LID backend (fastText in router.py, CLD2 in cld2.py) reads the same windows."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.arrays import int64_array, int_values, string_array
from synth.text import spaced, words as split_words


WINDOW_CHARS = 40  # LID windows: long enough for lid.176 to be right on a clause, short enough to localise a switch
MAX_WINDOWS = 12  # longer texts get longer windows, so a row costs at most this many LID calls


@dataclass
class WindowScan:
    """LID of every window (see `windows`) of a batch of texts: one pass serves both filters, `lid`
    (the windows' probabilities averaged over the text, weighted by length) and `mixed_language`
    (each window's). Averaged windows decide as well as one call on the whole text (measured on the
    UDHR defect set: bench/README.md) and save that call."""

    first: np.ndarray  # index of each text's first window; first[i + 1] - first[i] windows (n_texts + 1)
    chars: np.ndarray  # characters of each window
    labels: np.ndarray  # (windows, k) label ids, best first; -1: none
    probs: np.ndarray  # (windows, k) their probabilities

    def text_probs(self, n_labels: int) -> np.ndarray:
        """(texts, labels): each text's windows' probabilities averaged, weighted by window length
        (a label outside a window's top k counts 0 there)."""
        n_texts = self.first.size - 1
        text = np.repeat(np.arange(n_texts), np.diff(self.first))
        size = np.maximum(np.bincount(text, weights=self.chars, minlength=n_texts), 1)
        weight = self.chars / size[text]
        ok = self.labels >= 0
        keys = (text[:, None] * n_labels + self.labels)[ok]
        values = (self.probs * weight[:, None])[ok]
        return np.bincount(keys, weights=values, minlength=n_texts * n_labels).reshape(n_texts, n_labels)


def window_spans(texts: Sequence[str], min_chars: int = WINDOW_CHARS, max_windows: int = MAX_WINDOWS
                 ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The windows (see `windows`) of every text of a batch, as spans: all words in turn (runs longer
    than a window cut), how many each window takes, each window's characters, and the index of each
    text's first window (n_texts + 1)."""
    lists = list(map(split_words, texts))
    tokens = list(chain.from_iterable(lists))
    per_text = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    size, longest = _window_sizes(lengths, per_text, min_chars, max_windows)
    cut = np.flatnonzero(longest > size)
    if cut.size:  # runs longer than a window (scripts written without spaces): cut into pieces of `size`
        tokens = list(chain.from_iterable(_spliced(per_text, size, cut, lambda a, b: tokens[a:b],
                                                   lambda a, b, step: _cut(tokens[a:b], step), len(tokens))))
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    return (tokens, *_layout(lengths, per_text, size))


def _cut(words: list[str], size: int) -> list[str]:
    """Words longer than a window cut into pieces of its size."""
    return [word[i:i + size] for word in words for i in range(0, len(word), size)]


def _spliced(per_text: np.ndarray, size: np.ndarray, cut: np.ndarray, keep, cut_words, total: int) -> list:
    """The batch's words as pieces, the words of the `cut` texts cut to their window size: `keep(a, b)`
    gives words a..b as they are, `cut_words(a, b, size)` cut. Updates those texts' word counts."""
    first_word, pieces, done = np.cumsum(per_text) - per_text, [], 0
    for t in cut.tolist():
        a, b = int(first_word[t]), int(first_word[t] + per_text[t])
        pieces += [keep(done, a), cut_words(a, b, int(size[t]))]
        per_text[t], done = len(pieces[-1]), b
    return [*pieces, keep(done, total)]


def arrow_window_spans(texts: Sequence[str], min_chars: int = WINDOW_CHARS, max_windows: int = MAX_WINDOWS
                       ) -> tuple[pa.DictionaryArray, np.ndarray, np.ndarray, np.ndarray] | None:
    """`window_spans` with the words split, measured and dictionary-encoded by Arrow's kernels: no
    Python string per word, each distinct word of the batch once. Arrow's whitespace is str.split's
    (tests/verify/test_lid_windows.py holds the two equal on every code point). None where a text
    cannot be UTF-8 (a lone surrogate): `window_spans` handles it."""
    try:
        array = string_array(list(map(spaced, texts)))
    except UnicodeEncodeError:
        return None
    split = pc.utf8_split_whitespace(array)
    words = pc.list_flatten(split)
    measured = pc.utf8_length(words)
    lengths, owner = int_values(measured), int_values(pc.list_parent_indices(split))
    kept = lengths > 0  # Arrow keeps an empty string before leading and after trailing whitespace
    if not kept.all():
        words, lengths, owner = words.take(int64_array(np.flatnonzero(kept))), lengths[kept], owner[kept]
    per_text = np.bincount(owner, minlength=len(texts)).astype(np.int64)
    size, longest = _window_sizes(lengths, per_text, min_chars, max_windows)
    cut = np.flatnonzero(longest > size)
    if cut.size:  # as in window_spans; only these texts' words become Python strings
        words = pa.concat_arrays(_spliced(per_text, size, cut, lambda a, b: words.slice(a, b - a),
                                          lambda a, b, step: string_array(_cut(words.slice(a, b - a).to_pylist(), step)),
                                          len(words)))
        lengths = int_values(pc.utf8_length(words))
    return (words.dictionary_encode(), *_layout(lengths, per_text, size))


def _window_sizes(lengths: np.ndarray, per_text: np.ndarray, min_chars: int, max_windows: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Each text's window size (longer texts get longer windows, so a row costs at most about
    `max_windows` LID calls) and its longest word."""
    first_word = np.cumsum(per_text) - per_text
    some = np.flatnonzero(per_text > 0)
    totals, longest = np.zeros(per_text.size, dtype=np.int64), np.zeros(per_text.size, dtype=np.int64)
    if some.size:
        totals[some] = np.add.reduceat(lengths, first_word[some])
        longest[some] = np.maximum.reduceat(lengths, first_word[some])
    return np.maximum(min_chars, (totals + per_text) // max_windows + 1), longest


def _layout(lengths: np.ndarray, per_text: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of whole words, for every text at once: a window ends at the first word that brings
    it to its text's `size` characters (words joined by spaces), and a last piece under half a window
    joins the window before. Returns how many words each window takes, its characters, and the index
    of each text's first window (n_texts + 1). One numpy step per window of the longest text."""
    n = per_text.size
    ends = np.cumsum(lengths + 1)  # characters up to each word and a space after it, over the batch
    stop = np.cumsum(per_text)  # one past each text's last word
    text = np.flatnonzero(per_text > 0)
    start = (stop - per_text)[text]
    before = np.where(start > 0, ends[np.maximum(start - 1, 0)], 0)
    made = np.zeros(n, dtype=np.int64)  # windows so far, per text
    placed: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (text, window, words, chars)
    merged: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # a last piece joining the window before
    while text.size:
        end = np.searchsorted(ends, before + size[text] + 1)
        full = end < stop[text]
        if full.any():
            t, e = text[full], end[full]
            placed.append((t, made[t], e + 1 - start[full], ends[e] - before[full] - 1))
            made[t] += 1
            start[full], before[full] = e + 1, ends[e]
        last = ~full & (start < stop[text])
        if last.any():
            t, words = text[last], stop[text[last]] - start[last]
            rest = ends[stop[t] - 1] - before[last] - 1
            join = (made[t] > 0) & (rest < size[t] // 2)
            merged.append((t[join], words[join], rest[join] + 1))
            t, words, rest = t[~join], words[~join], rest[~join]
            placed.append((t, made[t], words, rest))
            made[t] += 1
        going = full & (start < stop[text])
        text, start, before = text[going], start[going], before[going]
    first = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(made, out=first[1:])
    counts, chars = np.zeros(int(first[-1]), dtype=np.int64), np.zeros(int(first[-1]), dtype=np.int64)
    for t, k, words, width in placed:
        counts[first[t] + k], chars[first[t] + k] = words, width
    for t, words, width in merged:
        counts[first[t + 1] - 1] += words
        chars[first[t + 1] - 1] += width
    return counts, chars, first


def window_scan(texts: Sequence[str], classify) -> WindowScan:
    """A WindowScan from a classifier of window strings: `classify(windows)` -> (labels, probs)."""
    tokens, counts, chars, first = window_spans(texts)
    labels, probs = classify(_joined(tokens, counts))
    return WindowScan(first=first, chars=chars.astype(np.float64), labels=labels, probs=probs)


def windows(text: str, min_chars: int = WINDOW_CHARS, max_windows: int = MAX_WINDOWS) -> list[str]:
    """The text in consecutive windows of whole words of at least `min_chars` characters joined
    (character runs for scripts written without spaces), the last short piece joined to the one
    before. LID reads each window (`window_spans`).

    Fixed windows, not sentences: a switch of language inside a sentence (or in a text with no
    sentence marks, as Thai, or with marks a splitter does not know) still leaves whole windows in
    the other language.
    """
    words, counts, _, _ = window_spans([text], min_chars, max_windows)
    return _joined(words, counts)


def _joined(tokens: list[str], counts: np.ndarray) -> list[str]:
    """The window strings: each window's words (`counts` of them in turn) joined by spaces."""
    bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
    return [" ".join(tokens[a:b]) for a, b in zip(bounds, bounds[1:])]
