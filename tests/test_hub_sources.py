"""Seeds and sources from Hub datasets and `datasets` folders, read through the real `datasets` and
`huggingface_hub` code on local data in the Hub's own layouts (this machine has no route to the Hub).

Every case runs in one fresh process (tests/hub_driver.py) with HF_HUB_OFFLINE=1 and HF_HUB_CACHE at a
cache built here: `hf://datasets/OWNER/NAME` resolves through huggingface_hub's cache lookup (refs/ and
snapshots/) and the rows stream through `datasets.load_dataset`, as they would from a real cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.hub_fixture import cache_repo, chat, configs_card, jsonl_bytes, parquet_bytes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
OLD, NEW = "1" * 40, "2" * 40


def _build(tmp: Path) -> tuple[Path, dict]:
    cache = tmp / "hub"
    messages = [{"messages": chat(i), "category": "open_qa"} for i in range(6)]
    cache_repo(cache, "org/chat", {"README.md": b"---\nlicense: mit\n---\n# chat\n",
                                   "data/train-00000-of-00001.parquet": parquet_bytes(messages)}, OLD, refs=())
    newer = [{"messages": chat(i, "new "), "category": "open_qa"} for i in range(4)]
    cache_repo(cache, "org/chat", {"README.md": b"---\nlicense: mit\n---\n# chat\n",
                                   "data/train-00000-of-00001.parquet": parquet_bytes(newer)}, NEW)
    sharegpt = [{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": f"hi {i}"},
                                   {"from": "gpt", "value": f"hello {i}"}], "uid": f"u{i}"} for i in range(5)]
    cache_repo(cache, "org/sharegpt", {"data/train.jsonl": jsonl_bytes(sharegpt)}, "3" * 40)
    alpaca = [{"instruction": f"Add {i} and 1.", "input": "" if i % 2 else f"({i})", "output": f"{i + 1}"}
              for i in range(5)]
    gpt = [{"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]} for i in range(3)]
    cache_repo(cache, "org/multi", {
        "README.md": configs_card({"alpaca": {"train": "alpaca/train-*.parquet"},
                                   "sharegpt": {"train": "sharegpt/train-*.parquet"}}),
        "alpaca/train-00000-of-00001.parquet": parquet_bytes(alpaca),
        "sharegpt/train-00000-of-00001.parquet": parquet_bytes(gpt)}, "4" * 40)
    splits = {"data/train-00000-of-00001.parquet": parquet_bytes([{"messages": chat(i, "train ")} for i in range(3)]),
              "data/test-00000-of-00001.parquet": parquet_bytes([{"messages": chat(i, "test ")} for i in range(2)])}
    cache_repo(cache, "org/splits", splits, "5" * 40)
    cache_repo(cache, "org/qa", {"data/train.jsonl": jsonl_bytes(
        [{"question": f"q{i}", "answer": f"a{i}", "lang": "sw" if i % 2 else "en"} for i in range(6)])}, "6" * 40)
    cache_repo(cache, "org/both", {"data/train.jsonl": jsonl_bytes(
        [{"messages": chat(0), "conversations": [{"from": "human", "value": "x"}]}])}, "7" * 40)
    # two data files, the second not Parquet at all: a bounded read never opens it
    big = [{"messages": chat(i)} for i in range(200)]
    cache_repo(cache, "org/big", {"data/train-00000-of-00002.parquet": parquet_bytes(big),
                                  "data/train-00001-of-00002.parquet": b"not parquet" * 100}, "8" * 40)
    cache_repo(cache, "org/roles", {"data/train.jsonl": jsonl_bytes(
        [{"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "{}"}]}])}, "9" * 40)
    categories = [{"messages": chat(i), "category": c} for i, c in enumerate(["math", "open_qa"] * 50)]
    cache_repo(cache, "org/categories", {"data/train.jsonl": jsonl_bytes(categories)}, "a" * 40)
    sources = [json.loads(line) for line in (EXAMPLES / "sources/en_sft.jsonl").read_text().splitlines()]
    cache_repo(cache, "org/en-sft", {"data/train-00000-of-00001.parquet": parquet_bytes(
        [{"conversations": [{"from": {"user": "human", "assistant": "gpt"}[m["role"]], "value": m["content"]}
                            for m in s["messages"]], "category": s["category"]} for s in sources])}, "b" * 40)

    import datasets  # save_to_disk folders, written by the real library

    datasets.Dataset.from_list(alpaca).save_to_disk(str(tmp / "saved_one"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(messages),
                          "test": datasets.Dataset.from_list(newer)}).save_to_disk(str(tmp / "saved_dict"))
    local_repo = tmp / "local_repo"  # a `git clone` of a Hub dataset: the same layouts, read from disk
    (local_repo / "data").mkdir(parents=True)
    (local_repo / "data" / "train.jsonl").write_bytes(jsonl_bytes(sharegpt))

    job = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    for target in job["targets"]:
        target["seeds"] = str(EXAMPLES / target["seeds"])
    job["sources"] = {"path": "hf://datasets/org/en-sft", "lang": "eng_Latn"}
    job["targets"][0]["seeds"] = {"path": str(tmp / "saved_dict"), "split": "train"}
    (tmp / "job.yaml").write_text(yaml.safe_dump(job))
    bad = dict(job, sources={"path": "hf://datasets/org/qa"})
    (tmp / "bad_job.yaml").write_text(yaml.safe_dump(bad))

    hub = "hf://datasets/"
    cases = {
        "parquet layout": {"entry": {"path": hub + "org/chat"}},
        "revision pinned to an older commit": {"entry": {"path": hub + "org/chat", "revision": OLD}},
        "unknown revision": {"entry": {"path": hub + "org/chat", "revision": "v9"}},
        "sharegpt jsonl": {"entry": {"path": hub + "org/sharegpt", "columns": {"id": "uid"}}},
        "config alpaca": {"entry": {"path": hub + "org/multi", "config": "alpaca"}},
        "config sharegpt": {"entry": {"path": hub + "org/multi", "config": "sharegpt", "split": "train"}},
        "config missing": {"entry": {"path": hub + "org/multi"}},
        "config unknown": {"entry": {"path": hub + "org/multi", "config": "dolly"}},
        "split test": {"entry": {"path": hub + "org/splits", "split": "test"}},
        "split default train": {"entry": {"path": hub + "org/splits"}},
        "split unknown": {"entry": {"path": hub + "org/splits", "split": "validation"}},
        "no known shape": {"entry": {"path": hub + "org/qa"}},
        "named mapping": {"entry": {"path": hub + "org/qa", "format": "alpaca",
                                    "columns": {"instruction": "question", "output": "answer"},
                                    "where": {"lang": "sw"}, "category": "reasoning"}},
        "mapping to absent column": {"entry": {"path": hub + "org/qa", "columns": {"instruction": "prompt",
                                                                                 "output": "answer"}}},
        "where on absent column": {"entry": {"path": hub + "org/chat", "where": {"language": "sw"}}},
        "ambiguous shape": {"entry": {"path": hub + "org/both"}},
        "ambiguous shape resolved": {"entry": {"path": hub + "org/both", "format": "sharegpt"}},
        "bounded read": {"entry": {"path": hub + "org/big"}, "need": 25},
        "unbounded read": {"entry": {"path": hub + "org/big"}},
        "unknown role": {"entry": {"path": hub + "org/roles"}},
        "quotas": {"entry": {"path": hub + "org/categories"}, "quotas": {"math": 3, "open_qa": 2}},
        "not in cache": {"entry": {"path": hub + "org/absent"}},
        "save_to_disk dataset": {"entry": {"path": str(tmp / "saved_one")}},
        "save_to_disk dict split": {"entry": {"path": str(tmp / "saved_dict"), "split": "test"}},
        "save_to_disk with config": {"entry": {"path": str(tmp / "saved_dict"), "config": "x"}},
        "local hub-layout folder": {"entry": {"path": str(local_repo)}},
        "digest main": {"digest": {"path": hub + "org/chat"}},
        "digest main again": {"digest": {"path": hub + "org/chat", "revision": "main"}},
        "digest old": {"digest": {"path": hub + "org/chat", "revision": OLD}},
        "digest other split": {"digest": {"path": hub + "org/chat", "split": "test"}},
        "digest saved": {"digest": {"path": str(tmp / "saved_dict")}},
        "digest file": {"digest": {"path": str(EXAMPLES / "sources/en_sft.jsonl")}},
        "job prepares": {"prepare": str(tmp / "job.yaml")},
        "job with unmappable sources": {"cli": ["run", str(tmp / "bad_job.yaml"), "--output", str(tmp / "out")]},
    }
    return cache, cases


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("hub")
    cache, cases = _build(tmp)
    (tmp / "cases.json").write_text(json.dumps(cases))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_DATASETS_CACHE=str(tmp / "datasets"),
               PYTHONPATH=str(ROOT), HF_HUB_DISABLE_PROGRESS_BARS="1")
    env.pop("HF_TOKEN", None)
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "hub_driver.py"), str(tmp / "cases.json")],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["_tmp"] = str(tmp)
    return out


def _texts(result: dict) -> list[list[list[str]]]:
    assert "rows" in result, result
    return [r["messages"] for r in result["rows"]]


def _error(result: dict, *fragments: str) -> str:
    assert "error" in result, result
    for fragment in fragments:
        assert fragment in result["error"], (fragment, result["error"])
    return result["error"]


def test_hub_id_resolves_refs_main_in_the_cache(results):
    rows = _texts(results["parquet layout"])
    assert rows == [[["user", f"new question {i}?"], ["assistant", f"new answer {i}."]] for i in range(4)]
    assert [r["id"] for r in results["parquet layout"]["rows"]] == [f"chat-{i}" for i in range(1, 5)]


def test_revision_pins_a_commit(results):
    assert _texts(results["revision pinned to an older commit"])[0][0] == ["user", "question 0?"]
    assert len(results["revision pinned to an older commit"]["rows"]) == 6
    _error(results["unknown revision"], "hf://datasets/org/chat revision v9", "not in the local Hub cache",
           "HF_HUB_OFFLINE")


def test_sharegpt_roles_map_to_messages(results):
    rows = results["sharegpt jsonl"]["rows"]
    assert rows[0]["messages"] == [["system", "Be brief."], ["user", "hi 0"], ["assistant", "hello 0"]]
    assert [r["id"] for r in rows] == [f"u{i}" for i in range(5)]


def test_configs_as_subfolders(results):
    alpaca = _texts(results["config alpaca"])
    assert alpaca[0] == [["user", "Add 0 and 1.\n\n(0)"], ["assistant", "1"]]
    assert alpaca[1] == [["user", "Add 1 and 1."], ["assistant", "2"]]  # an empty input adds nothing
    assert _texts(results["config sharegpt"])[2] == [["user", "q2"], ["assistant", "a2"]]
    _error(results["config missing"], "sources.config", "several configs", "alpaca", "sharegpt")
    _error(results["config unknown"], "sources.config", "no config 'dolly'", "alpaca")


def test_splits(results):
    assert _texts(results["split test"])[0][0] == ["user", "test question 0?"]
    assert _texts(results["split default train"])[0][0] == ["user", "train question 0?"]
    _error(results["split unknown"], "sources.split", "'validation'", "train", "test")


def test_a_mismatch_names_the_entry_and_the_columns_found(results):
    message = _error(results["no known shape"], "sources:", "hf://datasets/org/qa", "'answer'", "'question'", "format")
    assert "\n" not in message
    _error(results["mapping to absent column"], "['prompt']", "columns found", "'question'")
    _error(results["where on absent column"], "sources.where", "['language']", "columns found: ['category', 'messages']")
    _error(results["ambiguous shape"], "several shapes", "messages", "sharegpt", "format")
    assert _texts(results["ambiguous shape resolved"]) == [[["user", "x"]]]
    _error(results["unknown role"], "row 1", "'tool'")


def test_a_named_mapping_with_a_filter_and_a_category(results):
    rows = results["named mapping"]["rows"]
    assert [r["messages"] for r in rows] == [[["user", f"q{i}"], ["assistant", f"a{i}"]] for i in (1, 3, 5)]
    assert {r["category"] for r in rows} == {"reasoning"}


def test_only_the_rows_a_job_needs_are_read(results):
    assert len(results["bounded read"]["rows"]) == 25  # the broken second file was never opened
    _error(results["unbounded read"], "could not read its rows", "hf://datasets/org/big")
    rows = results["quotas"]["rows"]
    assert [r["category"] for r in rows] == ["math", "open_qa", "math", "open_qa", "math"]


def test_not_in_the_cache_is_a_clear_error(results):
    _error(results["not in cache"], "hf://datasets/org/absent", "not in the local Hub cache", "HF_HUB_CACHE")


def test_save_to_disk_folders(results):
    assert _texts(results["save_to_disk dataset"])[4] == [["user", "Add 4 and 1.\n\n(4)"], ["assistant", "5"]]
    assert _texts(results["save_to_disk dict split"])[0][0] == ["user", "new question 0?"]
    _error(results["save_to_disk with config"], "sources.config", "save_to_disk", "no configs")
    assert _texts(results["local hub-layout folder"])[0][1] == ["user", "hi 0"]


def test_digests_identify_commit_split_and_mapping(results):
    digests = {name: results[name].get("digest") for name in results if name.startswith("digest")}
    assert digests["digest main"] == digests["digest main again"]  # main and unset resolve to one commit
    assert len({digests[n] for n in ("digest main", "digest old", "digest other split", "digest saved")}) == 4
    assert digests["digest file"] is None  # a plain file: its bytes are digested like other input files
    # the resume check's {input name: digest}: the name stays, the digest follows the resolved commit
    assert results["digest main"]["input"] == ["hf://datasets/org/chat?config=&split=", digests["digest main"]]
    assert results["digest old"]["input"][0] == results["digest main"]["input"][0]
    assert results["digest file"]["input"] is None


def test_a_job_with_a_hub_source_that_fits_no_shape_exits_2(results):
    result = results["job with unmappable sources"]
    assert result["exit"] == 2, result
    assert "sources: hf://datasets/org/qa" in result["stderr"] and "columns found" in result["stderr"]
    assert "Traceback" not in result["stderr"]
    assert not (Path(results["_tmp"]) / "out").exists()


def test_a_job_reads_hub_sources_and_save_to_disk_seeds(results):
    result = results["job prepares"]
    assert "sources" in result, result
    demo = [json.loads(line) for line in (EXAMPLES / "sources/en_sft.jsonl").read_text().splitlines()]
    assert result["first_source"] == [[m["role"], m["content"]] for m in demo[0]["messages"]]
    assert result["sources"] == len(demo) and result["categories"] == sorted({d["category"] for d in demo})
    assert result["seeds"]["swh_Latn"] == 6  # the save_to_disk folder's train split


# ---- the job file's entries (schema only, no `datasets` needed) ---------------------------------------

def _parse(tmp_path: Path, sources) -> object:
    from synth.config import parse_job

    job = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    for target in job["targets"]:
        target["seeds"] = str(EXAMPLES / target["seeds"])
    job["sources"] = sources
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return parse_job(path)


@pytest.mark.parametrize("sources, fragment", [
    ({"path": "hf://cis-lmu/glotlid"}, "hf://datasets/OWNER/NAME"),
    ({"path": "hf://datasets/org/name@v2"}, "revision: v2"),
    ({"path": "hf://datasets/org/name/data/train.parquet"}, "config:` and `split:"),
    ({"path": "en.jsonl", "revision": "main"}, "only hf://datasets/ paths have revisions"),
    ({"path": "hf://datasets/org/name", "format": "dolly"}, "sources.format"),
    ({"path": "hf://datasets/org/name", "columns": {"prompt": "x"}}, "sources.columns.prompt"),
    ({"path": "hf://datasets/org/name", "limit": 0}, "sources.limit"),
])
def test_entry_mistakes_are_named_before_anything_is_read(tmp_path, sources, fragment):
    from synth.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        _parse(tmp_path, sources)
    assert fragment in str(caught.value), str(caught.value)


def test_hub_ids_stay_as_written_and_local_paths_resolve_against_the_job_file(tmp_path):
    job = _parse(tmp_path, "hf://datasets/org/name/")
    assert job.sources.path == "hf://datasets/org/name" and job.sources.lang == "eng_Latn"
    assert job.targets[0].seeds.path == str(EXAMPLES / "seeds/swh_Latn.jsonl")
    assert _parse(tmp_path, {"path": "en.jsonl"}).sources.path == str(tmp_path / "en.jsonl")


def test_a_local_sharegpt_file_maps_like_a_hub_dataset(tmp_path):
    from synth.datasource import DatasetEntry, load_entry

    path = tmp_path / "sg.jsonl"
    path.write_text(json.dumps({"conversations": [{"from": "human", "value": "habari?"},
                                                  {"from": "gpt", "value": "nzuri"}]}) + "\n")
    (conversation,) = load_entry(DatasetEntry(path=str(path)), "targets[0].seeds")
    assert conversation.messages == (("user", "habari?"), ("assistant", "nzuri"))
    plain = DatasetEntry(path=str(EXAMPLES / "sources/en_sft.jsonl"))
    assert plain.is_plain_file()  # read by synth.conversations exactly as before
