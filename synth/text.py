"""What synth knows about text, in one place: the methods and the filters import it, never copy it.

- Sentence ends: Unicode's Sentence_Terminal characters (every script's full stops, question and
  exclamation marks: `. ! ? 。 ！ ？ । ॥ ۔ ؟ ። ။ ។ ։ ...`) plus the Tibetan shad and the ellipsis, which
  Unicode leaves out; where a long paragraph may be cut (after a sentence end, else a clause mark, else
  a space); which scripts end sentences without a mark (Thai, Lao).
- What is not prose: code (fenced blocks, `inline` spans), URLs, e-mail addresses.
- Scripts (ISO 15924): which characters count as letters of which script, from Unicode's Script and
  Script_Extensions properties as the `regex` module knows them; the scripts written without spaces.
- Normalisation for comparing texts: NFKC and case folding; the gaps between words (punctuation,
  symbols, spaces, controls and format characters).
- Well-formed text: no lone surrogates (see `well_formed`).

Tables over every code point are built from `regex` properties on first use, kept, and saved in
synth's cache (numpy lookups: a per-character regex walk would be the slowest part of verification).
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from functools import cache, lru_cache
from typing import Sequence

import numpy as np
import regex

from synth.paths import cache_dir, save_cached

# --- sentence ends ------------------------------------------------------------------------------

# Sentence-final marks of every script (a regex character-class body): the Tibetan shad and nyis shad
# and the ellipsis are not Sentence_Terminal in Unicode but end sentences in practice; the Burmese
# little section U+104A is, but is written where other scripts put a comma
SENTENCE_MARKS = r"[\p{Sentence_Terminal}\u0F0D\u0F0E\u2026--\u104A]"
# Marks that also occur inside words, numbers, abbreviations and URLs (3.14, 1,000, e.g., 10:30,
# www.x.org, wait…what): they end a sentence or clause only before a space. The others (。 ។ ። । ，...)
# end one wherever they stand.
_NEEDS_SPACE = r".!?,:;\u00B7\u037E\u0387\u0589\u2024\u2026\u203C\u203D\u2047-\u2049\uFE52\uFF0E"
# What may close a sentence after its mark: closing brackets and quotes, markdown emphasis, the
# Ethiopic wordspace, a zero-width space
CLOSERS = r"\p{Close_Punctuation}\p{Final_Punctuation}\"'*_\u1361\u200B"
# Ethiopic text often writes the full stop ። as two wordspaces (UDHR Tigrinya, older typesetting)
ETHIOPIC_STOP = "\u1361\u1361"
# Clause marks (commas, semicolons, colons of every script): where a sentence too long for one request is cut
CLAUSE_MARKS = r"\p{Terminal_Punctuation}\u3001\uFF0C\uFF1B\uFF1A"

# Scripts whose writers end sentences with a space, not a mark (UDHR Thai: no mark in any article)
NO_SENTENCE_MARK = frozenset({"Thai", "Laoo"})


def _break(marks: str) -> regex.Pattern:
    """Where text may be cut after one of `marks` (+ closers): the whitespace after it, or (for a mark
    that is never inside a word) the empty string before the next character."""
    return regex.compile(
        rf"(?<=[{marks}][{CLOSERS}]*)\s+(?=\S)"
        rf"|(?<=[[{marks}]--[{_NEEDS_SPACE}]][{CLOSERS}]*)(?=[^\s{CLOSERS}{marks}])",
        regex.V1,
    )


SENTENCE_BREAK = regex.compile(rf"{_break(SENTENCE_MARKS).pattern}|(?<={ETHIOPIC_STOP})\s+(?=\S)", regex.V1)
CLAUSE_BREAK = _break(CLAUSE_MARKS)
SPACE_BREAK = regex.compile(r"\s+(?=\S)")
# Where a paragraph longer than a request may hold is cut, best first
BREAKS = (SENTENCE_BREAK, CLAUSE_BREAK, SPACE_BREAK)


@cache
def _all_code_points() -> str:
    """Every code point but the surrogates, in order, as one string (to enumerate a property)."""
    codes = np.arange(0x110000, dtype=np.uint32)
    return codes[(codes < 0xD800) | (codes > 0xDFFF)].tobytes().decode("utf-32-le")


@cache
def _chars(klass: str) -> str:
    """Every character of a regex character class body, as one string."""
    return np.flatnonzero(_class_table(klass)).astype(np.uint32).tobytes().decode("utf-32-le")


def ends_sentence(text: str) -> bool:
    """The text ends with a sentence-final mark (closing quotes, brackets, emphasis and spaces ignored)."""
    stripped = text.rstrip(_chars(CLOSERS + r"\s"))
    if stripped and stripped[-1] in _chars(SENTENCE_MARKS):
        return True
    return text.rstrip(_chars(rf"[{CLOSERS}\s]--[\u1361]")).endswith(ETHIOPIC_STOP)


def cut_points(text: str, breaks: regex.Pattern = SENTENCE_BREAK) -> list[tuple[int, int]]:
    """(start, end) of each separator where `text` may be cut (empty for a mark needing no space)."""
    return [m.span() for m in breaks.finditer(text)]


# --- well-formed text ----------------------------------------------------------------------------

# A lone surrogate: what a JSON "\\ud800" escape decodes to. UTF-8 (so Parquet, Arrow, tokenizers) cannot
# encode any surrogate code point; JSON decoding joins a valid escaped pair into one astral code point.
_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, as a UTF-8 decoder replaces a bad byte.

    Model output and JSON parsed from it pass through this where they enter synth: one such character
    would otherwise stop the job where the row is hashed or written (dedup, Parquet)."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def lone_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in `text`, or None: user input holding one is refused by name."""
    found = None if text.isascii() else _SURROGATE.search(text)
    return found.start() if found else None


# --- numbers and list items --------------------------------------------------------------------

# A number: digits with group or decimal separators (1,000 = 1 000 = 1.000; 365.24 = 365,24); "1 2" is two
_NUMBER = re.compile(r"\d+(?:[.,'\u00a0\u202f]\d+| \d{3}(?!\d))*", re.UNICODE)
# A markdown list item's marker (-, *, +, 1., 1)) and task box, then its text
LIST_ITEM = re.compile(r"^([ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?)(.*)$")


def numbers(text: str) -> list[str]:
    """Digit strings of `text`, native digits mapped to ASCII, group and decimal separators dropped
    (1,000 = 1000 = 1 000; 365.24 = 365,24): a translation may localise their format, not their value."""
    ascii_digits = "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)
    return [re.sub(r"\D", "", m) for m in _NUMBER.findall(ascii_digits)]


# --- what is not prose ----------------------------------------------------------------------------

URL = r"(?:https?|ftp)://[^\s<>\"'`]+|www\.[^\s<>\"'`]+"
EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
# `code`, ``co`de``: a run of backticks to the next run of the same length, never over a blank line
INLINE_CODE = r"(?P<ticks>`+)(?:(?!(?P=ticks))(?!\n[ \t]*\n).)+?(?P=ticks)"
FENCED_CODE = r"(?P<fence>```|~~~).*?(?:(?P=fence)|$)"  # an unclosed fence runs to the end
NOT_PROSE = re.compile(f"{FENCED_CODE}|{INLINE_CODE}|{URL}|{EMAIL}", re.S)


def _marked(text: str) -> bool:
    return "`" in text or "~~~" in text or "://" in text or "www." in text or "@" in text


def prose(texts: Sequence[str]) -> list[str]:
    """The texts without code, URLs and e-mail addresses (each replaced by a space; the regex runs only
    where a marker of them is): what the script and copy filters read."""
    if not _marked("".join(texts)):
        return list(texts)
    return [NOT_PROSE.sub(" ", t) if _marked(t) else t for t in texts]


# --- scripts ----------------------------------------------------------------------------------------

# ISO 15924 codes that name a union of Unicode scripts
COMPOSITE: dict[str, tuple[str, ...]] = {
    "Hans": ("Hani",), "Hant": ("Hani",), "Jpan": ("Hani", "Hira", "Kana"), "Kore": ("Hang", "Hani"),
}
# Scripts written without spaces between words: text-based n-gram filters use characters for them
UNSPACED = ("Thai", "Laoo", "Khmr", "Mymr", "Tibt", "Jpan")
# What a script share counts: letters, and combining marks that belong to a script (the vowel signs
# and viramas of Khmer, Devanagari, Thai: a Khmer syllable weighs about as many characters as it has,
# like a Latin word). Not digits, punctuation, symbols, spaces, nor the marks of script Inherited (the
# accents several scripts share, U+0300-036F, the Arabic harakat).
_COUNTED = r"\p{L}[\p{M}--[\p{sc=Zinh}\p{sc=Zyyy}]]"


def _members(scripts: Sequence[str]) -> tuple[str, ...]:
    return tuple(part for s in scripts for part in COMPOSITE.get(s, (s,)))


@cache
def known_script(script: str) -> bool:
    """`regex` knows the ISO 15924 script (or it is a union of scripts it knows); the codes of no
    script (Zzzz unknown, Zyyy common, Zinh inherited, Zxxx unwritten, Zmth, Zsym, Zsye) are not scripts."""
    if script.startswith("Z"):
        return False
    try:
        for part in _members([script]):
            regex.compile(rf"\p{{scx={part}}}")
    except regex.error:
        return False
    return True


_TABLES = 0x110000  # code points a table covers


def _class_table(klass: str, engine: str = "regex") -> np.ndarray:
    """True for every code point of a character class body of `regex` (V1), or of Python's `re` with
    engine="re" (its \\w and \\s differ from `regex`'s). Built once per machine and library version (a
    walk over every code point) and then read from synth's cache, where it is saved packed."""
    version = regex.__version__ if engine == "regex" else f"re {unicodedata.unidata_version}"
    key = hashlib.sha256(f"{klass}|{version}".encode()).hexdigest()[:24]
    path = None
    try:
        path = cache_dir() / "unicode" / f"{key}.npy"
        packed = np.load(path, allow_pickle=False)
        if packed.shape == (_TABLES // 8,) and packed.dtype == np.uint8:
            return np.unpackbits(packed).astype(bool)
    except (OSError, ValueError, EOFError):  # not cached yet, unreadable or a cache we cannot create
        pass
    table = np.zeros(_TABLES, dtype=bool)
    text = _all_code_points()
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    pattern = regex.compile(rf"[{klass}]+", regex.V1) if engine == "regex" else re.compile(rf"[{klass}]+")
    for match in pattern.finditer(text):
        table[codes[match.start():match.end()]] = True
    if path is not None:
        packed = io.BytesIO()
        np.save(packed, np.packbits(table))
        try:
            save_cached(path, packed.getvalue())
        except OSError:  # a read-only cache: built again next time
            pass
    return table


_code_point_table = lru_cache(maxsize=8)(_class_table)  # the tables several scripts share, kept


def re_class_table(klass: str) -> np.ndarray:
    """True for every code point that Python's `re` matches with the class body `klass` (e.g. \\w):
    for batch counts over code points that must equal what an `re` pattern finds per text."""
    return _code_point_table(klass, "re")


@lru_cache(maxsize=64)
def _script_table(script: str) -> np.ndarray:
    """Per code point: 0 does not count, 1 counts and is not in `script`, 2 counts and is in `script`
    (a character of several scripts, such as the Arabic tatweel or the Japanese long vowel mark, is in
    each of them). "unspaced": in any script written without spaces."""
    scripts = UNSPACED if script == "unspaced" else (script,)
    counted = _code_point_table(_COUNTED)
    inside = _class_table("".join(rf"\p{{scx={s}}}" for s in _members(scripts)))
    return (counted.astype(np.uint8) + (counted & inside)).astype(np.uint8)


_PACKED = np.array([0, 1, 1 + (1 << 32)], dtype=np.int64)  # _script_table value -> counted + inside << 32


def prepare_script(script: str) -> None:
    """Build a script's table now (e.g. before forking workers, so each does not build its own)."""
    _script_table(script)


def _inside_and_counted(texts: Sequence[str], script: str) -> tuple[list[int], list[int]]:
    """Per text: counted prose characters in `script`, and counted prose characters (see _script_table),
    for a whole batch from one table lookup and one running total of packed (counted, inside) values."""
    if not texts:
        return [], []
    texts = prose(texts)
    # "replace": a lone surrogate (never in Parquet strings) becomes one "?" instead of raising
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "replace"), dtype=np.uint32)
    total = np.concatenate([[0], np.cumsum(_PACKED[_script_table(script)[codes]])])
    ends = np.cumsum([len(t) for t in texts], dtype=np.int64)
    sums = total[ends] - total[np.concatenate([[0], ends[:-1]])]
    return (sums >> 32).tolist(), (sums & 0xFFFFFFFF).tolist()


def script_shares(texts: Sequence[str], script: str) -> list[float | None]:
    """Share of each text's counted prose characters that belong to `script`; None if none count."""
    inside, counted = _inside_and_counted(texts, script)
    return [k / n if n else None for k, n in zip(inside, counted)]


def script_share(text: str, script: str) -> float | None:
    return script_shares([text], script)[0]


def wholly_in_script(text: str, script: str) -> bool:
    """`script_share(text, script) == 1.0`, for one short text such as a word: a lookup per character."""
    table = _script_table(script)
    kinds = {int(table[ord(ch)]) for ch in text}
    return 2 in kinds and 1 not in kinds


def dominant_unspaced(text: str) -> bool:
    """True when more than half the counted characters are in a script written without spaces
    (Thai, Lao, Khmer, Burmese, Tibetan, Chinese, Japanese)."""
    (inside,), (counted,) = _inside_and_counted([text], "unspaced")
    return inside * 2 > counted


# --- normalisation --------------------------------------------------------------------------------

# What separates words when texts are compared: punctuation (every script's), symbols, spaces,
# controls and format characters (zero-width space and joiners)
GAP = r"\p{P}\p{S}\p{Z}\p{C}"


def fold(text: str) -> str:
    """The form texts are compared in: NFKC (composed or decomposed accents, full- or half-width forms
    are the same text), then case folding."""
    return unicodedata.normalize("NFKC", text).casefold()


@cache
def gap_table() -> np.ndarray:
    """True for every code point in GAP: numpy's view of it, for filters that work on code points."""
    return _code_point_table(GAP)


@cache
def gap_pattern() -> re.Pattern:
    """Runs of GAP characters as an `re` pattern (ranges taken from gap_table): splitting with `re` is
    faster than with `regex`."""
    table = gap_table()
    edges = np.flatnonzero(np.diff(np.concatenate([[False], table, [False]]).astype(np.int8)))
    ranges = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b - 1))}" if b - 1 > a else re.escape(chr(a))
                     for a, b in zip(edges[0::2].tolist(), edges[1::2].tolist()) if not 0xD800 <= a <= 0xDFFF)
    return re.compile(f"[{ranges}]+")


def words(text: str) -> list[str]:
    """The words of `text` as spaces separate them, and as fastText reads a line: the Ethiopic wordspace
    U+1361, which older Amharic text writes instead of spaces, separates words too (lid.176 misreads
    Amharic without it: bench/README.md), and so does NUL."""
    return spaced(text).split()


WORD_SEPARATORS = "\u1361\x00"  # what separates words besides str.split's whitespace (see `words`)


def spaced(text: str) -> str:
    """`text` with the WORD_SEPARATORS as spaces."""
    for separator in WORD_SEPARATORS:
        if separator in text:
            text = text.replace(separator, " ")
    return text
