"""What every `fluency` backend shares: the words of a text that are looked up, per-word caches
bounded alike, and the score of a text by a lexicon (anything answering `word in lexicon`) above
chance, chance being what pseudo-words drawn from the lexicon's own letters score. The backends
(dictionary.py, subword.py, words.py) import this module; it imports none of them."""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import Counter, defaultdict
from functools import lru_cache

import numpy as np
import regex

from synth.text import WORD_SEPARATORS, prose, re_class_table

MIN_LETTERS = 4  # shorter words are not scored
STEM_SHARE = 0.7  # a known beginning this much of an unknown word counts (see known_letters)
LONGEST = 12  # chance is estimated per word length up to this; longer words share the last estimate
PROFILE_VERSION = 2
CACHE_WORDS = 200_000  # answers remembered per word cache of a language (`remembered`); then it starts again
_MISSING = object()


def remembered(cache: dict, key: str, compute):
    """cache[key], computed once: every per-word cache of the fluency backends, bounded alike."""
    value = cache.get(key, _MISSING)
    if value is _MISSING:
        if len(cache) >= CACHE_WORDS:
            cache.clear()
        value = cache[key] = compute(key)
    return value


def word_sums(cache: dict, words: list[str], measure) -> list[tuple]:
    """Each of a text's words' part of a scorer's sums (a tuple), from `cache`; the words not in it are
    measured together, `measure(new_words)`, and remembered (bounded as `remembered` is). A text of
    words seen before costs one dict lookup per word, in C."""
    get = cache.get
    found = [get(word) for word in words]
    if None in found:
        new = list(dict.fromkeys(word for word, part in zip(words, found) if part is None))
        if len(cache) + len(new) > CACHE_WORDS:
            cache.clear()
        cache.update(zip(new, measure(new)))
        found = [get(word) for word in words]
    return found


@lru_cache(maxsize=1)
def _word_pattern() -> regex.Pattern:
    """A looked-up word: from the first to the last letter or mark of a run without a separator of
    synth.text.words (what str.split splits on, the Ethiopic wordspace, NUL), a hyphen or dash, a
    slash or a digit of any script in it. One regex pass per text finds what splitting on those, then
    stripping what is not a letter or mark at either end, would leave (tests/verify/test_fluency.py
    holds the two equal)."""
    spaces = "".join(map(chr, np.flatnonzero(re_class_table(r"\s")).tolist())) + WORD_SEPARATORS
    return regex.compile(r"[\p{L}\p{M}](?:[^%s\-‐‑–—/_·\d]*[\p{L}\p{M}])?" % regex.escape(spaces))


def words(text: str) -> list[str]:
    """The words of `text` that are looked up: whitespace-separated (Ethiopic wordspace too), parts
    of hyphenated compounds and runs of letters around digits apart, punctuation around them
    dropped, code and URLs skipped."""
    return _word_pattern().findall(prose([text])[0])


_FORMAT = re.compile("[\u200b-\u200d\u2060\ufeff\u00ad]")  # zero-width (non-)joiners, soft hyphen


def known_letters(word: str, lexicon) -> int:
    """Letters of `word` in a known word: all of them, or those of its longest known beginning when
    that is at least STEM_SHARE of it (a stem with an ending or clitic the dictionary lacks: Tamil
    -um, Telugu -lō)."""
    if word in lexicon:
        return len(word)
    for end in range(len(word) - 1, max(MIN_LETTERS, math.ceil(STEM_SHARE * len(word))) - 1, -1):
        if word[:end] in lexicon:
            return end
    return 0


def _pseudo_words(entries: list[str], count: int, rng: random.Random) -> list[str]:
    """Words drawn from a character trigram model of `entries`: the dictionary's letter statistics."""
    follow: dict[str, Counter] = defaultdict(Counter)
    for entry in entries:
        padded = "^^" + entry.lower() + "$"
        for i in range(2, len(padded)):
            follow[padded[i - 2:i]][padded[i]] += 1
    table = {k: (list(v), list(itertools.accumulate(v.values()))) for k, v in follow.items()}
    out = []
    for _ in range(count):
        word, context = "", "^^"
        while len(word) < 3 * LONGEST:
            keys, weights = table.get(context, ((), ()))
            if not keys:
                break
            ch = rng.choices(keys, cum_weights=weights)[0]
            if ch == "$":
                break
            word += ch
            context = context[1] + ch
        if word:
            out.append(word)
    return out


def chance_profile(entries: list[str], lexicon, rng: random.Random) -> dict[int, float]:
    """Per word length, the share of the letters of pseudo-words drawn from `entries`' letters that
    `lexicon` (anything answering `word in lexicon`) knows: what random letters score."""
    hits, seen = Counter(), Counter()
    for word in _pseudo_words(entries, 6000, rng):
        n = min(len(word), LONGEST)
        seen[n] += 1
        hits[n] += known_letters(word, lexicon) / len(word)
    return {n: (hits[n] + 0.5) / (seen[n] + 1) for n in range(1, LONGEST + 1)}  # smoothed


class WordScorer:
    """The share of a text's letters in words a lexicon knows, above chance: the Hunspell backend's
    score (dictionary.Scorer), kept by any backend with a lexicon (words.LexiconScorer)."""

    def _use(self, lexicon, chance: dict) -> None:
        """Score with `lexicon` (anything answering `word in lexicon`) and its chance profile."""
        self.lexicon = lexicon
        self.chance = [0.0] + [chance[str(n)] if str(n) in chance else chance[n] for n in range(1, LONGEST + 1)]
        self.sums: dict[str, tuple] = {}  # word -> its part of a text's sums: one lookup per word seen before

    def _measure(self, new: list[str]) -> list[tuple[int, float, int]]:
        """Each word's letters, the letters chance would know, and the letters known (all 0 for a word
        under MIN_LETTERS)."""
        chance, lexicon = self.chance, self.lexicon
        return [(len(w), len(w) * chance[min(len(w), LONGEST)], known_letters(w, lexicon)) if len(w) >= MIN_LETTERS
                else (0, 0.0, 0) for w in new]

    def score(self, text: str) -> float | None:
        """Known share of the letters of the words of 4+ letters, above chance, in [0, 1]; None
        without such words."""
        sums = word_sums(self.sums, words(text), self._measure)
        total, expected, known = map(sum, zip(*sums)) if sums else (0, 0.0, 0)
        if not total:
            return None
        chance = expected / total
        return max(0.0, (known / total - chance) / (1.0 - chance))
