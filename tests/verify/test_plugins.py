"""A user's own filter, written in a module of their own, through `synth verify` end to end: from a
preset entry (`module:`, `class:`, per-language thresholds) and from code; a broken one stops the
job naming it, never skipped."""

import textwrap
import uuid
from pathlib import Path

import polars as pl
import pytest

from synth.cli import main
from synth.errors import ConfigError
from synth.verify import load_preset
from synth.verify.cli_verify import verify_file
from synth.verify.pairs import PARALLEL_MIN_ROWS

PLUGIN = '''
import os
import pathlib
import time

from synth.verify import Filter


class Glossary(Filter):
    """Glossary terms in the text: a domain the user wants covered."""

    name = "glossary"
    higher_is_better = True
    default_threshold = 1
    description = "glossary terms in the text"

    def __init__(self, words, **kwargs):
        super().__init__(**kwargs)
        self.words = {w.lower() for w in words}

    def score(self, batch):
        return [float(sum(w.strip(".,").lower() in self.words for w in c.text.split())) if c.text.strip() else None
                for c in batch]


class Raises(Glossary):
    name = "raises"

    def score(self, batch):
        raise ValueError("glossary file is gone")


class Short(Glossary):
    name = "short"

    def score(self, batch):
        return [1.0] * (len(batch) - 1)


class Words(Glossary):
    name = "words"

    def score(self, batch):
        return ["many"] * len(batch)


class Named(Glossary):
    name = "surplus"


class FailsFirst(Glossary):
    """Raises on the chunk holding row r0; any other chunk takes a second, then leaves a mark."""
    name = "failsfirst"

    def __init__(self, words, marks, **kwargs):
        super().__init__(words, **kwargs)
        self.marks = marks

    def score(self, batch):
        if any(c.id == "r0" for c in batch):
            raise ValueError("the first chunk fails")
        time.sleep(1.0)
        pathlib.Path(self.marks, f"{os.getpid()}-{batch[0].id}").touch()
        return [1.0] * len(batch)
'''

# Swahili and Tagalog sentences written for this test; the glossary: mvua, ulan (rain)
ROWS = [
    ("sw-both", "swh_Latn", "Mvua ilinyesha sana jana na mvua itanyesha tena kesho asubuhi."),
    ("sw-one", "swh_Latn", "Mvua ilinyesha sana jana jioni katika kijiji chetu kidogo."),
    ("sw-none", "swh_Latn", "Watoto walienda shuleni mapema asubuhi pamoja na walimu wao."),
    ("tl-both", "tgl_Latn", "Umuulan kahapon at uulan ulit bukas ng umaga, ulan ulan."),
    ("tl-one", "tgl_Latn", "Malakas ang ulan kahapon sa aming maliit na nayon sa bundok."),
]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A module of the user's, importable as plugins_<random> (a fresh name: no stale import)."""
    name = f"plugins_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _pairs(tmp_path, rows=ROWS):
    path = tmp_path / "in.parquet"
    pl.DataFrame({"id": [r[0] for r in rows], "lang": [r[1] for r in rows], "source_lang": [None] * len(rows),
                  "source": [None] * len(rows), "text": [r[2] for r in rows]},
                 schema_overrides={"source_lang": pl.String, "source": pl.String}).write_parquet(path)
    return path


def _preset(tmp_path, module, cls="Glossary", extra=""):
    path = tmp_path / "mine.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: mine
        filters:
          - empty
          - script
          - module: {module}
            class: {cls}
            args: {{words: [mvua, ulan]}}
        thresholds: {{empty: 8}}
        languages:
          tgl_Latn: {{glossary: 2}}
        {extra}"""))
    return path


def test_a_preset_filter_scores_thresholds_per_language_and_explains(plugin, tmp_path, capsys):
    out = tmp_path / "out.parquet"
    assert main(["verify", str(_pairs(tmp_path)), "--output", str(out), "--filters", str(_preset(tmp_path, plugin))]) == 0
    result = pl.read_parquet(out)
    assert result["score_glossary"].to_list() == [2.0, 1.0, 0.0, 2.0, 1.0]
    # at least 1 term in Swahili (the class default), at least 2 in Tagalog (the preset's languages:)
    assert result["accepted"].to_list() == [True, True, False, True, False]
    assert result["reject_reasons"].to_list() == [[], [], ["glossary"], [], ["glossary"]]
    assert result["reject_details"].to_list()[2] == ["glossary 0 < 1"]
    assert result["reject_details"].to_list()[4] == ["glossary 1 < 2"]
    assert "'glossary': 2" in capsys.readouterr().out


def test_a_filter_made_in_code_runs_like_a_preset_one(plugin, tmp_path):
    import importlib

    glossary = importlib.import_module(plugin).Glossary(["mvua"], per_language={"tgl_Latn": 5})
    counts = verify_file(_pairs(tmp_path), tmp_path / "out.parquet", "default", lid_skip={"tgl_Latn"},
                         filters=[glossary])
    result = pl.read_parquet(tmp_path / "out.parquet")
    assert result["score_glossary"].to_list() == [2.0, 1.0, 0.0, 0.0, 0.0]
    assert ["glossary" in r for r in result["reject_reasons"].to_list()] == [False, False, True, True, True]
    assert counts["reasons"]["glossary"] == "glossary terms in the text"


@pytest.mark.parametrize("cls, said", [
    ("Raises", "filter 'raises' ({m}.Raises) failed on a batch of 5 rows: ValueError: glossary file is gone"),
    ("Short", "filter 'short' ({m}.Short) returned 4 scores for a batch of 5 rows"),
    ("Words", "filter 'words' ({m}.Words) returned a str score ('many')"),
])
def test_a_broken_filter_stops_the_job_naming_it(plugin, tmp_path, capsys, cls, said):
    out = tmp_path / "out.parquet"
    preset = _preset(tmp_path, plugin, cls).read_text().replace("glossary: 2", f"{cls.lower()}: 2")
    (tmp_path / "mine.yaml").write_text(preset)
    code = main(["verify", str(_pairs(tmp_path)), "--output", str(out), "--filters", str(tmp_path / "mine.yaml")])
    assert code == 1
    assert said.format(m=plugin) in capsys.readouterr().err
    assert not out.exists()


def test_a_broken_filter_stops_the_job_in_forked_workers_too(plugin, tmp_path, capsys):
    rows = [(f"r{i}", *ROWS[i % len(ROWS)][1:]) for i in range(PARALLEL_MIN_ROWS + 100)]
    preset = _preset(tmp_path, plugin, "Raises").read_text().replace("glossary: 2", "raises: 2")
    (tmp_path / "mine.yaml").write_text(preset)
    out = tmp_path / "out.parquet"
    assert main(["verify", str(_pairs(tmp_path, rows)), "--output", str(out), "--filters", str(tmp_path / "mine.yaml")]) == 1
    assert f"filter 'raises' ({plugin}.Raises) failed" in capsys.readouterr().err
    assert not out.exists()


def test_after_a_failed_chunk_the_workers_finish_theirs_before_the_pool_ends(plugin, tmp_path, capsys):
    """The pool ends its workers with SIGTERM; one killed while writing its result would leave the
    result queue locked and the shutdown hanging. So after a failure the chunks being scored finish
    first (each leaves a mark here); the queued ones are skipped."""
    rows = [(f"r{i}", *ROWS[i % len(ROWS)][1:]) for i in range(PARALLEL_MIN_ROWS + 100)]
    marks = tmp_path / "marks"
    marks.mkdir()
    preset = _preset(tmp_path, plugin, "FailsFirst").read_text().replace("glossary: 2", "failsfirst: 2")
    preset = preset.replace("args: {words: [mvua, ulan]}", f"args: {{words: [mvua], marks: '{marks}'}}")
    (tmp_path / "mine.yaml").write_text(preset)
    out = tmp_path / "out.parquet"
    assert main(["verify", str(_pairs(tmp_path, rows)), "--output", str(out), "--filters", str(tmp_path / "mine.yaml")]) == 1
    assert "the first chunk fails" in capsys.readouterr().err and not out.exists()
    assert list(marks.iterdir())  # the chunk the other worker was on was finished, not killed


def test_preset_mistakes_are_config_errors_naming_the_entry(plugin, tmp_path, capsys):
    pairs, out = _pairs(tmp_path), tmp_path / "out.parquet"
    for module, cls, said in [("no_such_module_xyz", "Glossary", "cannot import 'no_such_module_xyz'"),
                              (plugin, "Missing", f"{plugin} has no synth.verify.Filter subclass 'Missing'"),
                              (plugin, "Named", "is named 'surplus', like a built-in filter or reject reason")]:
        preset = _preset(tmp_path, module, cls)
        assert main(["verify", str(pairs), "--output", str(out), "--filters", str(preset)]) == 2
        assert said in capsys.readouterr().err
    assert not out.exists()
    typo = _preset(tmp_path, plugin)
    typo.write_text(typo.read_text().replace("tgl_Latn: {glossary: 2}", "tgl_Latn: {glosary: 2}"))
    with pytest.raises(ConfigError, match=r"unknown filters \['glosary'\]"):
        load_preset(str(typo))


def test_job_add_filter_keeps_filter_objects_and_refuses_others(plugin):
    import importlib

    import synth

    job = synth.Job.from_yaml(Path(__file__).resolve().parents[2] / "examples" / "demo.yaml")
    glossary = importlib.import_module(plugin).Glossary(["mvua"])
    assert job.add_filter(glossary).filters == [glossary]
    with pytest.raises(ConfigError, match="not a synth.verify.Filter"):
        job.add_filter(lambda batch: [1.0] * len(batch))
    with pytest.raises(ConfigError, match="already added"):
        job.add_filter(importlib.import_module(plugin).Glossary(["ulan"]))


def test_calibrate_keeps_a_user_filter_and_its_thresholds(plugin, tmp_path):
    from synth.verify.calibrate import calibrate

    out = tmp_path / "calibrated.yaml"
    calibrate(_pairs(tmp_path), out, base=str(_preset(tmp_path, plugin)), min_rows=2, lid_skip={"tgl_Latn"})
    preset = load_preset(str(out))
    assert preset.filters == ["empty", "script", "glossary"]
    assert preset.plugins["glossary"].class_name == "Glossary" and preset.plugins["glossary"].args == {"words": ["mvua", "ulan"]}
    assert preset.languages["tgl_Latn"]["glossary"] == 2  # not calibrated: no bounds known for it
    assert f"module: {plugin}" in out.read_text() and "class: Glossary" in out.read_text()


def test_a_slow_user_filter_is_left_out_of_the_drivers_check_unless_it_says_light():
    """Before back-translating, the driver runs the filters that need no back-translation and no
    model. A user's `survivors_only` filter may hold one (a classifier, an API call): it is left out
    unless its class says `light = True`, and then it sees the rows the other filters kept."""
    from synth.languages import load_registry
    from synth.verify import Candidate, Filter, Verifier

    seen: dict[str, list[str]] = {"slow": [], "slowlight": []}

    class Slow(Filter):
        name = "slow"
        default_threshold = 0.5
        survivors_only = True

        def score(self, batch):
            seen[self.name] += [c.id for c in batch]
            return [0.0] * len(batch)

    class SlowLight(Slow):
        name = "slowlight"
        light = True

    registry = load_registry()
    verifier = Verifier(load_preset("default"), {c: registry[c] for c in ("swh_Latn", "eng_Latn")},
                        filters=[Slow(), SlowLight()])
    source = "Everyone has the right to education, and it shall be free at least in the elementary stages."
    rows = [Candidate("sw", "swh_Latn", "Kila mtu ana haki ya kupata elimu, na elimu itatolewa bure angalau "
                      "katika ngazi za mwanzo.", source, "eng_Latn"),
            Candidate("en", "swh_Latn", source, source, "eng_Latn")]
    assert not Slow.light and SlowLight.light
    assert verifier.rejected_before_back_translation(rows) == {0, 1}  # sw by slowlight, en by lid and copy
    assert seen == {"slow": [], "slowlight": ["sw"]}
