"""Each filter on real UDHR text: true translations pass, each defect is caught by its filter."""

import pytest

from synth.languages import load_registry
from synth.verify import Candidate, Verifier, load_preset
from synth.verify.lid.router import LidFilter, load_lid
from synth.verify.rules.form import LengthRatioFilter, RepetitionFilter, repetition_score
from synth.verify.meaning.roundtrip import RoundtripFilter

LANGS = {"swh_Latn": "swh", "fra_Latn": "fra", "tgl_Latn": "tgl"}


@pytest.fixture(scope="module")
def pairs(udhr):
    english = udhr("eng")
    out = []
    for lang, code in LANGS.items():
        for i, (src, tgt) in enumerate(zip(english, udhr(code))):
            if len(src) > 80:
                out.append((lang, i, src, tgt))
    return out


@pytest.fixture(scope="module")
def verifier():
    return Verifier(load_preset("default"), load_registry())


def _candidate(lang, i, src, text, back=None, truncated=False):
    return Candidate(id=f"{lang}-{i}", lang=lang, text=text, source=src, source_lang="eng_Latn",
                     back_translation=back, truncated=truncated)


def test_true_translations_pass_every_filter(pairs, verifier):
    # back-translation: the English source itself stands in for a perfect round trip
    batch = [_candidate(lang, i, src, tgt, back=src) for lang, i, src, tgt in pairs]
    verdicts = verifier.verify(batch)
    rejected = [(c.id, v.details) for c, v in zip(batch, verdicts) if not v.accepted]
    assert len(rejected) <= 0.05 * len(batch), rejected[:5]
    assert len(batch) > 40


def test_wrong_language_is_caught_by_lid(pairs):
    lid = LidFilter(load_lid(), {code: spec.lid_label for code, spec in load_registry().items()})
    wrong = [_candidate(lang, i, src, src) for lang, i, src, _ in pairs]  # English where Swahili is due
    scores = lid.score(wrong)
    assert all(not lid.accept(s, c.lang) for s, c in zip(scores, wrong))
    right = [_candidate(lang, i, src, tgt) for lang, i, src, tgt in pairs]
    assert sum(lid.accept(s, c.lang) for s, c in zip(lid.score(right), right)) >= 0.95 * len(right)


def test_each_defect_is_rejected_with_its_reason(pairs, verifier):
    lang, i, src, tgt = next(p for p in pairs if p[0] == "swh_Latn" and len(p[3]) > 200)
    loop = " ".join(tgt.split()[:6])
    cases = {
        "lid": _candidate(lang, i, src, src, back=src),
        "copy": _candidate(lang, i, src, src, back=src),
        "length_ratio": _candidate(lang, i, src, tgt[: len(tgt) // 4], back=src),
        "repetition": _candidate(lang, i, src, tgt + (" " + loop) * 12, back=src),
        "truncated": _candidate(lang, i, src, tgt, back=src, truncated=True),
        "roundtrip": _candidate(lang, i, src, tgt, back="The weather is nice today and we went to the market."),
        "empty": _candidate(lang, i, src, "  ...  ", back=src),
    }
    for reason, candidate in cases.items():
        verdict = verifier.verify([candidate])[0]
        assert not verdict.accepted and reason in verdict.reasons, (reason, verdict)
        assert len(verdict.details) == len(verdict.reasons)


def test_dedup_rejects_a_repeat_across_batches(pairs):
    verifier = Verifier(load_preset("default"), load_registry())
    lang, i, src, tgt = pairs[0]
    assert verifier.verify([_candidate(lang, i, src, tgt, back=src)])[0].accepted
    again = verifier.verify([_candidate(lang, i + 100, src, "  " + tgt.replace(" ", "  ") + " .", back=src)])[0]
    assert again.reasons == ["dedup"]


def test_not_applicable_is_none_not_a_pass(verifier):
    c = Candidate(id="x", lang="swh_Latn", text="Habari za asubuhi, rafiki yangu mpendwa.")
    verdict = verifier.verify([c])[0]
    assert verdict.scores["roundtrip"] is None and verdict.scores["length_ratio"] is None
    assert "laser" in verifier.not_run and "laser" not in verdict.scores


def test_roundtrip_scores_and_thresholds(pairs):
    rt = RoundtripFilter()
    lang, i, src, tgt = pairs[0]
    good, bad = rt.score([_candidate(lang, i, src, tgt, back=src),
                          _candidate(lang, i, src, tgt, back="Completely unrelated words here.")])
    assert good == pytest.approx(100.0) and bad < 20 and rt.accept(good, lang) and not rt.accept(bad, lang)


def test_repetition_and_length_ratio_scores():
    assert repetition_score("one two three four five six seven eight nine ten eleven twelve") == 0
    assert repetition_score("la la la la la la la la la la la la la la la la") > 0.8
    ratio = LengthRatioFilter()
    (score,) = ratio.score([Candidate(id="a", lang="x", text="a" * 30, source="b" * 100)])
    assert not ratio.accept(score, "x")
    (score,) = ratio.score([Candidate(id="a", lang="x", text="a" * 90, source="b" * 100)])
    assert ratio.accept(score, "x")
    assert RepetitionFilter().accept(0.1, "x")


def test_code_switching_half_way_is_caught_by_mixed_language(pairs, verifier):
    caught = total = 0
    for lang, i, src, tgt in pairs:
        if len(tgt) < 200 or lang == "fra_Latn":
            continue
        words = tgt.split()
        src_words = src.split()
        # first half in the target language, the rest drifts back into English
        switched = " ".join(words[: len(words) // 2]) + ". " + " ".join(src_words[len(src_words) // 2:])
        verdict = verifier.verify([_candidate(lang, i + 1000, src, switched, back=src)])[0]
        total += 1
        caught += not verdict.accepted
    assert total >= 10 and caught / total >= 0.9, (caught, total)


def test_repetition_in_one_message_is_not_diluted_by_the_rest():
    loop = "Ni kweli kabisa ndugu yangu. " * 6
    long_question = ("Tafadhali nieleze kwa kina historia ya mji wa Zanzibar, biashara yake ya karafuu na viungo "
                     "vingine, jinsi bandari ilivyokua, wafanyabiashara waliotoka Oman na India, majengo ya Mji "
                     "Mkongwe, utamaduni wa taarab, vyakula kama urojo na pweza, na maisha ya wavuvi wa leo.")
    assert repetition_score(long_question) < 0.05
    assert repetition_score(loop) > 0.5
    assert repetition_score(long_question + "\n\n" + loop) > 0.5


def test_switch_inside_one_long_sentence_is_caught(pairs, verifier):
    # no sentence boundary at the switch: the first half of the target runs straight into English
    caught = total = 0
    for lang, i, src, tgt in pairs:
        words, src_words = tgt.split(), src.split()
        if len(words) < 30 or lang == "fra_Latn":
            continue
        switched = " ".join(words[: len(words) // 2] + src_words[len(src_words) // 2:])
        verdict = verifier.verify([_candidate(lang, i + 2000, src, switched, back=src)])[0]
        total += 1
        caught += not verdict.accepted
    assert total >= 10 and caught / total >= 0.8, (caught, total)
