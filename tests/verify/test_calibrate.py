"""`synth calibrate` round trip on real UDHR pairs: calibrate through the CLI, then verify with the result."""

import math
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.cli import main
from synth.verify import load_preset
from synth.verify.calibrate import LOOSEST, STRICTEST, calibrate

SYNTH = Path(sys.executable).with_name("synth")


def _pairs(udhr, code, lang, text_of=lambda src, tgt: tgt):
    english, target = udhr("eng"), udhr(code)
    keep = [n for n in range(min(len(english), len(target))) if len(english[n]) > 80 and len(target[n]) > 80]
    return {"id": [f"{lang}-{n}" for n in keep], "lang": [lang] * len(keep), "source_lang": ["eng_Latn"] * len(keep),
            "source": [english[n] for n in keep], "text": [text_of(english[n], target[n]) for n in keep]}


def _write(path, *parts):
    frame = pl.concat([pl.DataFrame(p) for p in parts])
    frame.write_parquet(path)
    return frame


@pytest.fixture(scope="module")
def good_file(udhr, tmp_path_factory):
    """French and Tagalog UDHR articles (27 and 26 rows: calibrated) and 10 Swahili rows (too few)."""
    path = tmp_path_factory.mktemp("good") / "good.parquet"
    swahili = _pairs(udhr, "swh", "swh_Latn")
    _write(path, _pairs(udhr, "fra", "fra_Latn"), _pairs(udhr, "tgl", "tgl_Latn"), {k: v[:10] for k, v in swahili.items()})
    return path


def test_calibrate_then_verify_through_the_cli(udhr, good_file, tmp_path):
    preset_path = tmp_path / "filters" / "udhr.yaml"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    run = subprocess.run([str(SYNTH), "calibrate", str(good_file), "--output", str(preset_path), "--base", "default",
                          "--quantile", "0.05"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "swh_Latn: 10 rows; kept the base thresholds" in run.stdout

    text = preset_path.read_text()
    assert text.startswith("# Calibrated by `synth calibrate good.parquet --base default --quantile 0.05`")
    assert "# Kept the base thresholds (fewer than 20 rows): swh_Latn (10)." in text
    assert "  # fra_Latn: " in text and "good rows" in text
    preset = load_preset(str(preset_path))
    default = load_preset("default")
    assert preset.name == "udhr" and preset.filters == default.filters and preset.thresholds == default.thresholds
    assert {"fra_Latn", "tgl_Latn"} <= set(preset.languages)
    for lang in set(preset.languages) - {"fra_Latn", "tgl_Latn"}:  # swh_Latn and the rest: as in the base
        assert preset.languages[lang] == default.languages[lang]
    assert preset.languages.get("swh_Latn") == default.languages.get("swh_Latn")
    for lang in ("fra_Latn", "tgl_Latn"):
        values = preset.languages[lang]
        assert {"lid", "mixed_language", "script", "length_ratio", "copy", "repetition"} <= set(values)
        assert not {"empty", "truncated", "dedup", "contamination", "laser", "roundtrip"} & set(values)
        assert STRICTEST["lid"] >= values["lid"] >= LOOSEST["lid"]
        assert STRICTEST["copy"] <= values["copy"] <= LOOSEST["copy"]
        assert STRICTEST["length_ratio"] <= values["length_ratio"] <= LOOSEST["length_ratio"]
        assert values["mixed_language"] >= STRICTEST["mixed_language"]  # every good row scores 0 here
    # calibrated on real translations, length ratio is tighter than the default's 2x for French
    assert preset.languages["fra_Latn"]["length_ratio"] < default.thresholds["length_ratio"]

    # held-out check: the same good rows pass at about the chosen rate, defects made from them fail
    test_file = tmp_path / "test.parquet"
    good = _pairs(udhr, "fra", "fra_Latn")
    copies = _pairs(udhr, "fra", "fra_Latn", lambda src, tgt: src)
    cut = _pairs(udhr, "fra", "fra_Latn", lambda src, tgt: tgt[: len(tgt) // 4])
    for part, kind in ((copies, "copy"), (cut, "cut")):
        part["id"] = [f"{i}-{kind}" for i in part["id"]]
    _write(test_file, good, copies, cut)
    out = tmp_path / "out.parquet"
    run = subprocess.run([str(SYNTH), "verify", str(test_file), "--output", str(out), "--filters", str(preset_path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = pl.read_parquet(out)
    is_good = ~(result["id"].str.ends_with("-copy") | result["id"].str.ends_with("-cut"))
    good_rows, bad_rows = result.filter(is_good), result.filter(~is_good)
    # each of ~6 calibrated filters may reject 5% of the good rows; real rows are rarely worst on several
    assert good_rows["accepted"].mean() >= 0.8, good_rows.filter(~pl.col("accepted"))["reject_reasons"].to_list()
    assert not bad_rows["accepted"].any()


def test_bounds_hold_when_the_good_set_is_not_good(udhr, tmp_path):
    """A 'good' file full of copied sources: the copy quantile is ~1.0, the threshold stays at the bound;
    and the length ratio (0: a copy has the source's length) is not made stricter than its bound."""
    path = tmp_path / "bad_good.parquet"
    _write(path, _pairs(udhr, "fra", "fra_Latn", lambda src, tgt: src))
    out = tmp_path / "copied.yaml"
    result = calibrate(path, out, quantile=0.02)
    fra = load_preset(str(out)).languages["fra_Latn"]
    assert fra["copy"] == LOOSEST["copy"] and result["calibrated"]["fra_Latn"]["copy"]["bounded"]
    assert fra["lid"] == LOOSEST["lid"]  # English text scores ~0 for French: floored
    assert "was outside the bounds" in out.read_text()
    assert math.isclose(fra["length_ratio"], STRICTEST["length_ratio"], rel_tol=1e-5)


@pytest.mark.parametrize("args, fragment", [
    (["--output", "{tmp}/preset.txt"], "a preset is a .yaml file"),
    (["--output", "{tmp}/p.yaml", "--quantile", "0.7"], "--quantile 0.7"),
    (["--output", "{tmp}/p.yaml", "--base", "lenient"], "no filter preset 'lenient'"),
])
def test_bad_arguments_exit_2_and_write_nothing(good_file, tmp_path, capsys, args, fragment):
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["calibrate", str(good_file), *args]) == 2
    assert fragment in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_calibrated_preset_yaml_is_plain_data(good_file, tmp_path):
    out = tmp_path / "plain.yaml"
    calibrate(good_file, out, min_rows=30)  # nobody has 30 rows: every language keeps the base
    data = yaml.safe_load(out.read_text())
    default = load_preset("default")
    assert (data["languages"] or {}) == default.languages and data["filters"] == default.filters
