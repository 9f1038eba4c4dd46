"""synth's numpy fastText against fasttext-predict (fastText's own C++), on the bundled lid.176 and on
random models written in every variant the file format has."""

from __future__ import annotations

import fasttext
import numpy as np
import pytest

from synth.errors import ConfigError
from synth.verify.lid.fasttext_np import FastTextModel
from synth.text import words
from synth.verify.lid.router import LidModel, bundled_lid_path
from synth.verify.lid.windows import windows
from tests.fasttext_fixture import write_fasttext_model

UDHR_CODES = ("eng", "swh", "fra", "hin", "tha", "amh", "rus", "arb", "cmn_hans", "yor", "khm", "tam")
EDGE_LINES = [
    "", "   ", "a", "__label__en is a label token, not a word", "tabs\tand\vvertical\fspaces\rhere",
    "non\u00a0breaking\u2009thin spaces stay inside words", "emoji 😀🚀 and 4-byte 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "x" * 300,
    "ÀÉÎÕÜ çñ ß", "二〇二六年 世界人権宣言",
]


def _reference(model, text: str, k: int, threshold: float = 0.0) -> dict[str, float]:
    """fastText's predict on one line (the pybind call the fasttext-predict wrapper makes)."""
    return {label: p for p, label in model.f.predict(text + "\n", k, threshold, "strict")}


def _close(ours: dict[str, float], theirs: dict[str, float], tie: float = 2e-5) -> None:
    """Same labels with the same probabilities (float32 rounding apart); a label may differ only
    where two probabilities tie at the k-th place within float32 rounding."""
    for label in ours.keys() & theirs.keys():
        assert ours[label] == pytest.approx(theirs[label], abs=2e-6, rel=2e-5), label
    kth = min(theirs.values(), default=1.0)
    for label in ours.keys() ^ theirs.keys():
        assert abs(ours.get(label, theirs.get(label)) - kth) < tie, (label, ours, theirs)


@pytest.fixture(scope="module")
def lines(udhr) -> list[str]:
    """Real text in 12 scripts, as whole articles and as the 40-character windows LID reads."""
    texts = [" ".join(words(t)) for code in UDHR_CODES for t in udhr(code)[:6]]
    return texts + [w for t in texts for w in windows(t)] + EDGE_LINES


def test_lid176_probabilities_match_fasttext(lines):
    ours = FastTextModel(bundled_lid_path())
    theirs = fasttext.load_model(str(bundled_lid_path()))
    predicted = ours.predict(lines, k=5)
    assert len(predicted) == len(lines)
    for line, row in zip(lines, predicted):
        _close({label: p for p, label in row}, _reference(theirs, line, 5))
    # whole articles are confidently in their language: the top label agrees exactly
    assert [r[0][1] for r in predicted[:12]] == [_reference(theirs, line, 1).popitem()[0] for line in lines[:12]]


VARIANTS = {
    "hs dense": dict(loss="hs"),
    "softmax dense, word bigrams, 3-5 grams": dict(loss="softmax", word_ngrams=2, minn=3, maxn=5),
    "ova quantised, qnorm, qout, pruned, word trigrams, odd dim": dict(
        loss="ova", quantised=True, qnorm=True, qout=True, pruned=300, word_ngrams=3, dim=7),
    "ns quantised input only, 1-grams too": dict(loss="ns", quantised=True, minn=1, maxn=3, dim=9, dsub=4),
    "softmax without subwords": dict(loss="softmax", maxn=0, minn=0),
    "hs quantised, pruned to nothing": dict(loss="hs", quantised=True, pruned=0, dim=4),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_model_variant_matches_fasttext(variant, lines, tmp_path):
    words = [w for line in lines[:30] for w in line.split()][::3]  # some real words in the vocabulary
    labels = [f"__label__l{i}" for i in range(23)]
    path = write_fasttext_model(tmp_path / "model.bin", words, labels, **VARIANTS[variant])
    ours, theirs = FastTextModel(path), fasttext.load_model(str(path))
    sample = lines[::7] + EDGE_LINES
    for k, threshold in ((3, 0.0), (len(labels), 0.0), (5, 0.05)):
        for line, row in zip(sample, ours.predict(sample, k=k, threshold=threshold)):
            _close({label: p for p, label in row}, _reference(theirs, line, k, threshold))
    # lines as spans of one token list (what LID windows use) score as lines
    lines = [line.split() for line in sample]
    spans = ours.top_k_spans([t for line in lines for t in line], [len(line) for line in lines], 5)
    assert all(np.array_equal(a, b) for a, b in zip(spans, ours.top_k(lines, 5)))


def test_a_line_scores_the_same_in_any_batch(lines):
    """Rows must not depend on their batch (verification runs in chunks on several workers)."""
    model = FastTextModel(bundled_lid_path())
    tokens = [line.split(" ") for line in lines]
    labels, probs = model.top_k(tokens, 5)
    fresh = FastTextModel(bundled_lid_path())  # another cache, filled in another order
    for start in (0, 5, 17):
        part_labels, part_probs = fresh.top_k(tokens[start::3], 5)
        assert np.array_equal(part_labels, labels[start::3])
        assert np.array_equal(part_probs, probs[start::3])
    single = [fresh.top_k([t], 5) for t in tokens[:40]]
    assert all(np.array_equal(l[0], labels[i]) and np.array_equal(p[0], probs[i]) for i, (l, p) in enumerate(single))


def test_word_cache_starts_over_when_full_and_stays_exact(lines):
    model = FastTextModel(bundled_lid_path())
    model._cache_rows = 50  # far fewer than one batch's words
    tokens = [line.split(" ") for line in lines[:60]]
    expected = FastTextModel(bundled_lid_path()).top_k(tokens, 5)
    for _ in range(2):
        got = model.top_k(tokens, 5)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert len(model._index) <= len({t for line in tokens for t in line}) + 1


def test_lid_model_by_path_and_a_file_that_is_not_one(tmp_path, udhr):
    labels = ["__label__swh_Latn", "__label__eng_Latn", "__label__hau_Latn"]
    words = [w for t in udhr("swh")[:3] + udhr("eng")[:3] for w in t.split()]
    path = write_fasttext_model(tmp_path / "glotlid-like.bin", words, labels, loss="softmax", dim=16)
    lid = LidModel(path)
    assert lid.covers("hau_Latn") and not lid.covers("ha")
    assert set(lid.predict([udhr("swh")[0]])[0]) <= {"swh_Latn", "eng_Latn", "hau_Latn"}
    junk = tmp_path / "not-a-model.bin"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ConfigError, match="not-a-model.bin.*fastText"):
        LidModel(junk)
    with pytest.raises(ConfigError, match="missing.bin"):
        LidModel(tmp_path / "missing.bin")
