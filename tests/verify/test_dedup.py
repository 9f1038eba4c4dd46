"""Dedup on real UDHR text: exact and near duplicates are caught, distinct texts are kept."""

import itertools
import unicodedata

import numpy as np
import pytest

from synth.languages import load_registry
from synth.verify import Candidate, Verifier, load_preset
from synth.verify.sets.dedup import DedupFilter, estimated_jaccard, sketch

LANGS = {"swh": "swh_Latn", "fra": "fra_Latn", "khm": "khm_Khmr", "hin": "hin_Deva", "amh": "amh_Ethi"}


@pytest.fixture(scope="module")
def articles(udhr):
    return {lang: [t for t in udhr(code) if len(t) > 80] for code, lang in LANGS.items()}


def _c(lang, text, i=0, refs=()):
    return Candidate(id=f"{lang}-{i}", lang=lang, text=text, references=list(refs))


def _edit(text: str, words: int) -> str:
    """Replace `words` words (spaced scripts) or as many 4-character runs (unspaced) in the middle."""
    parts = text.split()
    if len(parts) >= 12:
        for k in range(words):
            parts[len(parts) // 3 + 3 * k] = "NEWWORD"
        return " ".join(parts)
    mid = len(text) // 2
    return text[:mid] + "XXXX" * words + text[mid + 4 * words:]


def test_distinct_articles_are_all_kept(articles):
    f = DedupFilter()
    for lang, texts in articles.items():
        scores = f.score([_c(lang, t, i) for i, t in enumerate(texts)])
        assert max(scores) < 0.5, (lang, max(scores))
        assert all(f.accept(s, lang) for s in scores)


def test_exact_duplicates_after_normalisation_score_1(articles):
    text = articles["fra_Latn"][4]
    variants = [text.upper(), "  " + text.replace(",", " ,").replace(" ", "\n  ") + " !", text.replace(".", ""),
                unicodedata.normalize("NFD", text)]  # decomposed accents (é as e + U+0301)
    assert variants[-1] != text
    f = DedupFilter()
    f.remember("fra_Latn", [text])
    assert f.score([_c("fra_Latn", v, i) for i, v in enumerate(variants)]) == [1.0, 1.0, 1.0, 1.0]
    # the same text in another language's memory is not a duplicate
    assert f.score([_c("swh_Latn", text)]) == [0.0]


def test_near_duplicates_are_caught_across_rounds(articles):
    f = DedupFilter()
    for lang, texts in articles.items():
        f.remember(lang, texts)  # round 1 kept every article
        edited = [_edit(t, 1) for t in texts if len(t) > 200]
        scores = f.score([_c(lang, t, i) for i, t in enumerate(edited)])
        assert min(scores) > f.threshold_for(lang), (lang, min(scores))
        assert "near-duplicate" in f.explain(min(scores), lang)


def test_within_a_batch_the_first_copy_is_kept(articles):
    texts = articles["swh_Latn"][:6]
    batch = [_c("swh_Latn", t, i) for i, t in enumerate(texts)] + [_c("swh_Latn", _edit(texts[2], 1), 9)]
    f = DedupFilter()
    scores = f.score(batch)
    assert max(scores[:6]) < 0.5 and scores[6] > 0.7


def test_seeds_as_references_and_as_memory(articles):
    seed, other = articles["hin_Deva"][3], articles["hin_Deva"][7]
    f = DedupFilter()
    scores = f.score([_c("hin_Deva", _edit(seed, 1), 0, refs=[seed]), _c("hin_Deva", other, 1, refs=[seed])])
    assert scores[0] > 0.7 and scores[1] < 0.5
    f.remember("hin_Deva", [seed])  # the runner remembers every seed before round 1
    assert f.score([_c("hin_Deva", seed)]) == [1.0]


def test_estimates_track_the_true_jaccard(articles):
    def true_jaccard(a: str, b: str) -> float:
        keys_a = {a[i:i + 5] for i in range(len(a) - 4)}
        keys_b = {b[i:i + 5] for i in range(len(b) - 4)}
        return len(keys_a & keys_b) / len(keys_a | keys_b)

    from synth.verify.sets.dedup import _normalised_codes

    def normalised(text: str) -> str:
        codes, _ = _normalised_codes([text])
        return codes.tobytes().decode("utf-32-le")

    errors = []
    for lang in ("fra_Latn", "khm_Khmr"):
        texts = articles[lang][:12]
        pairs = list(itertools.combinations(texts, 2)) + [(t, _edit(t, k)) for t in texts for k in (1, 3)]
        for a, b in pairs:
            errors.append(estimated_jaccard(a, b) - true_jaccard(normalised(a), normalised(b)))
    errors = np.abs(errors)
    assert errors.mean() < 0.04 and errors.max() < 0.2, (errors.mean(), errors.max())


def test_short_and_empty_texts(articles):
    keys, signatures = sketch(["", "ab", "ab", "abc", articles["fra_Latn"][0]])
    assert signatures.shape == (5, 64) and keys[1] == keys[2] != keys[3]
    f = DedupFilter()
    assert f.score([_c("fra_Latn", "ab", 0), _c("fra_Latn", "abc", 1), _c("fra_Latn", "ab", 2)]) == [0.0, 0.0, 1.0]


def test_verifier_rejects_a_near_duplicate_of_an_accepted_row_in_a_later_batch(articles, udhr):
    verifier = Verifier(load_preset("default"), load_registry())
    english, french = udhr("eng"), udhr("fra")
    i = next(k for k, t in enumerate(french) if len(t) > 300 and len(english[k]) > 300)
    first = verifier.verify([Candidate(id="a", lang="fra_Latn", text=french[i], source=english[i], source_lang="eng_Latn")])
    assert first[0].accepted, first[0].details
    second = verifier.verify([Candidate(id="b", lang="fra_Latn", text=_edit(french[i], 1), source=english[i],
                                        source_lang="eng_Latn")])
    assert not second[0].accepted and second[0].reasons == ["dedup"]
    assert 0.7 < second[0].scores["dedup"] < 1.0
