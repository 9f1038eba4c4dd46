"""The batch paths of the rule filters (numpy over a whole batch) give the per-text definitions'
scores exactly, on real UDHR text in several scripts and on odd text."""

import random
import re

import pytest

from synth.verify.rules.form import copied_share, repetition_score, repetition_scores, word_characters

CODES = ["eng", "fra", "tha", "hin", "amh", "yor", "rus", "arb", "cmn_hans", "ell_monotonic", "tur"]
ODD = ["", " ", "\n\n", "\x00", "a\x00b c", "\ud800 lone surrogate", "snake_case __init__ x_1", "١٢٣ ½ Ⅻ ²",
       "İstanbul İİ ΣΑΣ ὈΔΥΣΣΕΎΣ", "😀 emoji 😀 " * 8, "e\u0301 combining e\u0301 " * 8, "\u3000\u2028\x85\xa0 spaces",
       "loop " * 40, "one two three four five", "ไม่มีช่องว่าง" * 5] \
    + ["ab ba " * (k // 2) + "ab " * (k % 2) for k in (5, 6, 11, 12, 13)]  # around the 2-gram and 3-gram bounds


@pytest.fixture(scope="module")
def texts(udhr):
    """UDHR articles, plus multi-paragraph texts with a loop in one paragraph, cut ones and odd ones."""
    rng = random.Random(0)
    articles = [t for code in CODES for t in udhr(code)[:12]]
    made = []
    for _ in range(60):
        a, b = rng.sample(articles, 2)
        loop = " ".join(b.split()[:4]) + " "
        made.append(rng.choice([f"{a}\n\n{loop * 6}", f"{a}\n \n{b}\n\n\n{a}", a[: rng.randint(0, 60)], a.upper()]))
    return articles + made + ODD


def test_word_characters_count_what_the_regex_matches(texts):
    word = re.compile(r"\w+")
    assert word_characters(texts).tolist() == [len(t) - len(word.sub("", t)) for t in texts]
    assert word_characters([]).tolist() == []


def test_repetition_scores_equal_the_per_text_score_in_any_batch(texts):
    one_by_one = [repetition_score(t) for t in texts]
    assert repetition_scores(texts) == one_by_one  # floats, compared exactly
    order = list(range(len(texts)))
    random.Random(1).shuffle(order)
    assert repetition_scores([texts[i] for i in order]) == [one_by_one[i] for i in order]
    assert repetition_scores(texts[5:6]) == one_by_one[5:6] and repetition_scores([]) == []
    assert max(one_by_one) > 0.5 and sum(s == 0.0 for s in one_by_one) > 5  # loops and clean texts both there


def test_batches_over_a_chunk_score_as_small_ones(udhr, texts):
    """Copy and repetition score 2,000 rows at a time: a row after the first chunk scores as alone."""
    english, french = udhr("eng"), udhr("fra")
    cut = [(f[: len(f) // 2] + " " + e[len(e) // 2:], e) for e, f in zip(english, french)]  # half copied
    rows = (cut * (2_100 // len(cut) + 1))[:2_100]
    whole = copied_share([t for t, _ in rows], [[s] for _, s in rows]).tolist()
    assert whole[2_000:2_030] == copied_share([t for t, _ in rows[2_000:2_030]], [[s] for _, s in rows[2_000:2_030]]).tolist()
    assert whole == [whole[i % len(cut)] for i in range(len(rows))]  # each repeat, either side of row 2,000
    assert 0.2 < min(whole) and max(whole) < 0.9
    many = (texts * (2_100 // len(texts) + 1))[:2_100]
    assert repetition_scores(many)[2_000:] == [repetition_score(t) for t in many[2_000:]]
