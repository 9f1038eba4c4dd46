"""Share of letters in the language's expected script (ISO 15924), from Unicode block ranges.

Cheap and model-free, so it catches what LID can miss on short or unusual text: an Amharic answer
written in Latin transliteration, a Tatar answer in Latin instead of Cyrillic, a Khmer answer that
drifted into English. Only letters (and the vowel signs of their scripts) count: digits, punctuation,
whitespace and Latin accents are ignored, and so are URLs, e-mail addresses and code (fenced blocks
and `inline` spans), whose Latin letters are not a failure to write the language.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Sequence

import numpy as np

from synth.verify.base import Candidate, Filter

# ISO 15924 code -> code point ranges of its letters. Block ranges: a block's digits and
# punctuation are removed before counting, so only its letters ever meet these ranges.
_LATIN = [(0x41, 0x5A), (0x61, 0x7A), (0xAA, 0xAA), (0xBA, 0xBA), (0xC0, 0x24F), (0x250, 0x2AF),
          (0x1D00, 0x1DBF), (0x1E00, 0x1EFF), (0x2C60, 0x2C7F), (0xA720, 0xA7FF), (0xAB30, 0xAB6F),
          (0xFF21, 0xFF3A), (0xFF41, 0xFF5A)]
_HAN = [(0x2E80, 0x2FDF), (0x3005, 0x3007), (0x3021, 0x3029), (0x3038, 0x303B), (0x3400, 0x4DBF),
        (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F), (0x30000, 0x3134F)]
_KANA = [(0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F), (0x1B000, 0x1B16F)]
_HANGUL = [(0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xFFA0, 0xFFDC)]

SCRIPT_RANGES: dict[str, list[tuple[int, int]]] = {
    "Latn": _LATIN,
    "Cyrl": [(0x400, 0x52F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)],
    "Grek": [(0x370, 0x3FF), (0x1F00, 0x1FFF)],
    "Armn": [(0x530, 0x58F), (0xFB13, 0xFB17)],
    "Hebr": [(0x590, 0x5FF), (0xFB1D, 0xFB4F)],
    "Arab": [(0x600, 0x6FF), (0x750, 0x77F), (0x870, 0x8FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)],
    "Syrc": [(0x700, 0x74F), (0x860, 0x86F)],
    "Thaa": [(0x780, 0x7BF)],
    "Nkoo": [(0x7C0, 0x7FF)],
    "Deva": [(0x900, 0x97F), (0xA8E0, 0xA8FF)],
    "Beng": [(0x980, 0x9FF)],
    "Guru": [(0xA00, 0xA7F)],
    "Gujr": [(0xA80, 0xAFF)],
    "Orya": [(0xB00, 0xB7F)],
    "Taml": [(0xB80, 0xBFF), (0x11FC0, 0x11FFF)],
    "Telu": [(0xC00, 0xC7F)],
    "Knda": [(0xC80, 0xCFF)],
    "Mlym": [(0xD00, 0xD7F)],
    "Sinh": [(0xD80, 0xDFF)],
    "Thai": [(0xE00, 0xE7F)],
    "Laoo": [(0xE80, 0xEFF)],
    "Tibt": [(0xF00, 0xFFF)],
    "Mymr": [(0x1000, 0x109F), (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F)],
    "Geor": [(0x10A0, 0x10FF), (0x1C90, 0x1CBF), (0x2D00, 0x2D2F)],
    "Ethi": [(0x1200, 0x139F), (0x2D80, 0x2DDF), (0xAB00, 0xAB2F), (0x1E7E0, 0x1E7FF)],
    "Cher": [(0x13A0, 0x13FF), (0xAB70, 0xABBF)],
    "Cans": [(0x1400, 0x167F), (0x18B0, 0x18FF)],
    "Khmr": [(0x1780, 0x17FF), (0x19E0, 0x19FF)],
    "Mong": [(0x1800, 0x18AF)],
    "Olck": [(0x1C50, 0x1C7F)],
    "Tfng": [(0x2D30, 0x2D7F)],
    "Vaii": [(0xA500, 0xA63F)],
    "Adlm": [(0x1E900, 0x1E95F)],
    "Hans": _HAN,
    "Hant": _HAN,
    "Hani": _HAN,
    "Jpan": _HAN + _KANA,
    "Hira": [(0x3040, 0x309F)],
    "Kana": [(0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F)],
    "Hang": _HANGUL,
    "Kore": _HANGUL + _HAN,
}

# Scripts written without spaces between words: text-based n-gram filters use characters for them.
UNSPACED = ("Thai", "Laoo", "Khmr", "Mymr", "Tibt", "Jpan")

_NOT_PROSE = re.compile(
    r"```.*?(?:```|$)"            # fenced code block (an unclosed one runs to the end)
    r"|`[^`\n]+`"                 # inline code
    r"|\b(?:https?|ftp)://\S+"    # URL
    r"|\bwww\.\S+"
    r"|[\w.+-]+@[\w-]+\.[\w.-]+",  # e-mail address
    re.S,
)


# Scripts whose letters are the union of others (the table below gives each code point one script).
COMPOSITE: dict[str, tuple[str, ...]] = {
    "Hans": ("Hani",), "Hant": ("Hani",), "Jpan": ("Hani", "Hira", "Kana"), "Kore": ("Hang", "Hani"),
}
_BASE = [name for name in SCRIPT_RANGES if name not in COMPOSITE and name != "Jpan"]
_UNKNOWN = len(_BASE) + 1  # a letter of no script in the table


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    """Script id (1-based index into _BASE) of every code point that counts, 0 for the rest.

    What counts: letters (Unicode L*) and, inside a script's blocks, combining marks too: the vowel
    signs and viramas of Khmer, Devanagari, Thai, ... so a Khmer syllable weighs about as many
    characters as it has, like a Latin word. Digits, punctuation, symbols, spaces and the accents
    shared by every script (U+0300-036F) do not count.
    """
    table = np.zeros(0x110000, dtype=np.uint8)
    categories = np.array([unicodedata.category(chr(cp))[0] for cp in range(0x10000)])
    table[:0x10000][categories == "L"] = _UNKNOWN
    marks = np.zeros(0x110000, dtype=bool)
    marks[:0x10000] = categories == "M"
    for sid, name in enumerate(_BASE, 1):
        for a, b in SCRIPT_RANGES[name]:
            block = slice(a, b + 1)
            counted = (table[block] != 0) | marks[block] if b < 0x10000 else np.ones(b + 1 - a, dtype=bool)
            table[block][counted] = sid  # astral blocks (Han extensions, Adlam): every code point
    return table


def _ids(script: str) -> list[int]:
    return [_BASE.index(s) + 1 for s in COMPOSITE.get(script, (script,)) if s in _BASE]


@lru_cache(maxsize=64)
def _script_table(script: str) -> np.ndarray:
    """Per code point: 0 does not count, 1 counts and is in another script, 2 counts and is in `script`
    (or, for "unspaced", in any script written without spaces)."""
    ids = [i for s in UNSPACED for i in _ids(s)] if script == "unspaced" else _ids(script)
    table = _table()
    return np.where(np.isin(table, ids), 2, (table != 0).astype(np.uint8)).astype(np.uint8)


_PACKED = np.array([0, 1, 1 + (1 << 32)], dtype=np.int64)  # _script_table value -> counted + inside << 32


def prose(texts: Sequence[str]) -> list[str]:
    """The texts without code, URLs and e-mail addresses (the regex only where a marker of them is):
    what the script and copy filters read."""
    def marked(text: str) -> bool:
        return "`" in text or "://" in text or "www." in text or "@" in text

    if not marked("".join(texts)):
        return list(texts)
    return [_NOT_PROSE.sub(" ", t) if marked(t) else t for t in texts]


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


def dominant_unspaced(text: str) -> bool:
    """True when more than half the counted characters are in a script written without spaces
    (Thai, Lao, Khmer, Burmese, Tibetan, Chinese, Japanese)."""
    (inside,), (counted,) = _inside_and_counted([text], "unspaced")
    return inside * 2 > counted


class ScriptFilter(Filter):
    """Share of the candidate's letters in its language's script (LanguageSpec.script).

    The threshold is the least share of prose letters in the language's script: 0.7 by default
    (names, acronyms and loanwords in Latin inside a Khmer or Amharic answer are normal; an answer
    of which a third is English is code-switched). A language whose script has no range table here
    scores None (not applicable), as do texts without letters.
    """

    name = "script"
    default_threshold = 0.7
    description = "share of prose letters (code and URLs excluded) in the language's ISO 15924 script"

    def __init__(self, scripts: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self.scripts = {lang: s for lang, s in scripts.items() if s in SCRIPT_RANGES}
        for script in set(self.scripts.values()):
            _script_table(script)  # built once per process

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        """`script_shares` of the rows of each script."""
        out: list[float | None] = [None] * len(batch)
        by_script: dict[str, list[int]] = {}
        for i, c in enumerate(batch):
            if c.lang in self.scripts:
                by_script.setdefault(self.scripts[c.lang], []).append(i)
        for script, rows in by_script.items():
            for i, share in zip(rows, script_shares([batch[i].text for i in rows], script)):
                out[i] = share
        return out

    def explain(self, score: float, lang: str) -> str:
        return (f"script: {score:.0%} of letters in {self.scripts.get(lang, '?')} "
                f"< {self.threshold_for(lang):.0%}")
