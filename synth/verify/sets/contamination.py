"""Overlap with evaluation sets: generated training rows must not contain benchmark text.

The usual decontamination test (GPT-3, Llama): n-grams of normalised words (13 by default) shared with
an evaluation set. Text in a script written without spaces (Thai, Khmer, Burmese, Lao, Tibetan,
Chinese, Japanese) has no words to count, so it is cut into character n-grams instead (50 by default,
about as much text as 13 English words). Each evaluation file's n-grams are held as one sorted
numpy array of 64-bit hashes (8 bytes an n-gram), so large sets fit and a lookup is a binary search.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from synth.loading import check_parquet, iter_jsonl, iter_lines
from synth.text import dominant_unspaced, fold, gap_pattern
from synth.verify.base import Candidate, Filter
from synth.verify.grams import gram_hashes


def _tokens(text: str, ngram: int, char_ngram: int) -> tuple[np.ndarray, int]:
    """Token hashes of a text and the n-gram size that goes with them: words, or characters (without
    spaces and punctuation) for unspaced scripts. Word hashes are Python's str hash: stable within a
    process, which is all that is needed, since a filter hashes its evaluation sets and its candidates
    in the same process."""
    folded = fold(text)  # composed or not, full- or half-width: the same
    gaps = gap_pattern()  # punctuation of every script, symbols, spaces; combining marks stay in their words
    if dominant_unspaced(text):
        # surrogatepass: any Python string hashes (a JSON escape in an evaluation set, or text from the API,
        # may decode to a lone surrogate)
        codes = np.frombuffer(gaps.sub("", folded).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
        with np.errstate(over="ignore"):
            return (codes + np.uint64(0xC0FFEE)) * np.uint64(0x9E3779B97F4A7C15), char_ngram  # never a word's hash
    return np.array([hash(w) for w in gaps.split(folded) if w], dtype=np.int64).view(np.uint64), ngram


def batch_ngram_hashes(texts: Sequence[str], ngram: int, char_ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, row): the distinct n-gram hashes of every text, and the index of the text each belongs
    to. One pass over the whole batch: the texts' tokens are concatenated, and windows that cross from
    one text into the next are dropped."""
    parts, sizes = zip(*(_tokens(t, ngram, char_ngram) for t in texts)) if texts else ((), ())
    hashes, rows = [], []
    for size in set(sizes):  # words and characters: one pass each
        chosen = [i for i, s in enumerate(sizes) if s == size and parts[i].size >= size]
        if not chosen:
            continue
        lengths = np.array([parts[i].size for i in chosen])
        owner = np.repeat(np.array(chosen), lengths)
        tokens = np.concatenate([parts[i] for i in chosen])
        windows = gram_hashes(tokens, np.arange(tokens.size - size + 1), size)
        inside = owner[size - 1:] == owner[:owner.size - size + 1]
        hashes.append(windows[inside])
        rows.append(owner[:owner.size - size + 1][inside])
    if not hashes:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    hashes, rows = np.concatenate(hashes), np.concatenate(rows)
    order = np.lexsort((hashes, rows))
    hashes, rows = hashes[order], rows[order]
    distinct = np.ones(hashes.size, dtype=bool)
    distinct[1:] = (hashes[1:] != hashes[:-1]) | (rows[1:] != rows[:-1])
    return hashes[distinct], rows[distinct]


def ngram_hashes(text: str, ngram: int, char_ngram: int) -> np.ndarray:
    """Distinct n-gram hashes of one text (sorted)."""
    return batch_ngram_hashes([text], ngram, char_ngram)[0]


def _strings(value) -> Iterator[str]:
    """Every string inside a JSON value (messages, question/answer fields, choices, ...)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def read_eval_texts(path: Path) -> Iterator[str]:
    """Texts of an evaluation file: JSONL (every string of each record), Parquet (every string of
    each row, nested columns included), or plain text (one text per line)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        for _, value in iter_jsonl(path, "evaluation set"):
            yield from _strings(value)
    elif suffix == ".parquet":
        import polars as pl

        check_parquet(path, "evaluation set")
        for row in pl.read_parquet(path).iter_rows():
            yield from _strings(list(row))
    else:
        yield from (line for _, line in iter_lines(path, "evaluation set"))


@dataclass
class EvalSet:
    path: Path
    hashes: np.ndarray  # sorted, distinct

    def contains(self, grams: np.ndarray) -> np.ndarray:
        if not self.hashes.size or not grams.size:
            return np.zeros(grams.size, dtype=bool)
        at = np.minimum(np.searchsorted(self.hashes, grams), self.hashes.size - 1)
        return self.hashes[at] == grams


def load_eval_set(path: Path, ngram: int, char_ngram: int, batch: int = 2_000) -> EvalSet:
    parts, texts = [], []
    for text in read_eval_texts(path):
        texts.append(text)
        if len(texts) == batch:
            parts.append(batch_ngram_hashes(texts, ngram, char_ngram)[0])
            texts = []
    parts.append(batch_ngram_hashes(texts, ngram, char_ngram)[0])
    return EvalSet(path, np.unique(np.concatenate(parts)))


class ContaminationFilter(Filter):
    """Share of the candidate's n-grams found in any evaluation set. Lower is better; the default
    threshold 0 rejects a row sharing a single 13-gram (or character 50-gram) with a benchmark.
    Rows shorter than one n-gram score 0: they cannot contain one."""

    name = "contamination"
    higher_is_better = False
    default_threshold = 0.0
    description = "share of the candidate's word 13-grams (character 50-grams if unspaced) found in the evaluation sets"

    def __init__(self, paths: Sequence[str | Path], ngram: int = 13, char_ngram: int = 50, **kwargs):
        super().__init__(**kwargs)
        self.ngram, self.char_ngram = ngram, char_ngram
        self.sets = [load_eval_set(Path(p), ngram, char_ngram) for p in paths]

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        grams, rows = batch_ngram_hashes([c.text for c in batch], self.ngram, self.char_ngram)
        found = np.zeros(grams.size, dtype=bool)
        hits = []
        for eval_set in self.sets:
            hit = eval_set.contains(grams)
            found |= hit
            hits.append(np.bincount(rows[hit], minlength=len(batch)))
        total = np.bincount(rows, minlength=len(batch))
        share = np.bincount(rows[found], minlength=len(batch)) / np.maximum(total, 1)
        self._worst: dict[str, str] = {}  # candidate id -> the evaluation file with most hits, for the reject detail
        if hits:
            per_set = np.stack(hits)
            for i in np.flatnonzero(per_set.sum(axis=0)):
                self._worst[batch[i].id] = self.sets[int(per_set[:, i].argmax())].path.name
        return [float(x) for x in share]  # rows shorter than one n-gram: 0 (they cannot contain one)

    def explain_candidate(self, candidate: Candidate, score: float) -> str:
        where = self._worst.get(candidate.id, "an evaluation set")
        return (f"contamination: {score:.1%} of its n-grams found in {where} "
                f"(> {self.threshold_for(candidate.lang):.1%})")
