"""`fluency` from independent word lists, for languages neither a Hunspell dictionary nor XLM-R covers.

Two kinds of list, per language (fluency_words.json; bench/fluency_wordlists.py builds both from
packages independent of every benchmark, never from the UDHR, and names each source and licence):

- lexicon: the words of a dictionary, a morphological analyser's word forms or an OCR model's word
  list. Scored as fluency's Hunspell backend scores (fluency.Scorer: the share of the letters in known
  words or known beginnings, above what random letters drawn from the list's own letters score), so
  0 is chance and 1 every word known, and the filter's bar means the same.
- charlm: where no lexicon knows enough of the language's words (Zulu writes a whole phrase as one
  word), a character 5-gram model (Witten-Bell interpolation) of a real text's words. A text's level
  is the letter-weighted mean log-probability per character of its words of 4+ letters; the score
  places it between two references measured when the list was built, as fluency_subword does: 0 at
  pseudo-words drawn from the text's letter statistics, 1 at words of the text the model was not
  trained on (a held-out fifth of its word types: real words it has not seen, as in new text).

A lexicon's chance profile is computed once per machine and cached under the synth cache.

Words are compared folded: NFC, lower case, one apostrophe, and per language the marks its list does
not write (FOLDS). A language without a list, or whose character model's references are under MIN_GAP
apart, is not covered: None, never a pass.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import random
import unicodedata
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from synth.languages import LanguageSpec
from synth.paths import cache_dir, save_cached
from synth.verify.fluency import LONGEST, PROFILE_VERSION, Scorer, chance_profile, remembered
from synth.verify.fluency_subword import LevelScorer

REFERENCES = Path(__file__).with_name("fluency_words.json")  # bench/fluency_wordlists.py writes it
DATA_DIR = Path(__file__).with_name("fluency_words")
ORDER = 5  # characters of context + 1: a trigram model draws the pseudo-words this must tell apart
# Nats per character between a character model's two references, below which it is not covered: its
# real-text reference (unseen words) must sit well above pseudo-words for the midpoint to mean anything.
MIN_GAP = 1.0
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2018": "'", "`": "'"})
# Marks a language's list does not write, dropped from both sides. Hausa: the hooked letters (ɓ ɗ ƙ, and
# ƴ also written 'y) of the official orthography, which the Hausa dictionary writes as b d k y. Yoruba: the
# tone marks (grave, acute, macron; the OCR word list has the underdots of ẹ ọ ṣ but not the tones).
FOLDS: dict[str, dict[str, str]] = {
    "hau_Latn": {"ɓ": "b", "ɗ": "d", "ƙ": "k", "ƴ": "y", "'y": "y"},
    "yor_Latn": {"\u0300": "", "\u0301": "", "\u0304": ""},
}


def fold(word: str, code: str) -> str:
    """`word` as the language's list writes it (see FOLDS)."""
    word = unicodedata.normalize("NFC", word).lower().translate(_APOSTROPHES)
    table = FOLDS.get(code)
    if table:
        word = unicodedata.normalize("NFD", word)
        for mark, plain in table.items():
            word = word.replace(unicodedata.normalize("NFD", mark), plain)
        word = unicodedata.normalize("NFC", word)
    return word


@lru_cache(maxsize=1)
def references() -> dict[str, dict]:
    """Language code -> its list's entry (kind, source, file; a character model's references)."""
    if not REFERENCES.is_file():
        return {}
    return json.loads(REFERENCES.read_text(encoding="utf-8"))["languages"]


def _entry(spec: LanguageSpec) -> dict | None:
    entry = references().get(spec.code)
    if entry is None or not (DATA_DIR / entry["file"]).is_file():
        return None
    if entry["kind"] == "charlm" and entry["real"] - entry["pseudo"] < MIN_GAP:
        return None
    return entry


def words_coverage(spec: LanguageSpec) -> str | None:
    """"word list (PACKAGE)" or "char 5-gram lm (PACKAGE)" where this backend covers the language, else None."""
    entry = _entry(spec)
    if entry is None:
        return None
    kind = "word list" if entry["kind"] == "lexicon" else f"char {ORDER}-gram lm"
    return f"{kind} ({entry['package']})"


def _lines(entry: dict) -> list[str]:
    return lzma.decompress((DATA_DIR / entry["file"]).read_bytes()).decode("utf-8").split("\n")


class WordList:
    """A lexicon as a set of folded words, answering `word in lexicon` like fluency.Lexicon."""

    def __init__(self, entries: list[str], code: str):
        self.words = frozenset(entries)
        self.code = code
        self.known: dict[str, bool] = {}

    def __contains__(self, word: str) -> bool:
        return remembered(self.known, word, self._lookup)

    def _lookup(self, word: str) -> bool:
        return fold(word, self.code) in self.words


class LexiconScorer(Scorer):
    """fluency's Hunspell score, with a word list as the lexicon."""

    def __init__(self, entry: dict, code: str):  # not super().__init__: that reads a Hunspell dictionary
        entries = [w for w in _lines(entry) if w]
        lexicon = WordList(entries, code)
        self._use(lexicon, _chance(entry, code, lexicon, entries))


def _chance(entry: dict, code: str, lexicon: WordList, entries: list[str]) -> dict[str, float]:
    """The list's chance profile (fluency.chance_profile), computed once per machine and list and cached
    under the synth cache as fluency's Hunspell profiles are."""
    path = DATA_DIR / entry["file"]
    stat = path.stat()
    key = hashlib.sha256(f"{PROFILE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|"
                         f"{FOLDS.get(code)}".encode()).hexdigest()[:16]
    cached = cache_dir() / "fluency" / f"words-{code}-{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    rng = random.Random(0)
    chance = {str(n): p for n, p in chance_profile(rng.sample(entries, min(30_000, len(entries))), lexicon, rng).items()}
    save_cached(cached, json.dumps(chance).encode("utf-8"))
    return chance


class CharModel:
    """Character ORDER-gram model of words (counts), Witten-Bell interpolated down to a uniform
    distribution over the characters seen plus one for an unseen one."""

    def __init__(self, counts: Counter):
        follow: list[dict[str, Counter]] = [defaultdict(Counter) for _ in range(ORDER)]
        for word, n in counts.items():
            padded = "^" * (ORDER - 1) + word + "$"
            for i in range(ORDER - 1, len(padded)):
                for k in range(ORDER):
                    follow[k][padded[i - k:i]][padded[i]] += n
        self.uniform = 1.0 / (len(follow[0][""]) + 1)
        # context -> (its count, its distinct followers, follower counts)
        self.tables = [{ctx: (sum(c.values()), len(c), dict(c)) for ctx, c in table.items()} for table in follow]

    def logprob_per_char(self, word: str) -> float:
        """Log-probability of `word` and its end, per character of the word."""
        padded = "^" * (ORDER - 1) + word + "$"
        total = 0.0
        for i in range(ORDER - 1, len(padded)):
            p = self.uniform
            for k in range(ORDER):
                found = self.tables[k].get(padded[i - k:i])
                if found is None:
                    break
                n, distinct, follow = found
                p = (follow.get(padded[i], 0) + distinct * p) / (n + distinct)
            total += math.log(p)
        return total / max(1, len(word))

    def level(self, items: list[str]) -> float:
        """Letter-weighted mean log-probability per character of `items`."""
        return sum(len(w) * self.logprob_per_char(w) for w in items) / sum(map(len, items))


class CharScorer(LevelScorer):
    """One language, its words measured by the character model of its list."""

    def __init__(self, entry: dict, spec: LanguageSpec):
        super().__init__(entry["real"], entry["pseudo"], spec.script)
        counts = Counter({w: int(n) for w, n in (line.split("\t") for line in _lines(entry) if line)})
        self.model = CharModel(counts)
        self.code = spec.code

    def logprob(self, word: str) -> float:
        return self.model.logprob_per_char(fold(word, self.code))


_SCORERS: dict[str, LexiconScorer | CharScorer | None] = {}


def words_scorer(spec: LanguageSpec) -> LexiconScorer | CharScorer | None:
    """One per language and process (every Verifier shares it); None where this backend does not cover it."""
    if spec.code not in _SCORERS:
        entry = _entry(spec)
        if entry is None:
            _SCORERS[spec.code] = None
        elif entry["kind"] == "lexicon":
            _SCORERS[spec.code] = LexiconScorer(entry, spec.code)
        else:
            _SCORERS[spec.code] = CharScorer(entry, spec)
    return _SCORERS[spec.code]
