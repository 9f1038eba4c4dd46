"""Does a translation belong to its source? Evidence that survives translation, counted cheaply.

A translation paired with the wrong source (a shifted batch, a model answering another request, a
misaligned corpus) is fluent text in the right language and script: every other cheap filter passes
it, and the meaning filters need LASER weights, a back-translation or a transformer pass. What a
faithful translator keeps whatever the language: the numbers (in any digit system), the list items,
the questions, roughly the number of sentences, and roughly the amount of content. Content is counted
in romanised letters (`anyascii`, per code point): a syllabary (Ethiopic), an abugida (Devanagari,
whose vowel signs are characters of their own) or an abjad (Arabic, no short vowels) then weighs about
what its Latin transliteration does, without a per-language table.

Each piece of evidence is divided by what a faithful translation may do (the tolerances below, a
policy, not fitted): 1.0 is at the edge. The score is the largest of them, so a row is rejected for
one clear disagreement, never for several small ones. Rows without a source (ICL rows) score None.
Cost: a few table lookups over the batch's code points (numpy), a regex only on texts holding digits
or line breaks (bench/README.md has the figures).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from functools import cache
from typing import Sequence

import numpy as np
import regex

from synth.text import CLOSERS, ETHIOPIC_STOP, LIST_ITEM, SENTENCE_MARKS, _NEEDS_SPACE, _chars, numbers
from synth.verify.base import Candidate, Filter

LENGTH_TOLERANCE = math.log(2.0)  # romanised letters: twice as many or half as many is not a translation
LENGTH_SLACK = 10  # letters added to both sides: a two-word answer may double without saying anything
COUNT_SLACK = 2  # sentences, questions or list items a translation may split, merge or drop...
COUNT_SHARE = 0.2  # ...plus one per five of them
NUMBER_SHARE = 0.5  # the source's numbers: at most half of them missing from the translation...
NUMBER_MIN = 2  # ...and one alone (spelled out: "3" as "three") is never evidence

_MARK, _NEEDS, _CLOSER, _SPACE, _QUESTION = 1, 2, 4, 8, 16
_UNKNOWN, _DECIMAL = 255, 128  # the lazy table: not looked up yet; a decimal digit
_ITEMS = re.compile(LIST_ITEM.pattern, re.M)


class _Tables:
    """Per code point: the punctuation classes above (from synth.text's definitions, whose character
    lists the `truncated` filter has already built) and the number of letters and digits of its
    romanisation, looked up the first time a batch holds the code point."""

    def __init__(self):
        marks = _chars(SENTENCE_MARKS)
        closers_and_spaces = _chars(CLOSERS + r"\s")
        self.classes = np.zeros(0x110000, dtype=np.uint8)
        for chars, bit in ((marks, _MARK), (regex.sub(rf"[^{_NEEDS_SPACE}]", "", marks), _NEEDS),
                           ("".join(c for c in closers_and_spaces if not c.isspace()), _CLOSER),
                           ("".join(c for c in closers_and_spaces if c.isspace()) + "\x00", _SPACE),
                           ("".join(c for c in marks if "QUESTION" in unicodedata.name(c, "")
                                    and "INVERTED" not in unicodedata.name(c, "")), _QUESTION)):
            self.classes[np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)] |= bit
        self.lazy = np.full(0x110000, _UNKNOWN, dtype=np.uint8)  # romanised letters | _DECIMAL

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """Per code point: the letters and digits of its romanisation (anyascii), plus _DECIMAL for a
        decimal digit of any script; each code point worked out once per process."""
        found = self.lazy.take(codes)
        missing = found == _UNKNOWN
        if missing.any():
            from anyascii import anyascii

            for code in np.unique(codes[missing]).tolist():
                ch = chr(code) if not 0xD800 <= code <= 0xDFFF else "?"
                letters = min(sum(c.isalnum() for c in anyascii(ch)), _DECIMAL - 1)
                self.lazy[code] = letters | (_DECIMAL if ch.isdecimal() else 0)
            found = self.lazy.take(codes)
        return found


@cache
def _tables() -> _Tables:
    return _Tables()


def structure(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Per text: romanised letters, sentence ends (a mark, closers after it, then a space before more
    text, or a mark of a script that needs no space before the next word: synth.text's SENTENCE_BREAK,
    counted over code points), question marks, whether it holds any sentence mark, list items."""
    t = _tables()
    count = len(texts)
    if any("\x00" in text for text in texts):  # a NUL inside a text: a space (NUL separates the texts)
        texts = [text.replace("\x00", " ") for text in texts]
    # joined by NUL, four more after the last text: whatever follows a mark is inside the array
    codes = np.frombuffer(("\x00".join(texts) + "\x00" * 4).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=count)
    starts = np.cumsum(lengths + 1) - lengths - 1
    # the last character of each text that is not a space (before it: -1 past its start)
    last_visible = starts - 1 + np.fromiter((len(text.rstrip()) for text in texts), dtype=np.int64, count=count)
    classes = t.classes.take(codes)
    lazy = t.lookup(codes)
    at = np.flatnonzero(classes & _MARK)
    text_of = np.searchsorted(starts, at, side="right") - 1  # each mark's text
    follow = at + 1  # what follows each mark once closing quotes and brackets are skipped
    for _ in range(3):
        closer = (classes[follow] & _CLOSER) != 0
        if not closer.any():
            break
        follow += closer
    after = classes[follow]
    # a mark ends a sentence where it ends a run of marks, text follows in the same text, and a space
    # comes first or the mark is one that never stands inside a word (。 । ።)
    more_text = follow <= last_visible[text_of]
    ends_here = ((after & _MARK) == 0) & more_text & (((after & _SPACE) != 0) | ((classes[at] & _NEEDS) == 0))
    # two Ethiopic wordspaces, the full stop of older Ethiopic text, end a sentence before a space
    first, second = (np.uint32(ord(c)) for c in ETHIOPIC_STOP)
    stops = np.flatnonzero(codes == first)
    stops = stops[codes[stops + 1] == second] + 1  # the array ends in NULs: stops + 1 stays inside
    if stops.size:
        stop_text = np.searchsorted(starts, stops, side="right") - 1
        text_of = np.concatenate((text_of, stop_text))
        spaced = ((classes[stops + 1] & _SPACE) != 0) & (stops + 1 <= last_visible[stop_text])
        ends_here = np.concatenate((ends_here, spaced))
        at = np.concatenate((at, stops))
    digits = np.flatnonzero(lazy & _DECIMAL)
    out = {
        # summed per text without a running total over every code point (memory, not arithmetic, is the cost)
        "letters": np.add.reduceat(lazy & (_DECIMAL - 1), starts, dtype=np.int64) if count else np.zeros(0, np.int64),
        "digits": np.bincount(np.searchsorted(starts, digits, side="right") - 1, minlength=count) > 0,
        "sentences": np.bincount(text_of[ends_here], minlength=count) + 1,
        "questions": np.bincount(text_of[(classes[at] & _QUESTION) != 0], minlength=count),
        "marked": np.bincount(text_of, minlength=count) > 0,
        "items": np.zeros(count, dtype=np.int64),
    }
    for i, text in enumerate(texts):
        if "\n" in text:
            out["items"][i] = len(_ITEMS.findall(text))
    return out


def _count_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| over what a faithful translation may change of a count (COUNT_SLACK, COUNT_SHARE)."""
    return np.abs(a - b) / (COUNT_SLACK + COUNT_SHARE * np.maximum(a, b))


def number_gap(source: str, text: str) -> tuple[float, Counter, Counter]:
    """The share of the source's numbers missing from the text over NUMBER_SHARE (0 below NUMBER_MIN
    missing), and which are missing and which the text adds. As in synth.methods.structure's check,
    only missing numbers count: a translation may add one ("a dozen" written 12, "1." before a clause)."""
    ours, theirs = Counter(numbers(source)), Counter(numbers(text))
    missing, added = ours - theirs, theirs - ours
    lost = sum(missing.values())
    if lost < NUMBER_MIN:
        return 0.0, missing, added
    return lost / sum(ours.values()) / NUMBER_SHARE, missing, added


def evidence(sources: Sequence[str], texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Each kind of evidence per pair, 1.0 at its tolerance: length, sentences, questions, items,
    numbers. Sentence counts are compared only where both texts hold a sentence mark (Thai and Lao end
    sentences with a space), question counts only where the candidate holds a question mark (Burmese
    ends a question with its full stop, Thai with a particle): a language that does not mark them says
    nothing about them."""
    n = len(texts)
    distinct = list(dict.fromkeys(sources))  # one source, many target languages: counted once
    at = {s: i for i, s in enumerate(distinct)}
    both = structure(list(texts) + distinct)
    which = n + np.fromiter(map(at.__getitem__, sources), dtype=np.int64, count=n)
    cand = {k: v[:n] for k, v in both.items()}
    src = {k: v[which] for k, v in both.items()}
    marked = cand["marked"] & src["marked"]
    out = {
        "length": np.abs(np.log((cand["letters"] + LENGTH_SLACK) / (src["letters"] + LENGTH_SLACK))) / LENGTH_TOLERANCE,
        "sentences": np.where(marked, _count_gap(cand["sentences"], src["sentences"]), 0.0),
        "questions": np.where(cand["questions"] > 0, _count_gap(cand["questions"], src["questions"]), 0.0),
        "items": _count_gap(cand["items"], src["items"]),
        "numbers": np.zeros(n),
    }
    for i in np.flatnonzero(src["digits"]).tolist():
        out["numbers"][i] = number_gap(sources[i], texts[i])[0]
    return out


class StructureMismatchFilter(Filter):
    """How far the candidate's countable structure departs from its source's; see the module doc."""

    name = "structure_mismatch"
    higher_is_better = False
    default_threshold = 1.0
    description = ("largest disagreement with the source in numbers, list items, questions, sentences or "
                   "romanised length, over what a faithful translation may change (1 = at the tolerance)")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        _tables()  # in `synth verify`'s parent, before it forks the workers
        self._worst: dict[int, str] = {}  # the last batch's rows (by object): which evidence was largest

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        rows = [i for i, c in enumerate(batch) if c.source and c.source.strip()]
        out: list[float | None] = [None] * len(batch)
        self._worst = {}
        if not rows:
            return out
        found = evidence([batch[i].source for i in rows], [batch[i].text for i in rows])
        kinds = list(found)
        stacked = np.stack([found[k] for k in kinds])
        worst, which = stacked.max(axis=0), stacked.argmax(axis=0)
        for i, value, kind in zip(rows, worst.tolist(), which.tolist()):
            out[i] = value
            if value > 1:
                self._worst[id(batch[i])] = kinds[kind]
        return out

    def explain_candidate(self, candidate: Candidate, score: float) -> str:
        kind = self._worst.get(id(candidate))
        if kind is None:  # not from the last batch scored: work it out again
            found = {k: float(v[0]) for k, v in evidence([candidate.source], [candidate.text]).items()}
            kind = max(found, key=found.get)
        said = f"{self.name} {score:.2f} > {self.threshold_for(candidate.lang):.2f}: {kind}"
        if kind == "numbers":
            _, missing, added = number_gap(candidate.source, candidate.text)
            return said + f" (missing {', '.join(sorted(missing.elements())) or '-'}; added " \
                          f"{', '.join(sorted(added.elements())) or '-'})"
        if kind == "length":
            return said + " (romanised letters differ beyond x2)"
        return said + " count differs beyond the tolerance"
