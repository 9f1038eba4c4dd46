"""`synth push`: a finished run's shards and card reach a dataset repo in one commit, through the real
huggingface_hub client against a local stand-in for the Hub's HTTP API (tests/hub_server.py); the
token only travels in the Authorization header; what must not be published stays local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from synth.cli import main
from synth.outputs import dataset_card
from synth.shards import WORK, atomic_write_json, rows_frame, write_language_shards, write_rejects
from tests.hub_server import HubStandIn

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_test_token_that_must_never_be_written"


def _row(i: int, lang: str, accepted: bool) -> dict:
    return {"id": f"{lang}-{i:04d}", "lang": lang, "method": "icl", "category": "open_qa",
            "messages": [{"role": "user", "content": f"swali {i}"}, {"role": "assistant", "content": f"jibu {i}"}],
            "model": "m", "created_at": datetime(2025, 1, 1, tzinfo=timezone.utc), "accepted": accepted,
            "reject_reasons": [] if accepted else ["lid"], "reject_details": [] if accepted else ["lid 0.1"]}


def _finished_run(out: Path, accepted: int = 5, status: str = "complete", shard_rows: int = 2) -> Path:
    """A run directory as `synth run` leaves it, written by synth's own shard and card writers."""
    rows = rows_frame([_row(i, "swh_Latn", i < accepted) for i in range(accepted + 2)], ["lid"])
    write_language_shards(out, "swh_Latn", rows.filter(pl.col("accepted")), shard_rows)
    write_rejects(out, "swh_Latn", rows.filter(~pl.col("accepted")))
    (out / WORK).mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / WORK / "state.json", {"config_hash": "h"})
    rows.write_parquet(out / WORK / "round-0001-00000.parquet")
    manifest = {"name": "push-test", "status": status, "model": "m", "license": "cc-by-4.0", "config_hash": "h",
                "totals": {"accepted": accepted, "rejected": 2},
                "rounds": 1, "filters": {"preset": "default", "run": ["lid"], "not_run": {}},
                "languages": {"swh_Latn": {"name": "Swahili", "iso639_1": "sw", "iso639_3": "swh", "target": 5,
                                           "accepted": accepted, "rejected": 2, "shortfall": 0}}}
    atomic_write_json(out / "manifest.json", manifest)
    (out / "README.md").write_text(dataset_card(manifest))
    (out / "report.html").write_text("<html>synth report</html>")
    return out


def _push(out: Path, hub: HubStandIn, *extra: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_ENDPOINT=hub.url, PYTHONPATH=str(ROOT), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HOME=str(out.parent / "hf_home"))
    env.pop("HF_TOKEN", None)
    env.pop("HF_HUB_OFFLINE", None)
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "synth.cli", "push", str(out), "org/swahili-sft", *extra],
                          env=env, capture_output=True, text=True, timeout=300)


def test_push_publishes_shards_and_card_in_one_commit_and_replaces_stale_shards(tmp_path):
    out = _finished_run(tmp_path / "run")
    with HubStandIn(tmp_path / "hub", TOKEN) as hub:
        done = _push(out, hub, "--private")
        assert done.returncode == 0, done.stderr
        repo = tmp_path / "hub" / "org" / "swahili-sft"
        published = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
        assert published == ["README.md", "swh_Latn/train-00000-of-00003.parquet",
                             "swh_Latn/train-00001-of-00003.parquet", "swh_Latn/train-00002-of-00003.parquet"]
        for name in published:
            assert (repo / name).read_bytes() == (out / name).read_bytes()
        assert hub.repos["org/swahili-sft"]["private"] is True
        assert hub.cards[0]["configs"] == [{"config_name": "swh_Latn", "data_files": [
            {"split": "train", "path": "swh_Latn/train-*.parquet"}]}]
        assert hub.repos["org/swahili-sft"]["commits"] == ["synth push: push-test, 5 accepted rows"]
        assert {auth for _, _, auth in hub.requests} == {f"Bearer {TOKEN}"}
        for text in (done.stdout, done.stderr):
            assert TOKEN not in text
        assert not [p for p in tmp_path.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]

        # the published repo loads with `datasets` as the card says (its config per language)
        import datasets

        loaded = datasets.load_dataset(str(repo), "swh_Latn", split="train")
        assert sorted(loaded["id"]) == [f"swh_Latn-{i:04d}" for i in range(5)]

        # a second run with fewer shards: the earlier push's extra shard goes, the repo exists already
        for shard in (out / "swh_Latn").glob("*.parquet"):
            shard.unlink()
        _finished_run(out, accepted=3, shard_rows=3)
        done = _push(out, hub, "--with-rejected")
        assert done.returncode == 0, done.stderr
        published = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
        assert published == ["README.md", "rejected/swh_Latn/part-00000.parquet",
                             "swh_Latn/train-00000-of-00001.parquet"]
        assert len(hub.repos["org/swahili-sft"]["commits"]) == 2


def test_a_refused_token_is_exit_1_without_the_token_in_the_message(tmp_path):
    out = _finished_run(tmp_path / "run")
    with HubStandIn(tmp_path / "hub", "another-token") as hub:
        done = _push(out, hub)
    assert done.returncode == 1, done.stderr
    assert "HF_TOKEN was refused" in done.stderr and "Traceback" not in done.stderr
    assert TOKEN not in done.stderr + done.stdout
    assert not (tmp_path / "hub" / "org").exists()


@pytest.mark.parametrize("case", ["no token", "unfinished run", "not a run", "no shards", "bad repo id"])
def test_push_refuses_before_any_request(case, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    repo = "org/swahili-sft"
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    if case == "no token":
        monkeypatch.delenv("HF_TOKEN")
        _finished_run(out)
        expected = ["HF_TOKEN is not set"]
    elif case == "unfinished run":
        _finished_run(out, status="interrupted")
        expected = ["status is 'interrupted'", "resume"]
    elif case == "not a run":
        out.mkdir()
        (out / "README.md").write_text("# my notes")
        expected = ["no manifest.json", "finished `synth run`"]
    elif case == "no shards":
        _finished_run(out, accepted=0)
        expected = ["accepted no rows", "nothing to publish"]
    else:
        _finished_run(out)
        repo = "not a repo id"
        expected = ["REPO_ID", "OWNER/NAME"]
    # an endpoint nothing listens on: a request would fail as exit 1, not the exit 2 asserted here
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert main(["push", str(out), repo]) == 2
    err = capsys.readouterr().err
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert TOKEN not in err
