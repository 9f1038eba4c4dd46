"""Data safety, as a new user and a security reviewer would try it (issue: never delete a user's files,
never persist a secret, one writer per run directory, exit 2 for every input mistake). No engine runs:
every case is refused before one would start; the endpoint given is a closed local port."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.cli import main
from synth.config import parse_job
from synth.conversations import Conversation
from synth.languages import get_language
from synth.methods.translate import TranslateMethod
from synth.plan import Attempt
from synth.prompts import load_prompts
from synth.rundir import RunDir
from synth.secrets import redact_url
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _job(directory: Path, **changes) -> Path:
    """The demo job with an OpenAI engine on a closed port (no engine can start), seeds and sources copied."""
    job = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    (directory / "seeds").mkdir(parents=True, exist_ok=True)
    for target in job["targets"]:
        (directory / target["seeds"]).write_bytes((EXAMPLES / target["seeds"]).read_bytes())
    (directory / "sources").mkdir(exist_ok=True)
    (directory / job["sources"]["path"]).write_bytes((EXAMPLES / job["sources"]["path"]).read_bytes())
    job["engine"] = {"type": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "m",
                     "api_key_env": None}
    job.update(changes)
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _refused(capsys, argv: list[str], *fragments: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("synth: error:") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def test_force_new_never_deletes_a_users_folder(tmp_path, capsys):
    job = _job(tmp_path / "project")
    mine = tmp_path / "mydir"
    (mine / "notes").mkdir(parents=True)
    (mine / "notes" / "thesis.txt").write_text("years of work")
    (mine / ".ssh").mkdir()
    (mine / ".ssh" / "id_ed25519").write_text("key")
    before = _tree(tmp_path)
    for flags in ([], ["--force-new"]):
        err = _refused(capsys, ["run", str(job), "--output", str(mine), *flags], "holds no synth run")
        assert "--force-new" not in err  # never recommended for a folder synth did not make
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("output", [".", ".."])
def test_output_dot_or_parent_of_the_job_is_refused(output, tmp_path, capsys, monkeypatch):
    job = _job(tmp_path / "home" / "project")
    (tmp_path / "home" / ".ssh").mkdir()
    (tmp_path / "home" / ".ssh" / "id_rsa").write_text("secret key")
    monkeypatch.chdir(job.parent)
    before = _tree(tmp_path)
    _refused(capsys, ["run", "job.yaml", "--output", output, "--force-new"], "synth never deletes")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "..", "a/b", ""])
def test_job_name_is_a_plain_name(name, tmp_path, capsys, monkeypatch):
    job = _job(tmp_path / "p", name=name)
    monkeypatch.chdir(tmp_path / "p")
    _refused(capsys, ["run", str(job), "--force-new"], "name:", "plain name")
    assert not (tmp_path / "p" / "out").exists() and not Path("/abs/path").exists()


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    job = _job(tmp_path)
    target = tmp_path / "results.parquet"
    target.write_bytes(b"mine")
    _refused(capsys, ["run", str(job), "--output", str(target)], "is a file")
    assert target.read_bytes() == b"mine"


def test_unreachable_endpoint_fails_preflight_and_writes_nothing(tmp_path, capsys):
    job = _job(tmp_path)
    out = tmp_path / "out"
    _refused(capsys, ["run", str(job), "--output", str(out)], "engine.base_url", "cannot reach the server")
    assert not out.exists()  # not even the lock: preflight runs before the run directory is written


def _synth_run_dir(out: Path, config_hash: str = "abc") -> None:
    """The files a run writes (the names DESIGN.md section 4 gives), as a finished run leaves them."""
    (out / "_work").mkdir(parents=True)
    (out / "_work" / "state.json").write_text(json.dumps({"config_hash": config_hash, "started_at": "2026-01-01T00:00:00+00:00"}))
    (out / "_work" / "job.json").write_text("{}")
    (out / "_work" / "round-0001-00000.parquet").write_bytes(b"x")
    (out / "swh_Latn").mkdir()
    (out / "swh_Latn" / "train-00000-of-00001.parquet").write_bytes(b"x")
    (out / "rejected" / "swh_Latn").mkdir(parents=True)
    (out / "rejected" / "swh_Latn" / "part-00000.parquet").write_bytes(b"x")
    (out / "manifest.json").write_text(json.dumps({"config_hash": config_hash, "status": "complete"}))
    (out / "README.md").write_text("---\n---\nSynthetic SFT data generated by synth with `m`")
    (out / "report.html").write_text("<title>synth report: x</title>")


def test_force_new_deletes_only_synths_own_files(tmp_path, capsys):
    out = tmp_path / "run"
    _synth_run_dir(out)
    (out / "swh_Latn" / "my_analysis.ipynb").write_text("{}")
    before = _tree(out)
    job = _job(tmp_path / "p")
    _refused(capsys, ["run", str(job), "--output", str(out), "--force-new"], "swh_Latn/my_analysis.ipynb",
             "synth did not write")
    assert _tree(out) == before
    (out / "swh_Latn" / "my_analysis.ipynb").unlink()
    (out / "README.md").write_text("my own readme")  # a user's file under a name synth also uses
    _refused(capsys, ["run", str(job), "--output", str(out), "--force-new"], "README.md")

    (out / "README.md").write_text("Synthetic SFT data generated by synth")
    run = RunDir(out, "other")
    run.acquire()
    try:
        assert run.state(force_new=True) == "new"
        removed = run.clear()
    finally:
        run.release()
    assert "_work/state.json" in removed and "swh_Latn/train-00000-of-00001.parquet" in removed
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["_work", "_work/lock"]


def test_one_writer_per_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    job = _job(tmp_path / "p")
    holder = RunDir(out, parse_job(job).config_hash())
    holder.acquire()
    try:
        _refused(capsys, ["run", str(job), "--output", str(out)], "another run is writing it",
                 f"pid {os.getpid()}", "heartbeat")
    finally:
        holder.release()


def test_a_killed_runs_lock_is_taken_over(tmp_path, caplog):
    out = tmp_path / "run"
    (out / "_work").mkdir(parents=True)
    (out / "_work" / "lock").write_text(json.dumps({"holder": "synth run (pid 999999 on gone)", "heartbeat": 0}))
    caplog.set_level(logging.INFO, logger="synth")
    run = RunDir(out, "abc")
    assert run.state() == "new"  # a lock alone is not a foreign file
    run.acquire()  # the kernel released the dead process's flock
    run.release()
    assert "took over the lock of a stopped run (synth run (pid 999999 on gone))" in caplog.text


def test_secrets_in_urls_and_engine_env_never_reach_job_json(tmp_path):
    job = parse_job(_job(tmp_path, engine={
        "type": "vllm", "model": "bundled:smollm2", "env": {"HF_TOKEN": "hf_PlantedSecretValue123"}}))
    dumped = json.dumps(job.public_dump())
    assert "hf_PlantedSecretValue123" not in dumped and '"HF_TOKEN": "***"' in dumped
    openai_job = parse_job(_job(tmp_path, engine={
        "type": "openai", "model": "m", "api_key_env": None,
        "base_url": "http://user:sk-planted-user-pass@host:8000/v1?api-key=sk-planted-query&region=eu"}))
    dumped = json.dumps(openai_job.public_dump())
    assert "sk-planted" not in dumped and "host:8000/v1" in dumped and "region=eu" in dumped
    assert redact_url("https://h/v1?token=abc&x=1") == "https://h/v1?token=***&x=1"
    # the hash still sees the values: another token is another config identity
    other = parse_job(_job(tmp_path, engine={"type": "vllm", "model": "bundled:smollm2", "env": {"HF_TOKEN": "x"}}))
    assert other.config_hash() != job.config_hash()


def test_a_token_pasted_as_a_variable_name_is_not_echoed(tmp_path, capsys):
    job = _job(tmp_path, engine={"type": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                                 "api_key_env": "hf_PastedTokenValue123456"})
    err = _refused(capsys, ["run", str(job)], "engine.api_key_env")
    assert "hf_PastedTokenValue123456" not in err


def test_seed_files_that_are_not_utf8_json_objects(tmp_path, capsys):
    job = _job(tmp_path)
    seeds = tmp_path / "seeds" / "swh_Latn.jsonl"
    seeds.write_bytes(b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n')
    _refused(capsys, ["run", str(job)], "targets[0].seeds", "not UTF-8")
    seeds.write_text('["a", "list"]\n')
    _refused(capsys, ["run", str(job)], "targets[0].seeds", "not an object")


def test_runaway_template_is_refused_before_any_engine(tmp_path, capsys):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    original = yaml.safe_load((ROOT / "prompts" / "icl_pair.yaml").read_text())
    for name, body in {"loop": "{% for i in range(9999) %}{% for j in range(9999) %}x{% endfor %}{% endfor %}",
                       "big": "{{ 'a' * 10**8 }}", "escape": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}.items():
        template = {**original, "name": f"icl_{name}", "variables": [],
                    "user": body, "system": None}
        (prompts / f"icl_{name}.yaml").write_text(yaml.safe_dump(template))
        job = _job(tmp_path / name, prompts_dir=str(prompts), icl={"prompt": f"icl_{name}"})
        _refused(capsys, ["run", str(job), "--output", str(tmp_path / name / "out")], f"icl_{name}", "fix the template")
        assert not (tmp_path / name / "out").exists()


def test_an_over_long_source_is_a_reject_without_requests():
    languages = {code: get_language(code) for code in ("swh_Latn", "eng_Latn")}
    huge = Conversation("big", "open_qa", (("user", "Explain. " * 125_000), ("assistant", "Fine.")))
    small = Conversation("small", "open_qa", (("user", "Why is the sky blue?"), ("assistant", "Light scatters.")))
    prompts = load_prompts()
    method = TranslateMethod(prompts["translate_turn"], prompts["back_translate_turn"], languages, [huge, small],
                             "eng_Latn", 0, "m", max_chars=1500, max_source_chars=20_000)
    attempts = [Attempt("swh_Latn", "translate", "open_qa", i) for i in range(2)]
    requests = method.requests(attempts)
    assert len(requests) == 2  # the small source's two messages; the 1 MB one sends nothing
    rows = method.rows(attempts, [])
    by_source = {r.source_id: r for r in rows}
    assert by_source["big"].error == "source_too_long" and "1125000 characters" in by_source["big"].error_detail


def _pairs(path: Path, **columns) -> Path:
    frame = pl.DataFrame({"id": ["a", "b"], "lang": ["swh_Latn"] * 2, "source_lang": ["eng_Latn"] * 2,
                          "source": ["Hello there.", "Good morning."], "text": ["Habari yako.", "Habari za asubuhi."],
                          **columns})
    frame.write_parquet(path)
    return path


def test_verify_input_mistakes_exit_2_and_touch_nothing(tmp_path, capsys):
    good = _pairs(tmp_path / "in.parquet")
    before = good.read_bytes()
    _refused(capsys, ["verify", str(good), "--output", str(good)], "is the input file")
    _refused(capsys, ["verify", str(good), "--output", str(tmp_path / "." / "in.parquet")], "is the input file")
    assert good.read_bytes() == before
    (tmp_path / "outdir").mkdir()
    _refused(capsys, ["verify", str(good), "--output", str(tmp_path / "outdir")], "is a directory")
    text = tmp_path / "in.txt"
    text.write_text("not parquet")
    _refused(capsys, ["verify", str(text), "--output", str(tmp_path / "o.parquet")], "not a readable Parquet")
    _refused(capsys, ["verify", str(_pairs(tmp_path / "int.parquet", text=[1, 2])), "--output", str(tmp_path / "o.parquet")],
             "column 'text' is Int64")
    _refused(capsys, ["verify", str(_pairs(tmp_path / "dup.parquet", id=["a", "a"])), "--output", str(tmp_path / "o.parquet")],
             "ids appear on more than one row", "'a'")
    assert not (tmp_path / "o.parquet").exists()


def test_report_on_a_foreign_manifest(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "someone else's"}))
    _refused(capsys, ["report", str(tmp_path)], "not a synth manifest")
    (tmp_path / "manifest.json").write_text("{not json")
    _refused(capsys, ["report", str(tmp_path)], "not valid JSON")
    assert not (tmp_path / "report.html").exists()


def test_calibrate_on_no_rows_writes_nothing(tmp_path, capsys):
    empty = _pairs(tmp_path / "empty.parquet")
    pl.read_parquet(empty).head(0).write_parquet(empty)
    _refused(capsys, ["calibrate", str(empty), "--output", str(tmp_path / "mine.yaml")], "holds no rows")
    assert not (tmp_path / "mine.yaml").exists()
    (tmp_path / "mine.yaml").write_text("my own preset\n")
    _refused(capsys, ["calibrate", str(_pairs(tmp_path / "p.parquet")), "--output", str(tmp_path / "mine.yaml")],
             "not written by synth calibrate")
    assert (tmp_path / "mine.yaml").read_text() == "my own preset\n"


def test_resume_removes_only_synths_own_temporaries(tmp_path):
    from synth.shards import remove_temporaries

    out = tmp_path / "run"
    _synth_run_dir(out)
    ours = out / "_work" / ".round-0001-00001.parquet.ab12cd34.tmp"
    ours.write_bytes(b"half")
    theirs = [out / ".notes.tmp", out / "swh_Latn" / ".my.draft.tmp", out / "_work" / ".x.ab12cd34.tmp"]
    for path in theirs:
        path.write_text("mine")
    assert remove_temporaries(out, RunDir.owns) == ["_work/.round-0001-00001.parquet.ab12cd34.tmp"]
    assert not ours.exists() and all(p.read_text() == "mine" for p in theirs)


def test_force_new_never_follows_a_symlink(tmp_path, capsys):
    out = tmp_path / "run"
    _synth_run_dir(out)
    elsewhere = tmp_path / "user_data"
    elsewhere.mkdir()
    (elsewhere / "train-00000-of-00001.parquet").write_bytes(b"theirs")
    job = _job(tmp_path / "p")
    # a symlink under a name synth writes, then a run directory's language folder that is a user's folder
    (out / "_work" / "round-0001-00001.parquet").symlink_to(elsewhere / "train-00000-of-00001.parquet")
    for step in range(2):
        if step:
            (out / "fra_Latn").symlink_to(elsewhere, target_is_directory=True)
        before = _tree(tmp_path)
        _refused(capsys, ["run", str(job), "--output", str(out), "--force-new"], "synth did not write")
        assert _tree(tmp_path) == before and (out / "_work" / "round-0001-00001.parquet").is_symlink()
    assert (elsewhere / "train-00000-of-00001.parquet").read_bytes() == b"theirs"


def test_a_cache_write_removes_only_its_own_temporary(tmp_path):
    """save_cached writes through a temporary it creates itself (never one that exists) and leaves only
    the file it was asked for: a neighbour with a temporary-like name is untouched, and a failed write
    removes nothing but its own temporary."""
    from synth.paths import save_cached

    target = tmp_path / "cache" / "table.npy"
    target.parent.mkdir()
    neighbour = target.parent / ".table.npy.1234.abcd.tmp"  # shaped like the names it uses
    neighbour.write_bytes(b"someone else's")
    save_cached(target, b"one")
    save_cached(target, b"two")  # replaced whole
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == [".table.npy.1234.abcd.tmp", "table.npy"]
    assert neighbour.read_bytes() == b"someone else's"
    blocked = target.parent / "dir.npy"
    blocked.mkdir()  # os.replace cannot put a file over a directory
    (blocked / "keep").write_bytes(b"x")
    with pytest.raises(OSError):
        save_cached(blocked, b"three")
    assert sorted(p.name for p in target.parent.iterdir()) == [".table.npy.1234.abcd.tmp", "dir.npy", "table.npy"]
    assert (blocked / "keep").read_bytes() == b"x"
