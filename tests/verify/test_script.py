"""The script filter on real UDHR text in 22 scripts: true texts pass, text in another script fails."""

import pytest

from synth.languages import load_registry
from synth.verify import Candidate, Verifier, load_preset
from synth.text import dominant_unspaced, known_script, script_share
from synth.verify.rules.script import ScriptFilter

# UDHR file code -> (a language code for the filter, its ISO 15924 script)
TEXTS = {
    "swh": ("swh_Latn", "Latn"), "yor": ("yor_Latn", "Latn"), "tat": ("tat_Cyrl", "Cyrl"),
    "amh": ("amh_Ethi", "Ethi"), "khm": ("khm_Khmr", "Khmr"), "hin": ("hin_Deva", "Deva"),
    "mya": ("mya_Mymr", "Mymr"), "tha": ("tha_Thai", "Thai"), "ben": ("ben_Beng", "Beng"),
    "tam": ("tam_Taml", "Taml"), "tel": ("tel_Telu", "Telu"), "kat": ("kat_Geor", "Geor"),
    "hye": ("hye_Armn", "Armn"), "heb": ("heb_Hebr", "Hebr"), "ell_monotonic": ("ell_Grek", "Grek"),
    "urd": ("urd_Arab", "Arab"), "sin": ("sin_Sinh", "Sinh"), "bod": ("bod_Tibt", "Tibt"),
    "zgh": ("zgh_Tfng", "Tfng"), "cmn_hans": ("zho_Hans", "Hans"), "jpn": ("jpn_Jpan", "Jpan"),
    "kor": ("kor_Kore", "Kore"),
}


@pytest.fixture(scope="module")
def texts(udhr):
    return {code: udhr(code) for code in TEXTS}


@pytest.fixture(scope="module")
def script_filter():
    return ScriptFilter({lang: script for lang, script in TEXTS.values()})


def test_true_texts_pass_in_every_script(texts, script_filter):
    for code, (lang, script) in TEXTS.items():
        batch = [Candidate(id=f"{code}-{i}", lang=lang, text=t) for i, t in enumerate(texts[code])]
        scores = script_filter.score(batch)
        assert len(scores) >= 29
        assert min(scores) >= 0.97, (code, min(scores))
        assert all(script_filter.accept(s, lang) for s in scores)


def test_text_in_the_wrong_script_fails(texts, script_filter):
    # every language's articles, labelled as a language of another script (the next one in the table)
    codes = list(TEXTS)
    for code, other in zip(codes, codes[1:] + codes[:1]):
        lang, script = TEXTS[other]
        if script == TEXTS[code][1] or {script, TEXTS[code][1]} <= {"Hans", "Jpan", "Kore"}:
            continue  # same script, or CJK scripts that share Han characters
        batch = [Candidate(id=f"{code}-{i}", lang=lang, text=t) for i, t in enumerate(texts[code])]
        scores = script_filter.score(batch)
        assert max(scores) <= 0.05, (code, "as", lang, max(scores))
        assert not any(script_filter.accept(s, lang) for s in scores)


def test_code_and_urls_do_not_count_against_a_khmer_answer(texts):
    khmer = texts["khm"][2]
    with_code = (f"{khmer}\n\n```python\nfor item in items:\n    print(item.name, item.value)\n```\n"
                 f"មើល https://example.org/documentation/getting-started ឬ `pip install requests` "
                 f"ឬ support@example.org ។")
    assert script_share(with_code, "Khmr") == 1.0
    # Latin prose (not code) does count: a brand name is fine, half an English answer is not
    assert script_share(f"{khmer} iPhone", "Khmr") > 0.9
    half = script_share(f"{khmer[: len(khmer) // 2]} {texts['swh'][2]}", "Khmr")
    assert 0.2 < half < 0.8


def test_no_letters_or_unknown_script_is_not_applicable():
    f = ScriptFilter({"khm_Khmr": "Khmr", "xxx_Zzzz": "Zzzz"})
    scores = f.score([Candidate(id="a", lang="khm_Khmr", text="12 + 30 = 42 !"),
                      Candidate(id="b", lang="xxx_Zzzz", text="some text"),
                      Candidate(id="c", lang="not_Listed", text="some text")])
    assert scores == [None, None, None]
    known = ("Latn", "Cyrl", "Ethi", "Khmr", "Arab", "Deva", "Hans", "Jpan", "Kore", "Tfng", "Tibt", "Adlm", "Olck")
    assert all(known_script(s) for s in known) and not known_script("Zzzz") and not known_script("Nope")


def test_unspaced_scripts_are_detected(texts):
    assert all(dominant_unspaced(t) for code in ("khm", "tha", "mya", "cmn_hans", "jpn", "bod") for t in texts[code])
    assert not any(dominant_unspaced(t) for code in ("swh", "amh", "hin", "kor", "tat") for t in texts[code])


def test_default_preset_rejects_the_wrong_script_with_its_reason(udhr):
    registry = load_registry()
    verifier = Verifier(load_preset("default"), registry)
    english, khmer = udhr("eng"), udhr("khm")
    batch = [
        Candidate(id="ok", lang="khm_Khmr", text=khmer[5], source=english[5], source_lang="eng_Latn"),
        Candidate(id="latin", lang="amh_Ethi", text=english[5], source=english[5], source_lang="eng_Latn"),
        Candidate(id="khmer-as-amharic", lang="amh_Ethi", text=khmer[6], source=english[6], source_lang="eng_Latn"),
    ]
    verdicts = verifier.verify(batch)
    assert verdicts[0].scores["script"] == 1.0 and "script" not in verdicts[0].reasons
    for v in verdicts[1:]:
        assert "script" in v.reasons and v.scores["script"] == 0.0
        assert any(d.startswith("script: 0% of letters in Ethi") for d in v.details)
