"""LID per language: CLD2 for the languages lid.176 lacks, the router, ensembles, hf:// fastText models."""

import os
import subprocess
import sys

import polars as pl
import pytest

from synth.cli import main
from synth.errors import ConfigError
from synth.languages import LanguageSpec, load_registry
from synth.verify import Candidate, Verifier, load_preset
from synth.verify.lid.router import LidFilter, LidModel, LidRouter, MixedLanguageFilter, load_lid, uncovered_message
from synth.verify.lid.cld2 import load_cld2
from synth.verify.lid.hub import hub_cache_path
from tests.fasttext_fixture import write_fasttext_model

# registry code -> UDHR file, for languages the default preset reads with CLD2
CLD2_UDHR = {"hau_Latn": "hau_NG", "ibo_Latn": "ibo", "zul_Latn": "zul", "xho_Latn": "xho", "kin_Latn": "kin",
             "lug_Latn": "lug", "lin_Latn": "lin", "nya_Latn": "nya_chechewa", "sna_Latn": "sna", "tir_Ethi": "tir",
             "twi_Latn": "aka_asante", "wol_Latn": "wol", "ayr_Latn": "ayr", "gaz_Latn": "gax", "som_Latn": "som",
             "yor_Latn": "yor", "swh_Latn": "swh"}


def _halves(text):
    words = text.split()
    return " ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2:])


def _lid_filters(preset_name="default", **update):
    preset = load_preset(preset_name).model_copy(update={"filters": ["lid", "mixed_language"], **update})
    return Verifier(preset, load_registry())


def test_every_registry_language_but_ewe_has_a_backend_in_the_default_preset():
    preset = load_preset("default")
    router = LidRouter(load_registry(), preset.lid_model, preset.lid_backends)
    assert router.uncovered(load_registry()) == ["ewe_Latn"]
    assert router.describe("hau_Latn") == "ha (cld2)" and router.describe("eng_Latn") == "en (fasttext)"
    assert router.describe("som_Latn") == "so (cld2)"  # lid.176 is weak on Somali: the preset picks CLD2
    message = uncovered_message(router, ["ewe_Latn"])
    assert "ewe_Latn" in message and "hf://cis-lmu/glotlid" in message


def test_cld2_labels_name_the_language_on_real_text(udhr):
    """Each language the preset reads with CLD2: CLD2's top guess on its UDHR text is its label."""
    cld2, registry = load_cld2(), load_registry()
    for code, udhr_code in CLD2_UDHR.items():
        probs = cld2.predict([" ".join(udhr(udhr_code)[:5])])[0]
        assert max(probs, key=probs.get) == registry[code].lid_labels["cld2"], (code, probs)
    for spec in registry.values():
        assert all(cld2.covers(label) for label in spec.lid_labels.values()), spec.code


def test_default_preset_keeps_real_text_and_refuses_wrong_language_and_code_switching(udhr):
    verifier = _lid_filters()
    english = udhr("eng")
    for code in ("hau_Latn", "zul_Latn", "xho_Latn", "tir_Ethi", "som_Latn"):
        texts = [t for t in udhr(CLD2_UDHR[code]) if len(t) > 80]
        good = verifier.verify([Candidate(id=str(i), lang=code, text=t, source=t) for i, t in enumerate(texts)])
        assert sum(v.accepted for v in good) >= 0.9 * len(texts), code
        switched = [f"{_halves(t)[0]} {_halves(e)[1]}" for t, e in zip(texts, english[: len(texts)]) if len(e) > 200]
        mixed = verifier.verify([Candidate(id=str(i), lang=code, text=t, source=t) for i, t in enumerate(switched)])
        assert not any(v.accepted for v in mixed), code
        assert all("mixed_language" in v.reasons for v in mixed[:3]), code
    # wrong language: Zulu as Xhosa, Swahili and English as Hausa
    for code, other in (("xho_Latn", "zul"), ("hau_Latn", "swh"), ("hau_Latn", "eng")):
        texts = [t for t in udhr(other) if len(t) > 80]
        verdicts = verifier.verify([Candidate(id=str(i), lang=code, text=t, source=t) for i, t in enumerate(texts)])
        assert sum(not v.accepted for v in verdicts) >= 0.9 * len(texts), (code, other)
        assert "lid" in verdicts[0].reasons and "(cld2)" in verdicts[0].details[0]


def test_an_ensemble_averages_its_backends(udhr):
    texts = [t for t in udhr("som") if len(t) > 80][:8]
    switched = [f"{_halves(t)[0]} {_halves(e)[1]}" for t, e in zip(texts, udhr("eng"))]
    batch = [Candidate(id=str(i), lang="som_Latn", text=t, source=t) for i, t in enumerate(texts + switched)]
    registry = load_registry()
    scores = {}
    for name, backends in (("fasttext", ["fasttext"]), ("cld2", ["cld2"]), ("both", ["fasttext", "cld2"])):
        router = LidRouter(registry, choose={"som_Latn": backends})
        scores[name] = (LidFilter(router).score(batch), MixedLanguageFilter(router).score(batch))
    for f in range(2):
        for a, b, both in zip(scores["fasttext"][f], scores["cld2"][f], scores["both"][f]):
            assert both == pytest.approx((a + b) / 2)
    assert scores["fasttext"][0] != scores["cld2"][0]  # two real, different opinions


def test_a_preset_naming_a_backend_without_the_language_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="lid_backends.hau_Latn: fasttext has no label for hau_Latn"):
        LidRouter(load_registry(), choose={"hau_Latn": ["fasttext"]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfilters: [lid]\nlid_backends: {hau_Latn: [cld3]}\n")
    with pytest.raises(ConfigError, match="lid_backends"):
        load_preset(str(bad))
    with pytest.raises(ValueError, match="lid_labels"):
        LanguageSpec(code="hau_Latn", name="H", native_name="H", script="Latn", iso639_3="hau", lid_label=None,
                     lid_labels={"cld3": "ha"}, resource_level="low")


def test_cld2_survives_text_it_refuses():
    cld2 = load_cld2()
    scan = cld2.scan(["Kowane mutum yana da \x01 hakkin rayuwa da walwala \ud800 da kuma tsaron lafiyarsa.", ""])
    assert scan.first[1] == scan.first[2] > 0  # the empty text has no window
    assert {cld2.label_list[i] for i in scan.labels[:, 0]} == {"ha"}


def test_hf_model_is_read_from_the_cache_and_its_labels_mapped(tmp_path, monkeypatch):
    """A GlotLID-format model (labels like `hau_Latn`) where `hf://cis-lmu/glotlid` is cached: loaded
    without a download, every language it has read by it, the rest by CLD2."""
    monkeypatch.setenv("SYNTH_CACHE", str(tmp_path))
    _, filename, path = hub_cache_path("hf://cis-lmu/glotlid")
    assert filename == "model.bin" and path.is_relative_to(tmp_path)
    path.parent.mkdir(parents=True)
    labels = ["__label__hau_Latn", "__label__eng_Latn", "__label__ewe_Latn", "__label__swh_Latn"]
    write_fasttext_model(path, ["Kowane", "mutum", "the", "Ame", "sia"], labels)
    load_lid.cache_clear()
    try:
        model = load_lid("hf://cis-lmu/glotlid")
        assert model.path == path
        registry = load_registry()
        router = LidRouter(registry, "hf://cis-lmu/glotlid")
        assert router.describe("hau_Latn") == "hau_Latn (fasttext)"
        assert router.describe("ewe_Latn") == "ewe_Latn (fasttext)"  # covered now
        assert router.describe("zul_Latn") == "zu (cld2)"  # not in this model
        assert router.label(model, "eng_Latn") == "eng_Latn"  # the source language, for mixed_language
        batch = [Candidate(id="1", lang="hau_Latn", text="Kowane mutum yana da hakkin rayuwa", source="x")]
        [score] = LidFilter(router).score(batch)
        probs = model.scan([batch[0].text]).text_probs(len(model.label_list))[0]
        assert score == pytest.approx(probs[model.label_ids["hau_Latn"]] / probs.max())
    finally:
        load_lid.cache_clear()


def test_hf_reference_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="hf://owner/repo"):
        LidModel("hf://glotlid")
    # nothing cached and no way to download: a ConfigError naming the fix (offline: no network is tried)
    env = {**os.environ, "SYNTH_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    code = ("from synth.errors import ConfigError\nfrom synth.verify.lid.router import LidModel\n"
            "try:\n    LidModel('hf://cis-lmu/glotlid')\nexcept ConfigError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    assert "cannot download model.bin from cis-lmu/glotlid" in out and "set lid_model to its path" in out


def test_synth_verify_reads_hausa_and_refuses_ewe_naming_the_fix(udhr, tmp_path, capsys):
    english = udhr("eng")[:6]
    for lang, code in (("hau_Latn", "hau_NG"), ("ewe_Latn", "ewe")):
        src = tmp_path / f"{lang}.parquet"
        pl.DataFrame({"id": [f"r{i}" for i in range(6)], "lang": [lang] * 6, "source_lang": ["eng_Latn"] * 6,
                      "source": english, "text": udhr(code)[:6]}).write_parquet(src)
    out = tmp_path / "out.parquet"
    assert main(["verify", str(tmp_path / "ewe_Latn.parquet"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ewe_Latn" in err and "hf://cis-lmu/glotlid" in err and "--lid-skip ewe_Latn" in err
    assert not out.exists()
    assert main(["verify", str(tmp_path / "hau_Latn.parquet"), "--output", str(out)]) == 0
    result = pl.read_parquet(out)
    assert result["score_lid"].to_list() == pytest.approx([1.0] * 6, abs=0.05)


def test_synth_languages_shows_backends_and_measured_accuracy(capsys):
    assert main(["languages"]) == 0
    out = capsys.readouterr().out
    hausa = next(line for line in out.splitlines() if line.startswith("hau_Latn"))
    assert "cld2 ha 1.00" in hausa
    assert "fasttext en 1.00" in next(line for line in out.splitlines() if line.startswith("eng_Latn"))
    assert "no LID: ewe_Latn" in out and "hf://cis-lmu/glotlid" in out
    assert main(["languages", "--format", "json"]) == 0
    rows = {r["code"]: r for r in __import__("json").loads(capsys.readouterr().out)}
    assert rows["zul_Latn"]["lid"] == [{"backend": "cld2", "label": "zu", "udhr_top1": 1.0}]
    assert rows["ewe_Latn"]["lid"] == []


def test_a_calibrated_preset_keeps_the_lid_backends_and_calibrates_hausa(udhr, tmp_path):
    from synth.verify.calibrate import calibrate

    english, hausa = udhr("eng"), udhr("hau_NG")
    keep = [n for n in range(min(len(english), len(hausa))) if len(english[n]) > 80 and len(hausa[n]) > 80]
    src = tmp_path / "good.parquet"
    pl.DataFrame({"id": [str(n) for n in keep], "lang": ["hau_Latn"] * len(keep),
                  "source_lang": ["eng_Latn"] * len(keep), "source": [english[n] for n in keep],
                  "text": [hausa[n] for n in keep]}).write_parquet(src)
    result = calibrate(src, tmp_path / "hausa.yaml", min_rows=10)
    assert "lid" in result["calibrated"]["hau_Latn"]
    preset = load_preset(str(tmp_path / "hausa.yaml"))
    assert preset.lid_backends == load_preset("default").lid_backends
