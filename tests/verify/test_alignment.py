"""structure_mismatch (synth/verify/rules/alignment.py): real translations keep their source's structure,
a translation of another text does not; rows without a source are not scored."""

from __future__ import annotations

import pytest

from synth.languages import load_registry
from synth.text import SENTENCE_BREAK
from synth.verify import Candidate, Verifier, load_preset
from synth.verify.rules.alignment import StructureMismatchFilter, evidence, structure

# UDHR file code -> FLORES code: Latin, Devanagari, Ethiopic, Thai (no sentence marks), Arabic (an abjad),
# Khmer, Burmese, Cyrillic, Tamil, Bengali
LANGS = {"fra": "fra_Latn", "hin": "hin_Deva", "amh": "amh_Ethi", "tha": "tha_Thai", "urd": "urd_Arab",
         "khm": "khm_Khmr", "mya": "mya_Mymr", "kaz": "kaz_Cyrl", "tam": "tam_Taml", "ben": "ben_Beng",
         "swh": "swh_Latn", "zul": "zul_Latn"}


@pytest.fixture(scope="module")
def f() -> StructureMismatchFilter:
    return StructureMismatchFilter()


def _pairs(udhr, code: str) -> list[tuple[int, str, str]]:
    english = udhr("eng")
    return [(n, src, tgt) for n, (src, tgt) in enumerate(zip(english, udhr(code)), 1) if len(src) > 80 and len(tgt) > 80]


def test_keeps_every_real_translation_in_ten_scripts(f, udhr):
    for code, lang in LANGS.items():
        pairs = _pairs(udhr, code)
        scores = f.score([Candidate(id=str(n), lang=lang, text=tgt, source=src) for n, src, tgt in pairs])
        assert len(scores) == len(pairs) > 20
        worst = max(scores)
        assert worst <= f.default_threshold, (code, worst, pairs[scores.index(worst)][0])


def test_rejects_another_article_given_as_the_translation(f, udhr):
    english = udhr("eng")
    hindi, swahili = udhr("hin"), udhr("swh")
    # Article 26 (education: 3 paragraphs, 6 sentences) answered with Article 3 (one short sentence)
    rows = [Candidate(id="a", lang="hin_Deva", text=hindi[2], source=english[25]),
            Candidate(id="b", lang="swh_Latn", text=swahili[25], source=english[2]),
            Candidate(id="c", lang="hin_Deva", text=hindi[25], source=english[25])]
    scores = f.score(rows)
    assert scores[0] > 1 and scores[1] > 1 and scores[2] <= 1
    assert "length" in f.explain_candidate(rows[0], scores[0])


def test_catches_part_of_a_languages_misaligned_articles_and_none_of_its_real_ones(f, udhr):
    pairs = _pairs(udhr, "tam")
    shifted = [(n, src, pairs[(i + 7) % len(pairs)][2]) for i, (n, src, _) in enumerate(pairs)]
    good = f.score([Candidate(id=str(n), lang="tam_Taml", text=t, source=s) for n, s, t in pairs])
    bad = f.score([Candidate(id=str(n), lang="tam_Taml", text=t, source=s) for n, s, t in shifted])
    assert sum(s > 1 for s in good) == 0
    assert sum(s > 1 for s in bad) >= len(bad) // 4


def test_sentence_count_is_synth_texts_sentence_break(udhr):
    """The numpy count over code points finds the breaks synth.text's SENTENCE_BREAK finds."""
    texts = [t for code in ("eng", *LANGS, "tir") for t in udhr(code)]  # Tigrinya: ፡፡ ends its sentences
    texts += ["「こんにちは。」元気ですか？はい。", "e.g. 3.14 is pi... really?! Yes.", "Wait…what? (Yes.) \"No.\" Fine"]
    counted = structure(texts)["sentences"].tolist()
    expected = [len(SENTENCE_BREAK.findall(t)) + 1 for t in texts]
    differ = [(t[:60], a, b) for t, a, b in zip(texts, counted, expected) if a != b]
    assert len(differ) <= len(texts) // 100, differ[:5]


def test_numbers_in_native_digits_match_and_changed_numbers_reject(f):
    source = "In 1948, 48 countries voted for the Declaration; 8 abstained."
    hindi_native = "१९४८ में ४८ देशों ने घोषणा के पक्ष में मत दिया; ८ ने मतदान नहीं किया।"
    bengali_native = "১৯৪৮ সালে ৪৮টি দেশ ঘোষণার পক্ষে ভোট দেয়; ৮টি দেশ বিরত থাকে।"
    arabic_indic = "في عام ١٩٤٨ صوّتت ٤٨ دولة لصالح الإعلان، وامتنعت ٨ دول."
    changed = "१९५० में ५२ देशों ने घोषणा के पक्ष में मत दिया; ८ ने मतदान नहीं किया।"
    rows = [Candidate(id=str(i), lang="hin_Deva", text=t, source=source)
            for i, t in enumerate((hindi_native, bengali_native, arabic_indic, changed))]
    scores = f.score(rows)
    assert max(scores[:3]) <= 1
    assert evidence([source] * 3, [hindi_native, bengali_native, arabic_indic])["numbers"].tolist() == [0, 0, 0]
    assert scores[3] > 1
    assert "missing 1948, 48; added 1950, 52" in f.explain_candidate(rows[3], scores[3])


def test_one_number_spelled_out_or_numbers_added_are_not_evidence(f):
    scores = f.score([Candidate(id="a", lang="fra_Latn", text="Elle a trois enfants et un chien.",
                                source="She has 3 children and a dog."),
                      Candidate(id="b", lang="fra_Latn", text="12345 13579", source="67890 24680"),
                      Candidate(id="c", lang="fra_Latn", text="12345", source="12345"),
                      # clause numbers a translation adds (the UDHR's Lao text numbers its paragraphs)
                      Candidate(id="d", lang="fra_Latn", text="1. Toute personne a droit au repos. 2. Et aux loisirs.",
                                source="Everyone has the right to rest. And to leisure.")])
    assert scores[0] <= 1 and scores[1] > 1 and scores[2] == 0 and scores[3] <= 1


def test_questions_count_only_where_the_language_marks_them(f):
    source = "What is your name? Where do you live? How old are you? Why are you here?"
    burmese = "သင့်နာမည် ဘယ်လိုခေါ်လဲ။ သင် ဘယ်မှာနေလဲ။ သင် အသက်ဘယ်လောက်ရှိပြီလဲ။ သင် ဘာကြောင့် ဒီမှာရှိတာလဲ။"
    answered = "Jina langu ni Amina. Ninaishi Nairobi. Nina miaka ishirini. Nimekuja kusoma hapa."
    asked = "Jina lako nani? Unaishi wapi? Una umri gani? Kwa nini uko hapa?"
    scores = f.score([Candidate(id=str(i), lang=lang, text=t, source=source)
                      for i, (lang, t) in enumerate((("mya_Mymr", burmese), ("swh_Latn", answered), ("swh_Latn", asked)))])
    assert scores[0] <= 1 and scores[2] <= 1
    assert evidence([source], [answered])["questions"][0] == 0  # no question mark: not counted...
    assert evidence([source] * 2, [asked, "Habari? " + answered])["questions"].tolist()[1] > 1  # ...one: counted


def test_list_items_must_survive(f):
    source = "Bring:\n- water\n- bread\n- a map\n- a torch\n- a coat\n- boots"
    kept = "Leta:\n- maji\n- mkate\n- ramani\n- tochi\n- koti\n- buti"
    merged = "Leta maji, mkate, ramani, tochi, koti na buti ili usipate shida njiani."
    scores = f.score([Candidate(id="k", lang="swh_Latn", text=kept, source=source),
                      Candidate(id="m", lang="swh_Latn", text=merged, source=source)])
    assert scores[0] <= 1 < scores[1]


def test_rows_without_a_source_and_edge_cases(f):
    rows = [Candidate(id="icl", lang="swh_Latn", text="Habari ya asubuhi, rafiki yangu."),
            Candidate(id="blank", lang="swh_Latn", text="Habari.", source="  "),
            Candidate(id="empty", lang="swh_Latn", text="", source="Good morning, my friend. How are you today?"),
            Candidate(id="nul", lang="swh_Latn", text="Habari\x00 ya asubuhi.", source="Good\x00 morning."),
            Candidate(id="thai", lang="tha_Thai", text="สวัสดีตอนเช้า เพื่อนของฉัน วันนี้คุณเป็นอย่างไรบ้าง",
                      source="Good morning, my friend. How are you today?")]
    scores = f.score(rows)
    assert scores[0] is None and scores[1] is None
    assert scores[2] > 1  # nothing of the source's content is there
    assert scores[3] <= 1  # a NUL inside a text does not shift the others
    assert scores[4] <= 1  # Thai marks no sentence end and no question: not counted against it
    assert f.score([]) == []


def test_default_preset_rejects_with_the_reason_and_passes_icl_rows(udhr):
    verifier = Verifier(load_preset("default"), load_registry())
    assert "structure_mismatch" in verifier.names
    english, hindi = udhr("eng"), udhr("hin")
    verdicts = verifier.verify([
        Candidate(id="good", lang="hin_Deva", text=hindi[25], source=english[25], source_lang="eng_Latn"),
        Candidate(id="bad", lang="hin_Deva", text=hindi[2], source=english[25], source_lang="eng_Latn"),
        Candidate(id="icl", lang="hin_Deva", text=hindi[0]),
    ])
    assert verdicts[0].accepted and verdicts[2].accepted
    assert verdicts[2].scores["structure_mismatch"] is None
    assert "structure_mismatch" in verdicts[1].reasons
    assert any(d.startswith("structure_mismatch") for d in verdicts[1].details)
