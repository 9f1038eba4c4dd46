"""`fluency` from independent word lists, for languages neither a Hunspell dictionary nor XLM-R covers.

Two kinds of list, per language (fluency_words.json; bench/fluency_wordlists.py builds both from
packages independent of every benchmark, never from the UDHR, and names each source and licence):

- lexicon: the words of a dictionary, a morphological analyser's word forms or an OCR model's word
  list. Scored as fluency's Hunspell backend scores (fluency.Scorer: the share of the letters in known
  words or known beginnings, above what random letters drawn from the list's own letters score), so
  0 is chance and 1 every word known, and the filter's bar means the same. For an agglutinative
  language (Quechua) a list cannot hold every stem with every chain of suffixes, so its entry may also
  name endings: the word-final strings that the list itself attests after many distinct known stems.
  A word is then also known as a known word of MIN_STEM+ letters followed by one of them.
- charlm: where no lexicon knows enough of the language's words (Zulu writes a whole phrase as one
  word; Telugu's agglutinated forms are too many for any list), a character 5-gram model (Witten-Bell
  interpolation) of a real text's words, or of a large word list's (one count per word). A text's level
  is the letter-weighted mean log-probability per character of its words of 4+ letters; the score
  places it between two references measured when the list was built, as fluency_subword does: 0 at
  pseudo-words drawn from the text's letter statistics, 1 at words of the text the model was not
  trained on (a held-out fifth of its word types: real words it has not seen, as in new text).

A lexicon's chance profile, and a character model's tables, are computed once per machine and cached
under the synth cache.

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

import numpy as np

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
MODEL_VERSION = 1  # of a cached character model's tables
MIN_STEM = 5  # letters of the known word before an ending (lexicons with endings)
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
    if entry is None or not all((DATA_DIR / entry[k]).is_file() for k in ("file", "endings_file") if k in entry):
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


def _lines(entry: dict, key: str = "file") -> list[str]:
    return lzma.decompress((DATA_DIR / entry[key]).read_bytes()).decode("utf-8").split("\n")


class WordList:
    """A lexicon as a set of folded words, answering `word in lexicon` like fluency.Lexicon; with
    `endings`, a known word of MIN_STEM+ letters followed by one of them is known too."""

    def __init__(self, entries: list[str], code: str, endings: list[str] = ()):
        self.words = frozenset(entries)
        self.endings = frozenset(endings)
        self.code = code
        self.known: dict[str, bool] = {}

    def __contains__(self, word: str) -> bool:
        return remembered(self.known, word, self._lookup)

    def _lookup(self, word: str) -> bool:
        word = fold(word, self.code)
        if word in self.words:
            return True
        return bool(self.endings) and any(word[i:] in self.endings and word[:i] in self.words
                                          for i in range(MIN_STEM, len(word)))


class LexiconScorer(Scorer):
    """fluency's Hunspell score, with a word list as the lexicon."""

    def __init__(self, entry: dict, code: str):  # not super().__init__: that reads a Hunspell dictionary
        entries = [w for w in _lines(entry) if w]
        endings = [e for e in _lines(entry, "endings_file") if e] if "endings_file" in entry else []
        lexicon = WordList(entries, code, endings)
        self._use(lexicon, _chance(entry, code, lexicon, entries))


def _chance(entry: dict, code: str, lexicon: WordList, entries: list[str]) -> dict[str, float]:
    """The list's chance profile (fluency.chance_profile), computed once per machine and list and cached
    under the synth cache as fluency's Hunspell profiles are."""
    files = [DATA_DIR / entry[k] for k in ("file", "endings_file") if k in entry]
    stats = "|".join(f"{f.resolve()}|{f.stat().st_size}|{f.stat().st_mtime_ns}" for f in files)
    key = hashlib.sha256(f"{PROFILE_VERSION}|{stats}|{MIN_STEM}|{FOLDS.get(code)}".encode()).hexdigest()[:16]
    cached = cache_dir() / "fluency" / f"words-{code}-{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    rng = random.Random(0)
    chance = {str(n): p for n, p in chance_profile(rng.sample(entries, min(30_000, len(entries))), lexicon, rng).items()}
    save_cached(cached, json.dumps(chance).encode("utf-8"))
    return chance


class CharModel:
    """Character ORDER-gram model of words (counts), Witten-Bell interpolated down to a uniform
    distribution over the characters seen plus one for an unseen one. Held as two flat tables (what
    the interpolation needs, nothing else), so that a model of a large list reads back from the synth
    cache quickly instead of being counted again."""

    def __init__(self, counts: Counter):
        follow: list[dict[str, Counter]] = [defaultdict(Counter) for _ in range(ORDER)]
        for word, n in counts.items():
            padded = "^" * (ORDER - 1) + word + "$"
            for i in range(ORDER - 1, len(padded)):
                for k in range(ORDER):
                    follow[k][padded[i - k:i]][padded[i]] += n
        self.uniform = 1.0 / (len(follow[0][""]) + 1)
        # Witten-Bell: p(c | context) = share[context + c] + weight[context] * p(c | context's last k-1),
        # share = count(context c) / (n + distinct), weight = distinct / (n + distinct)
        self.weight: dict[str, float] = {}
        self.share: dict[str, float] = {}
        for table in follow:
            for ctx, c in table.items():
                total = sum(c.values()) + len(c)
                self.weight[ctx] = len(c) / total
                for ch, n in c.items():
                    self.share[ctx + ch] = n / total

    def logprob_per_char(self, word: str) -> float:
        """Log-probability of `word` and its end, per character of the word."""
        padded = "^" * (ORDER - 1) + word + "$"
        weight, share = self.weight, self.share
        total = 0.0
        for i in range(ORDER - 1, len(padded)):
            p = self.uniform
            for k in range(ORDER):
                ctx = padded[i - k:i]
                w = weight.get(ctx)
                if w is None:
                    break
                p = share.get(ctx + padded[i], 0.0) + w * p
            total += math.log(p)
        return total / max(1, len(word))

    def level(self, items: list[str]) -> float:
        """Letter-weighted mean log-probability per character of `items`."""
        return sum(len(w) * self.logprob_per_char(w) for w in items) / sum(map(len, items))

    def dump(self) -> bytes:
        """The tables as bytes (`load` reads them): the uniform probability, the sizes, the values as
        float64 and the keys, NUL-separated (no word holds one)."""
        keys = "\x00".join([*self.weight, *self.share]).encode("utf-8")
        values = np.array([self.uniform, len(self.weight), len(self.share), *self.weight.values(),
                           *self.share.values()], dtype=np.float64)
        return np.int64(values.nbytes).tobytes() + values.tobytes() + keys

    @classmethod
    def load(cls, data: bytes) -> CharModel:
        size = int(np.frombuffer(data[:8], dtype=np.int64)[0])
        values = np.frombuffer(data[8:8 + size], dtype=np.float64).tolist()
        keys = data[8 + size:].decode("utf-8").split("\x00")
        model = cls.__new__(cls)
        model.uniform, n = values[0], int(values[1])
        model.weight = dict(zip(keys[:n], values[3:3 + n]))
        model.share = dict(zip(keys[n:], values[3 + n:]))
        return model


def _model(entry: dict) -> CharModel:
    """The list's character model, counted once per machine and list and cached under the synth cache
    (counting a list of 170,000 words takes seconds)."""
    path = DATA_DIR / entry["file"]
    stat = path.stat()
    key = hashlib.sha256(f"{MODEL_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = cache_dir() / "fluency" / f"charlm-{path.name.split('.')[0]}-{key}.bin"
    if cached.is_file():
        return CharModel.load(cached.read_bytes())
    model = CharModel(Counter({w: int(n) for w, n in (line.split("\t") for line in _lines(entry) if line)}))
    save_cached(cached, model.dump())
    return model


class CharScorer(LevelScorer):
    """One language, its words measured by the character model of its list."""

    def __init__(self, entry: dict, spec: LanguageSpec):
        super().__init__(entry["real"], entry["pseudo"], spec.script)
        self.model = _model(entry)
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
