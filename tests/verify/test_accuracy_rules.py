"""Filters on real UDHR text (issue 5 accuracy): copied spans, unfinished output, windowed
code-switching, Ethiopic word spaces."""

import pytest

from synth.languages import load_registry
from synth.verify import Candidate
from synth.verify.lid.router import LidFilter, MixedLanguageFilter, load_lid
from synth.verify.lid.windows import windows
from synth.text import ends_sentence
from synth.verify.rules.form import CopyFilter, TruncatedFilter, copied_share

# UDHR file code -> FLORES code: Latin with cognates, unspaced Thai, Devanagari, Ethiopic, a weak lid.176 language
LANGS = {"fra": "fra_Latn", "tha": "tha_Thai", "hin": "hin_Deva", "amh": "amh_Ethi", "yor": "yor_Latn",
         "swh": "swh_Latn", "tgl": "tgl_Latn"}


@pytest.fixture(scope="module")
def pairs(udhr):
    english = udhr("eng")
    return [(LANGS[code], src, tgt) for code in LANGS for src, tgt in zip(english, udhr(code))
            if len(src) > 80 and len(tgt) > 80]


@pytest.fixture(scope="module")
def labels():
    return {code: spec.lid_label for code, spec in load_registry().items()}


def _c(lang, src, text, **kw):
    return Candidate(id="x", lang=lang, text=text, source=src, source_lang="eng_Latn", **kw)


def _halves(text):
    words = text.split()
    if len(words) >= 6:
        return " ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2:])
    return text[: len(text) // 2], text[len(text) // 2:]


def test_copied_share_separates_translations_copies_and_untranslated_halves(pairs):
    texts = [t for _, _, t in pairs]
    sources = [[s] for _, s, _ in pairs]
    good = copied_share(texts, sources)
    assert good.max() < 0.2  # French cognates ("discrimination ") stay below the 16-character runs
    assert (copied_share([s for _, s, _ in pairs], sources) == 1.0).all()
    half = copied_share([f"{_halves(t)[0]} {_halves(s)[1]}" for _, s, t in pairs], sources)
    assert half.min() > 0.3
    # a copy inside code is on purpose; case and spacing do not hide a copy
    src = pairs[0][1]
    assert copied_share([f"```\n{src}\n```\nMaelezo mafupi."], [[src]])[0] == 0.0
    assert copied_share(["  " + src.upper().replace(" ", "   ")], [[src]])[0] > 0.95


def test_copy_filter_rejects_copies_and_scores_only_rows_with_a_source(pairs):
    copy = CopyFilter(threshold=0.5)
    lang, src, tgt = pairs[0]
    scores = copy.score([_c(lang, src, tgt), _c(lang, src, src), Candidate(id="n", lang=lang, text=tgt)])
    assert copy.accept(scores[0], lang) and not copy.accept(scores[1], lang) and scores[2] is None
    seed = Candidate(id="s", lang=lang, text=tgt, references=["unrelated seed text", tgt])
    assert copy.score([seed])[0] == 1.0


def test_truncated_flags_a_cut_translation_but_not_a_finished_one(pairs):
    f = TruncatedFilter()
    batch = [_c(lang, src, tgt) for lang, src, tgt in pairs if ends_sentence(src)]
    good = f.score(batch)
    assert sum(f.accept(s, c.lang) for s, c in zip(good, batch)) >= 0.97 * len(batch)
    assert all(s == 0.0 for s, c in zip(good, batch) if c.lang == "tha_Thai")  # Thai ends sentences with a space
    cut = [_c(c.lang, c.source, c.text[: len(c.text) // 3].rstrip()) for c in batch if c.lang != "tha_Thai"]
    caught = [not f.accept(s, c.lang) for s, c in zip(f.score(cut), cut)]
    assert sum(caught) >= 0.97 * len(cut)
    lang, src, tgt = pairs[0]
    assert f.score([_c(lang, src, tgt, truncated=True)]) == [1.0]  # the engine's flag wins
    assert f.score([Candidate(id="i", lang=lang, text=tgt)]) == [None]  # no source, no flag: unknown
    assert "mid-sentence" in f.explain(0.75, lang) and "max_tokens" in f.explain(1.0, lang)


def test_windows_cover_the_text_and_cut_unspaced_scripts(udhr):
    thai = udhr("tha")[0]
    pieces = windows(thai)
    assert len(pieces) >= 2 and "".join(pieces).replace(" ", "") == thai.replace(" ", "")
    long = " ".join(udhr("fra"))
    assert len(windows(long)) <= 12  # long texts get longer windows, not more LID calls


def test_code_switch_half_way_is_caught_without_sentence_marks(pairs, labels):
    """Thai has no sentence marks and Hindi uses the danda: a sentence splitter saw one segment."""
    mixed = MixedLanguageFilter(load_lid(), labels)
    batch = [_c(lang, src, f"{_halves(tgt)[0]} {_halves(src)[1]}") for lang, src, tgt in pairs
             if lang in ("tha_Thai", "hin_Deva", "fra_Latn", "swh_Latn")]
    scores = mixed.score(batch)
    assert sum(s is not None and not mixed.accept(s, c.lang) for s, c in zip(scores, batch)) >= 0.95 * len(batch)
    good = [_c(lang, src, tgt) for lang, src, tgt in pairs]
    rejected = [c.id for s, c in zip(mixed.score(good), good) if s is not None and not mixed.accept(s, c.lang)]
    assert len(rejected) <= 0.02 * len(good)


def test_a_lone_english_name_is_not_a_switch(labels):
    mixed = MixedLanguageFilter(load_lid(), labels)
    text = ("Serikali ilitangaza jana kwamba mradi mpya wa maji utaanza mwezi ujao katika vijiji vingi. "
            "the University of California and the World Health Organization "
            "walishiriki katika mipango yote, na wananchi wengi walifurahia habari hizo njema sana.")
    (score,) = mixed.score([Candidate(id="n", lang="swh_Latn", text=text, source_lang="eng_Latn")])
    assert score == 0.0
    drift = text.split(" the University")[0] + (" and then the answer continues in English for the rest of "
                                                 "the text, as a weak model often does halfway through.")
    (score,) = mixed.score([Candidate(id="d", lang="swh_Latn", text=drift, source_lang="eng_Latn")])
    assert not mixed.accept(score, "swh_Latn")


def test_amharic_with_ethiopic_word_spaces_is_amharic(udhr, labels):
    texts = [t for t in udhr("amh") if "\u1361" in t][:10]
    assert len(texts) == 10
    lid = LidFilter(load_lid(), labels)
    scores = lid.score([Candidate(id=str(i), lang="amh_Ethi", text=t) for i, t in enumerate(texts)])
    assert all(s == 1.0 for s in scores)


def test_copied_share_of_a_row_does_not_depend_on_its_batch(pairs):
    texts = [f"{_halves(t)[0]} {_halves(s)[1]}" for _, s, t in pairs]
    sources = [[s] for _, s, _ in pairs]
    whole = copied_share(texts, sources)
    assert list(whole[:40]) == [copied_share([t], [s])[0] for t, s in zip(texts[:40], sources[:40])]
    assert list(whole[7:]) == list(copied_share(texts[7:], sources[7:]))  # other offsets in the joined text
    # texts of n-1 and n characters copied from their source's start: first or not, the same score
    for size, expected in ((15, 0.0), (16, 1.0)):
        short = sources[0][0][:size]
        alone, second = copied_share([short], [sources[0]])[0], copied_share([texts[1], short], [sources[1], sources[0]])[1]
        assert alone == second == expected, (size, alone, second)


def test_copy_never_crashes_on_odd_text(pairs):
    lang, src, tgt = pairs[0]
    odd = [tgt[:50] + "\x00" + tgt[50:], "\ud800 lone surrogate " + tgt, "", "   ", src]
    scores = CopyFilter().score([_c(lang, src, t) for t in odd])
    assert scores[0] < 0.2 and scores[1] < 0.2 and scores[2] is None and scores[3] is None and scores[4] == 1.0
