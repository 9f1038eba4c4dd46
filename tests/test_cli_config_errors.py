"""Config mistakes: exit code 2, one message naming the field and the fix, nothing written."""

from pathlib import Path

import pytest
import yaml

from synth.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _job(tmp_path: Path, **changes) -> Path:
    job = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    for target in job["targets"]:
        target["seeds"] = str(EXAMPLES / target["seeds"])
    job["sources"]["path"] = str(EXAMPLES / job["sources"]["path"])
    for key, value in changes.items():
        value(job) if callable(value) else job.__setitem__(key, value)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _add_ewe(job):
    job["targets"].append({"lang": "ewe_Latn", "rows": 2, "methods": {"translate": 1.0}})


CASES = {
    "unknown key": (lambda j: j.__setitem__("tagets", []), ["tagets", "unknown key"]),
    "unknown nested key": (lambda j: j["engine"].__setitem__("replica", 2), ["engine.replica", "unknown key"]),
    "unknown language": (lambda j: j["targets"][0].__setitem__("lang", "xyz_Latn"),
                         ["targets[0].lang", "xyz_Latn", "languages/xyz_Latn.yaml"]),
    "missing seeds file": (lambda j: j["targets"][1].__setitem__("seeds", "/nonexistent/seeds.jsonl"),
                           ["targets[1].seeds", "/nonexistent/seeds.jsonl", "not found"]),
    "missing sources file": (lambda j: j["sources"].__setitem__("path", "/nonexistent/en.jsonl"),
                             ["sources.path", "not found"]),
    "language not covered by LID": (_add_ewe, ["targets[3].lang", "ewe_Latn", "lid: skip", "GlotLID"]),
    "unknown category": (lambda j: j["targets"][0].__setitem__("categories", ["poetry"]),
                         ["targets.0.categories", "poetry"]),
    "unknown bundled model": (lambda j: j["engine"].__setitem__("model", "bundled:nope"),
                              ["engine.model", "bundled:smollm2"]),
    "unknown preset": (lambda j: j["verify"].__setitem__("preset", "lenient"), ["verify.preset", "default"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_error_exits_2_with_a_clear_message_and_writes_nothing(case, tmp_path, capsys):
    change, expected = CASES[case]
    job = _job(tmp_path, change=change)
    out = tmp_path / "out"
    assert main(["run", str(job), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synth: error:")
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert not out.exists()


def test_hausa_with_lid_skip_is_accepted_by_validation(tmp_path):
    from synth.config import parse_job
    from synth.prepare import prepare

    def add(job):
        job["targets"].append({"lang": "hau_Latn", "rows": 2, "methods": {"translate": 1.0}, "lid": "skip"})

    prepared = prepare(parse_job(_job(tmp_path, change=add)))
    assert "hau_Latn" in prepared.lid_skip


def test_a_seed_with_a_lone_surrogate_escape_is_refused_by_file_row_and_character(tmp_path, capsys):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text((EXAMPLES / "seeds" / "swh_Latn.jsonl").read_text().splitlines()[0] + "\n"
                     + '{"messages": [{"role": "user", "content": "Habari?"}, {"role": "assistant", '
                     + '"content": "Nzuri \\udc9f sana."}]}\n')
    job = _job(tmp_path, change=lambda j: j["targets"][0].__setitem__("seeds", str(seeds)))
    out = tmp_path / "out"
    assert main(["run", str(job), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    for fragment in ("targets[0].seeds", f"{seeds} row 2", "assistant message", "U+DC9F at character 6"):
        assert fragment in err, (fragment, err)
    assert not out.exists()


def test_missing_job_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml"), "--output", str(tmp_path / "o")]) == 2
    assert "job file not found" in capsys.readouterr().err
