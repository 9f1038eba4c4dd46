"""The run directory under hostile conditions: links planted at every path a run writes, inputs edited
between a kill and the resume, damaged run state, a full disk, temporaries of a killed run.

Most cases need no engine: they are refused before one would start (the job's engine is a closed
local port) or drive the write primitives directly. The last story runs the tiny vLLM model into a
small tmpfs (root only) to fill the disk for real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth import runfiles
from synth.cli import main
from synth.config import parse_job
from synth.errors import ConfigError
from synth.plan import Attempt
from synth.prepare import prepare
from synth.rundir import RunDir
from synth.runner import JobRun
from synth.shards import (
    atomic_local_file,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    output_location,
    remove_temporaries,
    rows_frame,
    write_language_shards,
    write_rejects,
)
from tests.test_data_safety import _job, _refused, _tree
from tests.test_resume import TARGETS, _env, _run, _temporaries, resume_job  # noqa: F401 (a fixture)

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _frame(ids: list[str], lang: str = "swh_Latn", accepted: bool = True) -> pl.DataFrame:
    """Rows in the run's schema (columns not given are null)."""
    return rows_frame([{"id": i, "lang": lang, "method": "translate", "category": "open_qa", "accepted": accepted,
                        "round": 1} for i in ids], ["lid"])


def _started(job: Path, out: Path) -> JobRun:
    """A run directory as `synth run` starts it for this job (state recorded), no engine."""
    run = JobRun(prepare(parse_job(job)), out)
    assert run.rundir.state() == "new"
    run.rundir.acquire()
    try:
        run.rundir.start(NOW)
    finally:
        run.rundir.release()
    return run


def _user_file(tmp_path: Path, name: str = "thesis.txt") -> Path:
    path = tmp_path / "user" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"years of work")
    return path


# ---- links ------------------------------------------------------------------------------------------
def test_a_lock_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, capsys):
    mine = _user_file(tmp_path)
    out = tmp_path / "out"
    (out / "_work").mkdir(parents=True)
    (out / "_work" / "lock").symlink_to(mine)
    _refused(capsys, ["run", str(_job(tmp_path / "p")), "--output", str(out)], "_work/lock is a symbolic link",
             str(mine), "remove the link")
    assert mine.read_bytes() == b"years of work" and (out / "_work" / "lock").is_symlink()
    with pytest.raises(runfiles.LinkRefused, match="_work/lock"):  # the lock itself, whoever calls it
        RunDir(out, "abc").acquire()
    assert mine.read_bytes() == b"years of work"


FILE_LINKS = ["_work/state.json", "_work/job.json", "_work/round-0001-00000.parquet", "manifest.json", "README.md",
              "report.html", "swh_Latn/train-00000-of-00001.parquet", "rejected/swh_Latn/part-00000.parquet"]


@pytest.mark.parametrize("name", FILE_LINKS)
@pytest.mark.parametrize("kind", ["to a user file", "dangling"])
def test_no_write_goes_through_a_file_link(name, kind, tmp_path):
    """Every write primitive a run uses, at every file name a run writes: the link is refused, neither
    followed nor replaced (it is the user's)."""
    out = tmp_path / "out"
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    target = _user_file(tmp_path) if kind == "to a user file" else tmp_path / "nowhere" / "x"
    (out / name).symlink_to(target)
    writes = [lambda: atomic_write_bytes(out / name, b"synth", root=out),
              lambda: atomic_write_json(out / name, {"a": 1}, root=out),
              lambda: atomic_write_parquet(out / name, _frame(["a"]), root=out)]
    if name.endswith("train-00000-of-00001.parquet"):
        writes.append(lambda: write_language_shards(out, "swh_Latn", _frame(["a"]).drop("accepted"), 10))
    if name.startswith("rejected/"):
        writes.append(lambda: write_rejects(out, "swh_Latn", _frame(["a"], accepted=False)))
    for write in writes:
        with pytest.raises(runfiles.LinkRefused, match=name.replace(".", r"\.")):
            write()
        assert (out / name).is_symlink() and os.readlink(out / name) == str(target)
        assert target.read_bytes() == b"years of work" if kind == "to a user file" else not target.exists()
    assert _temporaries(out) == []  # the temporary it wrote is gone


@pytest.mark.parametrize("folder", ["_work", "swh_Latn", "rejected", "rejected/swh_Latn"])
def test_no_write_or_delete_goes_through_a_folder_link(folder, tmp_path):
    """A linked folder (to a user's folder): nothing is written, overwritten or deleted there."""
    users = tmp_path / "user_folder"
    users.mkdir()
    for name in ("train-00000-of-00001.parquet", "train-00001-of-00002.parquet", "part-00000.parquet",
                 "state.json", "round-0001-00000.parquet"):
        (users / name).write_bytes(b"theirs")
    before = _tree(users)
    out = tmp_path / "out"
    (out / folder).parent.mkdir(parents=True, exist_ok=True)
    (out / folder).symlink_to(users, target_is_directory=True)
    if folder == "_work":
        writes = [lambda: atomic_write_json(out / "_work" / "state.json", {}, root=out), lambda: RunDir(out, "a").acquire(),
                  lambda: atomic_write_parquet(out / "_work" / "round-0001-00000.parquet", _frame(["a"]), root=out)]
    elif folder == "swh_Latn":  # the shards of a smaller rebuild: stale ones would be deleted
        writes = [lambda: write_language_shards(out, "swh_Latn", _frame(["a"]).drop("accepted"), 10)]
    else:
        writes = [lambda: write_rejects(out, "swh_Latn", _frame(["a"], accepted=False))]
    writes += [lambda: runfiles.unlink(out, f"{folder}/state.json"),  # what --force-new and stale shards use
               lambda: runfiles.rmdir(out, folder + "/x"), lambda: runfiles.listdir(out, folder)]
    for write in writes:
        with pytest.raises(runfiles.LinkRefused, match=f"{folder} is a symbolic link"):
            write()
    assert _tree(users) == before
    assert remove_temporaries(out, RunDir.owns) == []


def test_links_at_run_paths_are_refused_before_any_engine(tmp_path, capsys):
    """A resume whose language folder is a link to a user's folder: exit 2 naming it, before any work
    (today's code deleted the user's train-*.parquet when it rebuilt the shards)."""
    job = _job(tmp_path / "p")
    out = tmp_path / "out"
    _started(job, out)
    users = tmp_path / "user_folder"
    users.mkdir()
    (users / "train-00000-of-00003.parquet").write_bytes(b"theirs")
    (out / "swh_Latn").symlink_to(users, target_is_directory=True)
    before = _tree(tmp_path)
    err = _refused(capsys, ["run", str(job), "--output", str(out)], "swh_Latn is a symbolic link", str(users))
    assert "cannot reach" not in err  # refused before the engine's preflight
    assert _tree(tmp_path) == before
    (out / "swh_Latn").unlink()
    (out / "rejected").mkdir()
    (out / "rejected" / "fra_Latn").symlink_to(tmp_path / "gone", target_is_directory=True)  # dangling
    _refused(capsys, ["run", str(job), "--output", str(out)], "rejected/fra_Latn is a symbolic link")


def test_the_output_itself_may_be_a_link(tmp_path):
    """`--output` is the user's choice: a link there is followed (a dangling one is exit 2)."""
    real = tmp_path / "nfs" / "runs"
    real.mkdir(parents=True)
    out = tmp_path / "out"
    out.symlink_to(real, target_is_directory=True)
    atomic_write_json(out / "_work" / "state.json", {"config_hash": "x"}, root=out)
    assert json.loads((real / "_work" / "state.json").read_text()) == {"config_hash": "x"}
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing", target_is_directory=True)
    with pytest.raises(ConfigError, match="which does not exist"):
        RunDir(dangling, "x").state()


def test_a_stepwise_write_keeps_the_same_rules(tmp_path):
    """atomic_local_file (a file a library writes in steps, e.g. `synth verify`'s output) renames onto
    the file, never onto a link; a failed block leaves nothing."""
    mine = _user_file(tmp_path)
    link = tmp_path / "out.parquet"
    link.symlink_to(mine)
    with pytest.raises(runfiles.LinkRefused):
        with atomic_local_file(link) as tmp:
            _frame(["a"]).write_parquet(tmp)
    assert mine.read_bytes() == b"years of work" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet", "user"]


# ---- edited inputs ---------------------------------------------------------------------------------
def _reorder(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[1:] + lines[:1]))


def _edit_yaml(path: Path, key: str, value) -> None:
    data = yaml.safe_load(path.read_text())
    data[key] = value
    path.write_text(yaml.safe_dump(data))


ROOT = Path(__file__).resolve().parents[1]
INPUTS = {  # what is edited: (file, the edit)
    "sources": ("sources/en_sft.jsonl", _reorder),
    "seeds": ("seeds/swh_Latn.jsonl", _reorder),
    "preset": ("mine.yaml", lambda p: _edit_yaml(p, "thresholds", {"lid": 0.1})),
    "extended preset": ("base.yaml", lambda p: _edit_yaml(p, "description", "edited")),
    "prompt": ("prompts/icl_pair_direct.yaml", lambda p: _edit_yaml(p, "description", "edited")),
    "language": ("languages/swh_Latn.yaml", lambda p: _edit_yaml(p, "native_name", "Kiswahili sanifu")),
    "evaluation set": ("eval.jsonl", lambda p: p.write_text('{"text": "another question entirely"}\n')),
}


def _job_with_every_input(directory: Path) -> Path:
    """The demo job, plus a user preset extending another, a prompts_dir, a languages_dir and an
    evaluation set: one file of every kind a resume checks."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "prompts").mkdir()
    (directory / "prompts" / "icl_pair_direct.yaml").write_bytes((ROOT / "prompts" / "icl_pair_direct.yaml").read_bytes())
    (directory / "languages").mkdir()
    (directory / "languages" / "swh_Latn.yaml").write_bytes((ROOT / "languages" / "swh_Latn.yaml").read_bytes())
    (directory / "base.yaml").write_text(yaml.safe_dump({"extends": "default", "name": "base"}))
    (directory / "mine.yaml").write_text(yaml.safe_dump({"extends": "base.yaml", "name": "mine"}))
    (directory / "eval.jsonl").write_text('{"text": "what is the capital of kenya"}\n')
    return _job(directory, prompts_dir="prompts", languages_dir="languages",
                verify={"preset": "mine.yaml", "workers": 0, "contamination": {"paths": ["eval.jsonl"]}})


@pytest.mark.parametrize("what", list(INPUTS))
def test_an_input_edited_between_kill_and_resume_is_refused(what, tmp_path, capsys):
    job = _job_with_every_input(tmp_path / "p")
    out = tmp_path / "out"
    _started(job, out)
    unchanged = _refused(capsys, ["run", str(job), "--output", str(out)], "cannot reach the server")
    assert "changed" not in unchanged  # the same inputs resume (here: up to the engine's preflight)
    name, edit = INPUTS[what]
    path = tmp_path / "p" / name
    original = path.read_bytes()
    edit(path)
    assert path.read_bytes() != original
    before = _tree(out)
    _refused(capsys, ["run", str(job), "--output", str(out)], f"input {path} changed since this run started",
             "restore the file", "--force-new", "new --output")
    assert _tree(out) == before
    path.write_bytes(original)  # restored: the run resumes again
    _refused(capsys, ["run", str(job), "--output", str(out)], "cannot reach the server")


def test_input_digests_are_recorded_apart_from_the_config_hash(tmp_path):
    job = _job_with_every_input(tmp_path / "p")
    out = tmp_path / "out"
    run = _started(job, out)
    state = json.loads((out / "_work" / "state.json").read_text())
    assert state["config_hash"] == run.config_hash  # the config hash is untouched by the contents
    recorded = state["inputs"]
    for name, _ in INPUTS.values():
        assert recorded[str(tmp_path / "p" / name)].startswith("sha256:")
    assert str(ROOT / "filters" / "default.yaml") in recorded  # the bundled preset `base.yaml` extends


def test_a_user_filter_module_is_an_input(tmp_path, capsys, monkeypatch):
    package = tmp_path / "plug"
    package.mkdir()
    module = package / "my_rundir_filters.py"
    module.write_text("from synth.verify import Filter\n\nclass Short(Filter):\n    name = 'short'\n"
                      "    higher_is_better = False\n    default_threshold = 1e9\n"
                      "    def score(self, batch):\n        return [float(len(c.text)) for c in batch]\n")
    monkeypatch.syspath_prepend(str(package))
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "plugged.yaml").write_text(yaml.safe_dump(
        {"extends": "default", "name": "plugged",
         "filters": ["empty", {"module": "my_rundir_filters", "class": "Short"}]}))
    job = _job(directory, verify={"preset": "plugged.yaml", "workers": 0})
    out = tmp_path / "out"
    _started(job, out)
    module.write_text(module.read_text().replace("len(c.text)", "len(c.text) * 2"))
    _refused(capsys, ["run", str(job), "--output", str(out)], f"input {module} changed")


# ---- damaged run state -----------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b"\xff\xfe\x00garbage", b'{"started_at": 3}',
                                     b"[" * 100_000 + b"]" * 100_000,
                                     b'{"config_hash": "x", "started_at": "yesterday"}'])
def test_a_damaged_state_file_is_named_with_its_repair(content, tmp_path, capsys):
    job = _job(tmp_path / "p")
    out = tmp_path / "out"
    _started(job, out)
    (out / "_work" / "state.json").write_bytes(content)
    before = _tree(out)
    _refused(capsys, ["run", str(job), "--output", str(out)], "_work/state.json is damaged", "--force-new",
             "committed slices")
    assert _tree(out) == before


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "another table"])
def test_a_damaged_slice_is_named_with_its_repair(damage, tmp_path, capsys):
    job = _job(tmp_path / "p")
    out = tmp_path / "out"
    _started(job, out)
    for part in range(3):
        atomic_write_parquet(out / "_work" / f"round-0001-{part:05d}.parquet", _frame([f"r{part}"]), root=out)
    slice_ = out / "_work" / "round-0001-00001.parquet"
    good = slice_.read_bytes()
    slice_.write_bytes({"truncated": good[: len(good) // 2], "random bytes": os.urandom(len(good)),
                        "another table": _parquet_bytes(pl.DataFrame({"x": [1]}))}[damage])
    before = _tree(out)
    _refused(capsys, ["run", str(job), "--output", str(out)], "_work/round-0001-00001.parquet is damaged",
             "round-0001-00002.parquet", "regenerates those attempts", "--force-new")
    after = _tree(out)
    assert after.pop("_work/lock") and before.pop("_work/lock")  # the refused run held the lock meanwhile
    assert after == before


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    from synth.shards import parquet_bytes

    return parquet_bytes(frame)


def test_a_slice_committed_twice_is_refused(tmp_path, capsys):
    """A copied slice (a backup restored next to the run's own) would count its rows twice."""
    job = _job(tmp_path / "p")
    out = tmp_path / "out"
    _started(job, out)
    atomic_write_parquet(out / "_work" / "round-0001-00000.parquet", _frame(["a", "b"]), root=out)
    atomic_write_parquet(out / "_work" / "round-0001-00001.parquet", _frame(["c"]), root=out)
    (out / "_work" / "round-0002-00000.parquet").write_bytes((out / "_work" / "round-0001-00000.parquet").read_bytes())
    _refused(capsys, ["run", str(job), "--output", str(out)], "committed twice",
             "_work/round-0001-00000.parquet", "_work/round-0002-00000.parquet")


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x01 garbage", b"[]", b'{"holder": 3, "heartbeat": "soon"}', b"x" * 100_000])
def test_a_garbage_lock_no_process_holds_never_blocks(content, tmp_path, capsys):
    job = _job(tmp_path / "p")
    out = tmp_path / "out"
    _started(job, out)
    (out / "_work" / "lock").write_bytes(content)
    # the run goes as far as the engine's preflight (a closed port here): the lock did not stop it
    _refused(capsys, ["run", str(job), "--output", str(out)], "cannot reach the server")
    run = RunDir(out, "x")
    run.acquire()
    run.release()
    assert json.loads((out / "_work" / "lock").read_text())["pid"] == os.getpid()


def test_a_lock_that_is_not_a_file_is_named(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "_work" / "lock").mkdir(parents=True)
    _refused(capsys, ["run", str(_job(tmp_path / "p")), "--output", str(out)], "_work/lock", "remove it")


@pytest.mark.parametrize("content", [b"\xff\xfe garbage", json.dumps({"heartbeat": 1e30}).encode(),
                                     json.dumps({"heartbeat": "now"}).encode()])
def test_a_garbage_object_store_lock_is_taken_over(content):
    out = output_location(f"memory://garbage-lock-{abs(hash(content))}/run")
    (out / "_work" / "lock").write_whole(content)
    run = RunDir(out, "x")
    run.acquire()  # a heartbeat that is not a time up to now is stale, not a live holder forever
    try:
        assert json.loads((out / "_work" / "lock").read_text())["token"] == run._lock_token
    finally:
        run.release()


def test_a_manifest_that_is_not_an_object_does_not_stop_a_resume(tmp_path):
    out = tmp_path / "out"
    run = RunDir(out, "abc")
    run.acquire()
    run.start(NOW)
    run.release()
    (out / "manifest.json").write_text("[1, 2, 3]")
    assert run.state() == "resume"


# ---- leftovers -------------------------------------------------------------------------------------
def test_a_new_run_removes_the_temporaries_of_the_killed_one_only(tmp_path):
    """Killed while writing state.json (before its rename): the directory holds the lock and the
    temporary. The rerun is a new run: it removes that temporary, and nothing that is not synth's."""
    out = tmp_path / "out"
    (out / "_work").mkdir(parents=True)
    ours = out / "_work" / ".state.json.ab12cd34.tmp"
    ours.write_text("{half")
    theirs = [out / "_work" / ".notes.ab12cd34.tmp", out / "_work" / ".state.json.tmp"]
    for path in theirs:
        path.write_text("mine")
    mine = _user_file(tmp_path)
    (out / "_work" / ".job.json.12345678.tmp").symlink_to(mine)  # shaped like ours, but a link: not ours
    run = RunDir(out, "abc")
    assert run.state() == "new"
    run.acquire()
    try:
        run.begin("new", NOW)
    finally:
        run.release()
    assert not ours.exists() and all(p.read_text() == "mine" for p in theirs)
    assert (out / "_work" / ".job.json.12345678.tmp").is_symlink() and mine.read_bytes() == b"years of work"
    assert json.loads((out / "_work" / "state.json").read_text())["config_hash"] == "abc"


# ---- a full disk -----------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs mounted for the test (root only), unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is tested on a tmpfs, which only root can mount")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """A file taking all but about `leave` bytes of the disk."""
    filler = disk / "filler"
    stats = os.statvfs(disk)
    filler.write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def test_a_full_disk_keeps_the_previous_file_and_no_temporary(small_disk):
    out = small_disk / "run"
    atomic_write_json(out / "_work" / "state.json", {"config_hash": "abc"}, root=out)
    _fill(small_disk, 64 * 1024)
    with pytest.raises(OSError) as raised:
        atomic_write_bytes(out / "_work" / "state.json", b"x" * (1 << 20), root=out)
    assert raised.value.errno == 28 and raised.value.filename == str(out / "_work" / "state.json")
    assert json.loads((out / "_work" / "state.json").read_text()) == {"config_hash": "abc"}
    assert _temporaries(out) == []


@pytest.fixture(params=[12, 48], ids=["full while generating", "full while finishing"])
def disk_story(request, resume_job, ray_address, small_disk) -> dict:
    """Killed while writing state.json; rerun on a nearly full disk (KB left: the first slice does not
    fit, or the slices fit and the shards do not); rerun once there is space."""
    out = small_disk / "out"
    seen: dict = {"out": out}
    first = _run(resume_job, out, _env(ray_address, SYNTH_TEST_KILL_AT="state.json"))
    seen["killed"] = {"rc": first.returncode, "tmp": _temporaries(out), "stderr": first.stderr}
    filler = _fill(small_disk, request.param * 1024)
    full = _run(resume_job, out, _env(ray_address))
    seen["full"] = {"rc": full.returncode, "stderr": full.stderr, "tmp": _temporaries(out),
                    "slices": {p.name: p.read_bytes() for p in (out / "_work").glob("round-*.parquet")},
                    "manifest": json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None}
    filler.unlink()
    resumed = _run(resume_job, out, _env(ray_address))
    seen["resumed"] = {"rc": resumed.returncode, "stderr": resumed.stderr, "tmp": _temporaries(out)}
    for step in ("killed", "full", "resumed"):
        (small_disk.parent / f"{step}.log").write_text(seen[step]["stderr"])
    return seen


def test_a_full_disk_stops_cleanly_and_resumes_exactly_once(disk_story):
    killed, full, resumed, out = disk_story["killed"], disk_story["full"], disk_story["resumed"], disk_story["out"]
    assert killed["rc"] == -signal.SIGKILL and any(t.startswith("_work/.state.json.") for t in killed["tmp"])
    assert full["rc"] == 1, full["stderr"][-3000:]
    assert "Traceback" not in full["stderr"], full["stderr"][-3000:]
    assert "no space left on the device" in full["stderr"] and "run the same command to resume" in full["stderr"]
    assert not [t for t in full["tmp"] if ".state.json." in t]  # the killed run's temporary is gone
    if full["manifest"] is not None:  # when it fit
        assert full["manifest"]["status"] == "interrupted"
    assert resumed["rc"] == 0, resumed["stderr"][-3000:]
    assert resumed["tmp"] == []
    for name, data in full["slices"].items():  # committed slices are kept as they were
        assert (out / "_work" / name).read_bytes() == data
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    rounds = pl.concat([pl.read_parquet(p) for p in sorted((out / "_work").glob("round-*.parquet"))])
    assert rounds["id"].n_unique() == rounds.height
    for (lang, method, category), n in Counter(zip(rounds["lang"], rounds["method"], rounds["category"])).items():
        cell = (pl.col("lang") == lang) & (pl.col("method") == method) & (pl.col("category") == category)
        assert set(rounds.filter(cell)["id"]) == {Attempt(lang, method, category, i).id for i in range(n)}
    for lang, (rows, _) in TARGETS.items():
        assert pl.concat([pl.read_parquet(s) for s in (out / lang).glob("train-*.parquet")]).height == rows
