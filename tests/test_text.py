"""synth.text: the one place that knows sentence ends, what is not prose, scripts and normalisation."""

import json
import re

from synth.text import (CLAUSE_BREAK, SENTENCE_BREAK, cut_points, dominant_unspaced, ends_sentence, fold,
                        gap_pattern, gap_table, known_script, lone_surrogate, prose, script_share, well_formed)

# Sentence-final marks of the registry's scripts and of Tibetan, Armenian and CJK
MARKS = ". ! ? 。 ！ ？ । ॥ ۔ ؟ ። ፧ ။ ។ ៕ ։ ། ༎ …".split()


def test_every_script_s_sentence_marks_end_a_sentence():
    for mark in MARKS:
        assert ends_sentence(f"word{mark}"), mark
        assert ends_sentence(f"word{mark}»)\" *"), mark  # closing quotes, brackets, emphasis, spaces
    for not_an_end in ("word", "word,", "word;", "ကလေး၊", "word:", "word፡", ""):
        assert not ends_sentence(not_an_end), not_an_end


def test_two_ethiopic_wordspaces_end_a_sentence_as_the_full_stop_does():
    """Tigrinya and Amharic text often writes ። as ፡፡: such a sentence is not cut short (`truncated`)."""
    text = "ሰብ ኩሉ ናይ ምንባር መሰል ኣለዎ፡፡ ካልኣይ ሓሳብ ኣሎ፡፡"
    assert ends_sentence(text) and ends_sentence(text + "»  ")
    assert not ends_sentence("ሰብ ኩሉ፡") and not ends_sentence("ሰብ ኩሉ")
    assert [text[a:b] for a, b in cut_points(text)] == [" "] and cut_points(text)[0][0] == text.index("፡፡") + 2


def test_sentence_breaks_need_a_space_only_after_marks_found_inside_words():
    assert cut_points("Pi is 3.14. See www.a.org now! Next") == [(11, 12), (30, 31)]
    assert cut_points("你好。再见！好") == [(3, 3), (6, 6)]  # CJK: no space between sentences
    assert cut_points("ក្មេង។ទៅ") == [(6, 6)]
    assert cut_points("«Go.» Then") == [(5, 6)]  # after the closing quote
    assert cut_points("再见。」他说") == [(4, 4)]  # never between a mark and its closer
    assert cut_points("a, b; c", CLAUSE_BREAK) == [(2, 3), (5, 6)]
    assert cut_points("1,000 at 10:30;x", CLAUSE_BREAK) == []  # inside numbers and words: no cut
    assert cut_points("一，二、三", CLAUSE_BREAK) == [(2, 2), (4, 4)]
    assert cut_points("ልጆቹ፡ወደ", CLAUSE_BREAK) == [(4, 4)]  # Ethiopic wordspace
    assert SENTENCE_BREAK.search("no marks here") is None


def test_code_urls_and_emails_are_not_prose():
    text = "Run ```\nmake demo\n``` or `pip install x` or ``a`b``, see https://x.org/a.b or a.b@example.org."
    assert prose([text])[0].split() == ["Run", "or", "or", ",", "see", "or", "."]
    assert prose(["plain text"]) == ["plain text"]
    assert prose(["~~~\ncode\n~~~ after"])[0].split() == ["after"]
    assert prose(["a `stray\n\nbacktick` b"]) == ["a `stray\n\nbacktick` b"]  # a code span never crosses a blank line


def test_script_shares_come_from_unicode_script_properties():
    assert script_share("ក្មេងៗទៅសាលារៀន", "Khmr") == 1.0  # vowel signs count, as letters of Khmer
    assert script_share("ልጆቹ hello", "Ethi") == 3 / 8
    assert script_share("カレーライス", "Jpan") == 1.0  # the long vowel mark ー is Common, of Hiragana and Katakana
    assert script_share("ـــعربي", "Arab") == 1.0  # the tatweel is Common, of Arabic (among others)
    assert script_share("Ẹ̀dá", "Latn") == 1.0 and script_share("Ẹ̀dá", "Cyrl") == 0.0  # shared accents: not counted
    assert script_share("123 !?", "Latn") is None
    assert all(known_script(s) for s in ("Latn", "Ethi", "Khmr", "Mymr", "Tibt", "Arab", "Hans", "Kore", "Adlm"))
    assert not known_script("Zzzz") and not known_script("Qwer")
    assert dominant_unspaced("ក្មេងៗទៅសាលារៀន hello") and not dominant_unspaced("hello ក្មេង")


def test_normalisation_and_gaps():
    assert fold("ＡＢＣ Straße é") == fold("abc STRASSE é") == "abc strasse é"
    gaps = gap_table()
    for ch in " ,.;!?_-\u3002\u104b\u0f0d\u0589\u17d4\u200b\u0964":  # Armenian, Tibetan, Khmer marks too
        assert gaps[ord(ch)], hex(ord(ch))
    for ch in "aé\u1200\u17c1\u0300\u3005":  # letters, vowel signs and combining marks stay in their words
        assert not gaps[ord(ch)], hex(ord(ch))
    assert gap_pattern().split("a, b։ c། d") == ["a", "b", "c", "d"]
    assert isinstance(gap_pattern(), re.Pattern)


def test_code_point_tables_are_cached_on_disk_and_rebuilt_when_the_cache_is_bad(tmp_path, monkeypatch):
    """A table read back from synth's cache equals the one built from `regex`; a damaged cache file is
    rebuilt, never trusted."""
    import numpy as np

    from synth import text

    monkeypatch.setenv("SYNTH_CACHE", str(tmp_path))
    klass = r"\p{scx=Ethi}\p{Nd}"
    built = text._class_table(klass)
    files = list((tmp_path / "unicode").glob("*.npy"))
    assert len(files) == 1 and not list((tmp_path / "unicode").glob("*.tmp"))
    assert built[ord("ሀ")] and built[ord("7")] and built[ord("٣")] and not built[ord("a")]
    assert np.array_equal(text._class_table(klass), built)  # read from the cache
    files[0].write_bytes(b"not a table")
    assert np.array_equal(text._class_table(klass), built)
    assert np.array_equal(text._class_table(klass), built)  # and the rebuilt one was saved again
    assert np.load(files[0]).shape == (0x110000 // 8,)


def test_wholly_in_script_is_a_script_share_of_one():
    import random

    from synth.text import wholly_in_script

    rng = random.Random(0)
    alphabet = "abcé.,;!?«»()-'\u0301\u0bcd\u0b95அ1२ক\u200d\u00ad ሀ:"
    for _ in range(20_000):
        token = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))
        for script in ("Latn", "Taml", "Beng", "Ethi"):
            assert wholly_in_script(token, script) == (script_share(token, script) == 1.0), (token, script)


def test_well_formed_replaces_only_lone_surrogates():
    decoded = json.loads(r'"caf\u00e9 \ud83d\ude00 \ud800 x\udfff"')  # a valid pair joins into one code point
    assert well_formed(decoded) == "café 😀 \ufffd x\ufffd" and lone_surrogate(decoded) == 7
    assert well_formed("plain") == "plain" and lone_surrogate("café 😀") is None
    well_formed(decoded).encode("utf-8")
