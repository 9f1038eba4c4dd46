"""Outputs through fsspec URLs: the I/O layer on memory:// and file://, and a whole run into a real
S3-compatible HTTP server (moto_server on 127.0.0.1) with the same commit and resume rules as a
local directory."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from synth.errors import ConfigError
from synth.prepare import prepare
from synth.runner import JobRun
from synth.shards import (
    RemotePath,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    output_location,
    read_committed,
)
from tests.ports import free_port
from tests.test_pipeline import tiny_job


def test_output_location_kinds(tmp_path):
    assert output_location(str(tmp_path / "out")) == tmp_path / "out"
    assert output_location(f"file://{tmp_path}/out") == tmp_path / "out"  # local: temporary file + rename
    remote = output_location("memory://bucket/run")
    assert isinstance(remote, RemotePath) and remote.atomic_put and str(remote).startswith("memory://")
    with pytest.raises(ConfigError, match="--output gs://b/run"):
        output_location("gs://b/run")  # no gcsfs installed: a config error naming the flag, not a traceback


def test_memory_io_layer_commits_whole_objects():
    out = output_location("memory://t7-io/run")
    assert not out.exists() and read_committed(out) is None
    atomic_write_json(out / "_work" / "state.json", {"config_hash": "abc"})
    atomic_write_parquet(out / "_work" / "round-0001-00001.parquet", pl.DataFrame({"id": ["b"], "round": [1]}))
    atomic_write_parquet(out / "_work" / "round-0001-00000.parquet", pl.DataFrame({"id": ["a"], "round": [1]}))
    atomic_write_bytes(out / "_work" / "notes.txt", b"x")
    assert out.exists() and [p.name for p in out.iterdir()] == ["_work"]
    assert json.loads((out / "_work" / "state.json").read_text()) == {"config_hash": "abc"}
    assert read_committed(out)["id"].to_list() == ["a", "b"]  # slices in order, other files ignored
    # one PUT per object: nothing but the four objects was ever created (no temporary names)
    assert sorted(p.name for p in (out / "_work").iterdir()) == [
        "notes.txt", "round-0001-00000.parquet", "round-0001-00001.parquet", "state.json"]
    out.fs.rm(out.path, recursive=True)
    assert not out.exists()


@pytest.fixture(scope="module")
def s3_server():
    """A real S3 HTTP endpoint (moto_server) and the standard AWS variables that point clients at it."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if server is None:
        pytest.fail("moto_server missing: install the test extra (pip install -e '.[test]')")
    port = free_port()
    process = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        import fsspec

        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir("synth-runs")
        yield fs
    finally:
        process.terminate()
        process.wait(timeout=30)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_run_into_s3_commits_and_resumes_like_a_local_directory(s3_server, tiny_pool, tiny_model_dir, tmp_path):
    from synth.cli import main

    fs = s3_server
    url = "s3://synth-runs/job1"
    job = tiny_job(tmp_path, tiny_model_dir, workers=1, rows=3)
    manifest = JobRun(prepare(job), url).run(engine=tiny_pool)
    fs.invalidate_cache()
    keys = {k.removeprefix("synth-runs/job1/") for k in fs.find("synth-runs/job1")}
    assert {"manifest.json", "README.md", "report.html", "_work/state.json"} <= keys
    assert any(k.startswith("_work/round-0001-") for k in keys)
    assert not [k for k in keys if Path(k).name.startswith(".")]  # no temporary objects
    stored = json.loads(fs.cat_file("synth-runs/job1/manifest.json"))
    assert stored["totals"] == manifest["totals"] and stored["status"] in ("complete", "partial")
    for lang, names in stored["files"].items():
        for name in names:  # every file the manifest lists is a whole Parquet object
            frame = pl.read_parquet(fs.cat_file(f"synth-runs/job1/{name}"))
            assert frame.height > 0 and (frame["lang"] == lang).all()
    accepted = sum(s["accepted"] for s in stored["languages"].values())
    assert accepted == manifest["totals"]["accepted"]

    # a second run of the same job finds the finished run in the bucket and writes nothing
    before = {k: fs.info(f"synth-runs/job1/{k}")["ETag"] for k in keys}
    again = JobRun(prepare(job), url).run(engine=tiny_pool)
    fs.invalidate_cache()
    assert again["finished_at"] == stored["finished_at"]
    assert {k: fs.info(f"synth-runs/job1/{k}")["ETag"] for k in keys} == before

    # another job on the same URL is refused, as for a local directory
    other = tiny_job(tmp_path, tiny_model_dir, workers=1, rows=4)
    with pytest.raises(ConfigError, match="different config"):
        JobRun(prepare(other), url).rundir.state()

    # `synth report s3://...` rebuilds the report in the bucket
    fs.rm("synth-runs/job1/report.html")
    assert main(["report", url]) == 0
    fs.invalidate_cache()
    assert fs.cat_file("synth-runs/job1/report.html").startswith(b"<!doctype html>")
