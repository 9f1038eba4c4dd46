"""`fluency` from independent word lists, for languages neither a Hunspell dictionary nor XLM-R covers.

Two kinds of list, per language (fluency_words.json; bench/fluency_wordlists.py builds both from
packages independent of every benchmark, never from the UDHR, and names each source and licence):

- lexicon: the words of a dictionary, a morphological analyser's word forms or an OCR model's word
  list. Scored as fluency's Hunspell backend scores (scorer.WordScorer: the share of the letters in known
  words or known beginnings, above what random letters drawn from the list's own letters score), so
  0 is chance and 1 every word known, and the filter's bar means the same. For an agglutinative
  language (Quechua; Javanese and Sundanese stack affixes too, Assamese case endings) a list cannot
  hold every stem with every chain of suffixes, so its entry may also name endings: the word-final
  strings that the list itself attests after many distinct known stems.
  A word is then also known as a known word of MIN_STEM+ letters followed by one of them.
- charlm: where no lexicon knows enough of the language's words (Zulu and Xhosa write a whole phrase
  as one word; Telugu's and Oromo's agglutinated forms are too many for any list), a character 5-gram
  model (Witten-Bell interpolation) of a real text's words, or of a large word list's (one count per
  word). A text's level is the letter-weighted mean log-probability per character of its words of 4+ letters; the score
  places it between two references measured when the list was built, as subword.py does: 0 at
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
import random
import unicodedata
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from synth.languages import LanguageSpec
from synth.loading import json_value, load_json
from synth.paths import cache_dir, save_cached
from synth.verify.fluency.scorer import PROFILE_VERSION, WordScorer, chance_profile, remembered
from synth.verify.fluency.subword import LevelScorer
from synth.verify.grams import gram_hashes

REFERENCES = Path(__file__).with_name("fluency_words.json")  # bench/fluency_wordlists.py writes it
DATA_DIR = Path(__file__).with_name("fluency_words")
ORDER = 5  # characters of context + 1: a trigram model draws the pseudo-words this must tell apart
# Nats per character between a character model's two references, below which it is not covered: its
# real-text reference (unseen words) must sit well above pseudo-words for the midpoint to mean anything.
MIN_GAP = 1.0
MODEL_VERSION = 3  # of a cached character model's tables
MIN_STEM = 5  # letters of the known word before an ending (lexicons with endings)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2018": "'", "`": "'"})
# Marks a language's list does not write, dropped from both sides. Hausa: the hooked letters (ɓ ɗ ƙ, and
# ƴ also written 'y) of the official orthography, which the Hausa dictionary writes as b d k y. Yoruba: the
# tone marks (grave, acute, macron; the OCR word list has the underdots of ẹ ọ ṣ but not the tones).
# Javanese and Sundanese: the accents of é è ê, which writers and the lists use or leave out at will.
# Uzbek: the turned comma of oʻ gʻ (U+02BB), which the list writes as an apostrophe.
FOLDS: dict[str, dict[str, str]] = {
    "hau_Latn": {"ɓ": "b", "ɗ": "d", "ƙ": "k", "ƴ": "y", "'y": "y"},
    "yor_Latn": {"\u0300": "", "\u0301": "", "\u0304": ""},
    "jav_Latn": {"\u0300": "", "\u0301": "", "\u0302": ""},
    "sun_Latn": {"\u0300": "", "\u0301": "", "\u0302": ""},
    "uzn_Latn": {"\u02bb": "'"},
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
    return load_json(REFERENCES)["languages"]


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
    """A lexicon as a set of folded words, answering `word in lexicon` like dictionary.Lexicon; with
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


class LexiconScorer(WordScorer):
    """fluency's Hunspell score, with a word list as the lexicon."""

    def __init__(self, entry: dict, code: str):  # not super().__init__: that reads a Hunspell dictionary
        entries = [w for w in _lines(entry) if w]
        endings = [e for e in _lines(entry, "endings_file") if e] if "endings_file" in entry else []
        lexicon = WordList(entries, code, endings)
        self._use(lexicon, _chance(entry, code, lexicon, entries))


def _chance(entry: dict, code: str, lexicon: WordList, entries: list[str]) -> dict[str, float]:
    """The list's chance profile (scorer.chance_profile), computed once per machine and list and cached
    under the synth cache as fluency's Hunspell profiles are."""
    files = [DATA_DIR / entry[k] for k in ("file", "endings_file") if k in entry]
    stats = "|".join(f"{f.resolve()}|{f.stat().st_size}|{f.stat().st_mtime_ns}" for f in files)
    key = hashlib.sha256(f"{PROFILE_VERSION}|{stats}|{MIN_STEM}|{FOLDS.get(code)}".encode()).hexdigest()[:16]
    cached = cache_dir() / "fluency" / f"words-{code}-{key}.json"
    if cached.is_file():
        return json_value(cached.read_text(encoding="utf-8"))
    rng = random.Random(0)
    chance = {str(n): p for n, p in chance_profile(rng.sample(entries, min(30_000, len(entries))), lexicon, rng).items()}
    save_cached(cached, json.dumps(chance).encode("utf-8"))
    return chance


class CharModel:
    """Character ORDER-gram model of words (counts), Witten-Bell interpolated down to a uniform
    distribution over the characters seen plus one for an unseen one.

    Held as two tables of 64-bit string keys (`_keys`) and values (`KeyTable`), what the interpolation
    needs and nothing else: a model of a large list loads from the synth cache in milliseconds instead
    of being counted again or read into dicts, and a batch of words is scored in a few numpy passes."""

    def __init__(self, counts: Counter):
        follow: list[dict[str, Counter]] = [defaultdict(Counter) for _ in range(ORDER)]
        for word, n in counts.items():
            padded = "^" * (ORDER - 1) + word + "$"
            for i in range(ORDER - 1, len(padded)):
                for k in range(ORDER):
                    follow[k][padded[i - k:i]][padded[i]] += n
        # Witten-Bell: p(c | context) = share[context + c] + weight[context] * p(c | context's last k-1),
        # share = count(context c) / (n + distinct), weight = distinct / (n + distinct)
        weight: dict[str, float] = {}
        share: dict[str, float] = {}
        for table in follow:
            for ctx, c in table.items():
                total = sum(c.values()) + len(c)
                weight[ctx] = len(c) / total
                for ch, n in c.items():
                    share[ctx + ch] = n / total
        self.uniform = 1.0 / (len(follow[0][""]) + 1)
        self.weight, self.share = KeyTable.of(weight), KeyTable.of(share)

    def logprobs_per_char(self, words: list[str]) -> np.ndarray:
        """Log-probability of each word and its end, per character of the word."""
        if not words:
            return np.zeros(0)
        padded = ["^" * (ORDER - 1) + w + "$" for w in words]
        codes = np.frombuffer("".join(padded).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        sizes = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
        steps = sizes - (ORDER - 1)  # each character of the word and its end, in turn
        first = np.cumsum(steps) - steps
        at = np.arange(int(steps.sum()), dtype=np.int64) + np.repeat(np.cumsum(sizes) - sizes + ORDER - 1 - first, steps)
        back = np.repeat(np.arange(ORDER), at.size)  # every order's context at once: order k starts k back
        start = np.tile(at, ORDER) - back
        weights = self.weight.get(_keys(codes, start, back)).reshape(ORDER, at.size)
        shares = np.nan_to_num(self.share.get(_keys(codes, start, back + 1))).reshape(ORDER, at.size)
        p = np.full(at.size, self.uniform)
        known = np.ones(at.size, dtype=bool)  # the context so far is in the model
        for k in range(ORDER):
            known &= ~np.isnan(weights[k])
            p = np.where(known, shares[k] + weights[k] * p, p)
        return np.add.reduceat(np.log(p), first) / np.maximum(1, sizes - ORDER)

    def level(self, items: list[str]) -> float:
        """Letter-weighted mean log-probability per character of `items`."""
        lengths = np.fromiter(map(len, items), dtype=np.float64, count=len(items))
        return float((lengths * self.logprobs_per_char(items)).sum() / lengths.sum())

    def dump(self) -> bytes:
        """The tables as bytes (`load` reads them)."""
        weight, share = self.weight.dump(), self.share.dump()
        return np.array([self.uniform, len(weight)], dtype=np.float64).tobytes() + weight + share

    @classmethod
    def load(cls, data: bytes) -> CharModel:
        model = cls.__new__(cls)
        model.uniform, size = np.frombuffer(data[:16], dtype=np.float64).tolist()
        model.weight, model.share = KeyTable.load(data[16:16 + int(size)]), KeyTable.load(data[16 + int(size):])
        return model


_LENGTH_MIX = np.uint64(0xD6E8FEB86659FD93)


def _keys(codes: np.ndarray, at: np.ndarray, n) -> np.ndarray:
    """64-bit key of the string of n code points from each position (grams.gram_hashes, its length
    mixed in). Two strings share a key with odds of about 2^-64 per pair: a context would then borrow
    another's probability."""
    with np.errstate(over="ignore"):
        return gram_hashes(codes, at, n) ^ (np.asarray(n, dtype=np.uint64) * _LENGTH_MIX)


class KeyTable:
    """A read-only hash table of 64-bit keys and float values in three numpy arrays (linear probing,
    under half full): a lookup reads about one slot, where a binary search over a sorted table of the
    same keys read twenty, most of them cache misses."""

    def __init__(self, bits: int, keys: np.ndarray, values: np.ndarray, used: np.ndarray):
        self.bits = bits  # a key's home slot: its top bits
        self.keys, self.values, self.used = keys, values, used

    @classmethod
    def of(cls, values: dict[str, float]) -> KeyTable:
        strings = list(values)
        codes = np.frombuffer("".join(strings).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        sizes = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
        keys = _keys(codes, np.cumsum(sizes) - sizes, sizes)
        if np.unique(keys).size != keys.size:
            raise ValueError("two strings of the model share a key")  # odds of about 2^-64 per pair
        bits = max(4, (2 * len(strings)).bit_length())  # 2^bits >= 2 x the keys: under half full
        home = (keys >> np.uint64(64 - bits)).astype(np.int64)
        order = np.argsort(home, kind="stable")
        # linear probing laid out at once: in home order, each key takes its home or the slot after the
        # key before it, whichever is later (slots past the last home are an overflow, never wrapped)
        slot = np.maximum.accumulate(home[order] - np.arange(order.size)) + np.arange(order.size)
        size = max(1 << bits, int(slot[-1]) + 2 if slot.size else 1)
        table_keys, table_values, used = np.zeros(size, np.uint64), np.zeros(size), np.zeros(size, bool)
        table_keys[slot], used[slot] = keys[order], True
        table_values[slot] = np.fromiter(values.values(), dtype=np.float64, count=len(strings))[order]
        return cls(bits, table_keys, table_values, used)

    def get(self, wanted: np.ndarray) -> np.ndarray:
        """The values of the wanted keys; NaN for a key the table does not have."""
        out = np.full(wanted.size, np.nan)
        pending = np.arange(wanted.size)
        slot = (wanted >> np.uint64(64 - self.bits)).astype(np.int64)
        while pending.size:
            used = self.used[slot]
            hit = used & (self.keys[slot] == wanted[pending])
            out[pending[hit]] = self.values[slot[hit]]
            going = used & ~hit  # an empty slot ends the search: not there
            pending, slot = pending[going], slot[going] + 1
        return out

    def dump(self) -> bytes:
        return np.array([self.bits, self.used.size], dtype=np.int64).tobytes() + self.keys.tobytes() \
            + self.values.tobytes() + np.packbits(self.used).tobytes()

    @classmethod
    def load(cls, data: bytes) -> KeyTable:
        bits, size = np.frombuffer(data[:16], dtype=np.int64).tolist()
        keys = np.frombuffer(data[16:16 + 8 * size], dtype=np.uint64)
        values = np.frombuffer(data[16 + 8 * size:16 + 16 * size], dtype=np.float64)
        used = np.unpackbits(np.frombuffer(data[16 + 16 * size:], dtype=np.uint8), count=size).astype(bool)
        return cls(bits, keys, values, used)


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

    def logprobs(self, words: list[str]) -> list[float]:
        return self.model.logprobs_per_char([fold(w, self.code) for w in words]).tolist()


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
