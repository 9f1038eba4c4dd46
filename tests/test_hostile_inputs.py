"""Hostile input files and flags: exit 2 with one message naming the file (and line) or the field and
its bound, nothing written, before any engine starts (docs/safety.md, "Hostile input files and limits")."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import BaseModel

from synth.cli import main
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CLOSED = f"http://127.0.0.1:{free_port()}/v1"


def _job(tmp_path: Path, **changes) -> dict:
    job = {"name": "hostile", "engine": {"type": "openai", "base_url": CLOSED, "model": "m", "api_key_env": None},
           "targets": [{"lang": "swh_Latn", "rows": 2, "methods": {"translate": 1.0}}],
           "sources": {"path": str(EXAMPLES / "sources" / "en_sft.jsonl")}}
    job.update(changes)
    return job


def _run(tmp_path: Path, text: str, capsys) -> tuple[int, str]:
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    code = main(["run", str(path), "--output", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not out.exists(), "nothing may be written when the config is invalid"
    return code, err


def _one_message(err: str) -> str:
    assert err.startswith("synth: error:"), err
    return err


# ---- 1. one bounded loader --------------------------------------------------------------------

def test_a_20000_deep_job_file_is_refused_with_its_line(tmp_path, capsys):
    deep = yaml.safe_dump(_job(tmp_path)) + "sampling: " + "[" * 20_000 + "]" * 20_000 + "\n"
    code, err = _run(tmp_path, deep, capsys)
    assert code == 2
    assert "job.yaml:" in _one_message(err) and "nested deeper than 64 levels" in err


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path, capsys):
    from synth.config import parse_job
    from synth.errors import ConfigError

    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]  # 10^9 leaves
    job = _job(tmp_path, engine={"type": "vllm", "model": "bundled:smollm2"})
    text = yaml.safe_dump(job).replace("model: bundled:smollm2", "model: bundled:smollm2\n  engine_kwargs:\n    "
                                       + "\n    ".join(bomb))
    assert len(text.encode()) < 2000
    path = tmp_path / "job.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"job\.yaml:\d+: expands to more than 200,000 nodes"):
        parse_job(path)
    assert time.monotonic() - started < 2


def test_a_duplicated_key_is_refused_naming_both_lines(tmp_path, capsys):
    text = yaml.safe_dump(_job(tmp_path), sort_keys=False).replace("rows: 2", "rows: 2\n  rows: 2000")
    code, err = _run(tmp_path, text, capsys)
    assert code == 2
    assert re.search(r"job\.yaml:\d+: key 'rows' appears twice in one mapping \(first on line \d+\)", _one_message(err))


def test_a_merge_key_may_still_be_overridden(tmp_path):
    from synth.loading import yaml_value

    assert yaml_value("base: &b {rows: 2, lang: x}\nt:\n  <<: *b\n  rows: 3\n")["t"] == {"rows": 3, "lang": "x"}


def test_a_100000_deep_json_line_in_sources_is_refused_with_its_line(tmp_path, capsys):
    sources = tmp_path / "en.jsonl"
    good = (EXAMPLES / "sources" / "en_sft.jsonl").read_text().splitlines()[0]
    sources.write_text(good + "\n" + '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    code, err = _run(tmp_path, yaml.safe_dump(_job(tmp_path, sources={"path": str(sources)})), capsys)
    assert code == 2
    assert "en.jsonl:2: nested deeper than 64 levels" in _one_message(err)


def test_a_json_line_with_a_repeated_key_is_refused(tmp_path, capsys):
    sources = tmp_path / "en.jsonl"
    sources.write_text('{"messages": [{"role": "user", "content": "a"}], "messages": []}\n')
    code, err = _run(tmp_path, yaml.safe_dump(_job(tmp_path, sources={"path": str(sources)})), capsys)
    assert code == 2 and "en.jsonl:1: key 'messages' appears twice" in _one_message(err)


def test_a_line_past_the_limit_is_refused_without_reading_the_file_whole(tmp_path):
    from synth.errors import ConfigError
    from synth.loading import iter_jsonl

    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b'"' + b"x" * 3000 + b'"\n')
    with pytest.raises(ConfigError, match=r"long\.jsonl:2: a line longer than"):
        list(iter_jsonl(path, "sources", limits=type(
            "L", (), {"max_bytes": 1000, "max_depth": 64, "max_nodes": 10})()))


@pytest.mark.parametrize("kind", ["list", "struct"])
def test_parquet_sources_with_absurdly_nested_columns_are_refused(tmp_path, capsys, kind):
    nested, value = pa.string(), "x"
    for _ in range(70 if kind == "list" else 40):
        nested, value = (pa.list_(nested), [value]) if kind == "list" else (pa.struct({"a": nested}), {"a": value})
    sources = tmp_path / "en.parquet"
    pq.write_table(pa.table({"messages": pa.array([value], type=nested)}), sources)
    code, err = _run(tmp_path, yaml.safe_dump(_job(tmp_path, sources={"path": str(sources)})), capsys)
    assert code == 2 and "en.parquet" in _one_message(err) and "nested deeper than 32 levels" in err, err


@pytest.mark.parametrize("kind", ["deep", "duplicate"])
def test_synth_report_refuses_a_hostile_manifest(tmp_path, capsys, kind):
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000 if kind == "deep"
                                            else '{"name": "a", "name": "b"}')
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in _one_message(err) and "Traceback" not in err
    assert not (tmp_path / "report.html").exists()


def test_no_file_is_parsed_outside_the_loader():
    """Every YAML and JSON parse in synth/ goes through synth/loading.py (limits, duplicate keys)."""
    direct = re.compile(r"\byaml\.(safe_load|load|full_load|unsafe_load|load_all|safe_load_all)\(|\bjson\.loads?\(|"
                        r"\borjson\b|\bread_ndjson\b|\bscan_ndjson\b|\bread_json\b")
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in sorted((ROOT / "synth").rglob("*.py"))
                 if path.name != "loading.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if direct.search(line)]
    assert not offenders, offenders


# ---- 2. strict types and bounds ---------------------------------------------------------------

@pytest.mark.parametrize("change, fragment", [
    (lambda j: j["targets"][0].__setitem__("rows", True), "targets.0.rows: Input should be a valid integer"),
    (lambda j: j["targets"][0].__setitem__("rows", "5"), "targets.0.rows: Input should be a valid integer"),
    (lambda j: j["targets"][0].__setitem__("rows", 10 ** 12), "targets.0.rows: Input should be less than or equal to 10000000"),
    (lambda j: j.__setitem__("plan", {"oversample": float("inf")}), "plan.oversample: Input should be a finite number"),
    (lambda j: j.__setitem__("plan", {"oversample": 1e300}), "plan.oversample: Input should be less than or equal to 10"),
    (lambda j: j.__setitem__("plan", {"max_attempts_per_row": True}), "plan.max_attempts_per_row: Input should be a valid number"),
    (lambda j: j["targets"][0].__setitem__("methods", {"translate": True}), "targets.0.methods.translate"),
    (lambda j: j.__setitem__("sampling", {"max_tokens": 10 ** 9}), "sampling.max_tokens: Input should be less than"),
    (lambda j: j.__setitem__("sampling", {"temperature": float("nan")}), "sampling.temperature: Input should be a finite"),
    (lambda j: j["engine"].__setitem__("timeout_s", float("inf")), "engine.timeout_s: Input should be a finite"),
    (lambda j: j["engine"].__setitem__("max_concurrency", 10 ** 9), "engine.max_concurrency: Input should be less"),
    (lambda j: j.__setitem__("icl", {"k": 10 ** 6}), "icl.k: Input should be less than or equal to 64"),
    (lambda j: j.__setitem__("translate", {"max_chars": 10 ** 12}), "translate.max_chars: Input should be less"),
    (lambda j: j.__setitem__("plan", {"max_rounds": 10 ** 9}), "plan.max_rounds: Input should be less"),
    (lambda j: j.__setitem__("judge", {"enabled": "yes"}), "judge.enabled: Input should be a valid boolean"),
    (lambda j: j["targets"][0].__setitem__("rows", 9_000_000), "above the limit of 20,000,000 per job"),
])
def test_wrong_types_and_absurd_sizes_exit_2_naming_the_field(tmp_path, capsys, change, fragment):
    job = _job(tmp_path)
    change(job)
    started = time.monotonic()
    code, err = _run(tmp_path, yaml.safe_dump(job), capsys)
    assert code == 2
    assert fragment in _one_message(err), err
    assert time.monotonic() - started < 20  # no plan of a trillion attempts


def test_a_preset_with_an_infinite_or_boolean_threshold_is_refused(tmp_path, capsys):
    for value in (".inf", "true", "'0.5'"):
        preset = tmp_path / "mine.yaml"
        preset.write_text(f"extends: default\nname: mine\nthresholds: {{lid: {value}}}\n")
        job = _job(tmp_path, verify={"preset": str(preset)})
        code, err = _run(tmp_path, yaml.safe_dump(job), capsys)
        assert code == 2 and "mine.yaml" in _one_message(err) and "thresholds.lid" in err, err


def _models(model: type[BaseModel], seen: set) -> list[type[BaseModel]]:
    out = [model]
    seen.add(model)
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel) and tp not in seen:
                out += _models(tp, seen)
            stack.extend(getattr(tp, "__args__", ()) or ())
            if hasattr(tp, "__origin__") and hasattr(tp, "__metadata__"):
                stack.append(tp.__origin__)
    return out


def _numeric(annotation) -> bool:
    stack = [annotation]
    while stack:
        tp = stack.pop()
        if tp in (int, float) :
            return True
        stack.extend(getattr(tp, "__args__", ()) or ())
        if hasattr(tp, "__origin__") and hasattr(tp, "__metadata__"):
            stack.append(tp.__origin__)
    return False


def test_every_job_and_preset_field_has_a_description_and_every_number_a_stated_bound():
    from synth.config import JobConfig
    from synth.engines.configs import OpenAIEngineConfig, VllmEngineConfig
    from synth.verify.pipeline import FilterPreset

    missing, unbounded = [], []
    seen: set = set()
    for model in [m for root in (JobConfig, VllmEngineConfig, OpenAIEngineConfig, FilterPreset) for m in _models(root, seen)]:
        for name, field in model.model_fields.items():
            where = f"{model.__name__}.{name}"
            if not field.description:
                missing.append(where)
            if _numeric(field.annotation) and not any(c in field.description or "" for c in ("to ", "at most", "finite")):
                unbounded.append(where)
    assert not missing, f"fields without a description: {missing}"
    assert not unbounded, f"numeric fields whose description states no bound: {unbounded}"


def test_every_number_of_the_job_is_bounded_above():
    """A size or count without an upper bound would take a typo's 10^12 as a plan (thresholds are
    scores, not sizes: finite is their bound)."""
    from synth.config import JobConfig

    loose, stack = [], [("", JobConfig.model_json_schema())]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") in ("integer", "number") and not {"maximum", "exclusiveMaximum"} & set(node) \
                    and "thresholds" not in where:
                loose.append(where)
            stack.extend((f"{where}.{k}", v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))
    assert not loose, loose


# ---- 3. synth verify input types and flags ----------------------------------------------------

def _pairs(udhr, tmp_path: Path, **extra) -> Path:
    english, target = udhr("eng")[:4], udhr("tgl")[:4]
    rows = {"id": [f"r{i}" for i in range(4)], "lang": ["tgl_Latn"] * 4, "source_lang": ["eng_Latn"] * 4,
            "source": english, "text": target, **extra}
    path = tmp_path / "in.parquet"
    pl.DataFrame(rows).write_parquet(path)
    return path


def _files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


@pytest.mark.parametrize("column, values, expected", [
    ("truncated", ["yes", "no", "no", "yes"], "column 'truncated' is String; synth verify reads it as true/false"),
    ("truncated", [0, 1, 0, 1], "column 'truncated' is Int64"),
    ("back_translation", [0.5, 1.5, 2.5, 3.5], "column 'back_translation' is Float64; synth verify reads it as text"),
])
def test_verify_refuses_wrong_optional_column_types(udhr, tmp_path, capsys, column, values, expected):
    src = _pairs(udhr, tmp_path, **{column: values})
    before = _files(tmp_path)
    assert main(["verify", str(src), "--output", str(tmp_path / "out.parquet")]) == 2
    assert expected in _one_message(capsys.readouterr().err)
    assert _files(tmp_path) == before


@pytest.mark.parametrize("flags, expected", [
    (["--batch-rows", "1e20"], "--batch-rows 1e20: not a whole number; give 1 to 10,000,000"),
    (["--batch-rows", str(10 ** 20)], f"--batch-rows {10 ** 20}: out of range"),
    (["--batch-rows", "0"], "--batch-rows 0: out of range"),
    (["--ngram", "0"], "--ngram 0: out of range; give 3 to 64"),
    (["--ngram", "x"], "--ngram x: not a whole number"),
])
def test_verify_refuses_bad_flag_values_naming_the_flag(udhr, tmp_path, capsys, flags, expected):
    src = _pairs(udhr, tmp_path)
    before = _files(tmp_path)
    assert main(["verify", str(src), "--output", str(tmp_path / "out.parquet"), *flags]) == 2
    err = capsys.readouterr().err
    assert expected in _one_message(err) and err.count("\n") == 1, err
    assert _files(tmp_path) == before


def test_verify_python_api_refuses_out_of_range_sizes(udhr, tmp_path):
    from synth.errors import ConfigError
    from synth.verify.cli_verify import verify_file

    src = _pairs(udhr, tmp_path)
    for kwargs, match in [({"batch_rows": 10 ** 20}, "--batch-rows"), ({"ngram": 0}, "--ngram 0")]:
        with pytest.raises(ConfigError, match=match):
            verify_file(src, tmp_path / "out.parquet", **kwargs)
    assert not (tmp_path / "out.parquet").exists()


def test_verify_into_a_folder_it_cannot_write_is_exit_2(udhr, tmp_path, capsys):
    src = _pairs(udhr, tmp_path)
    (tmp_path / "a-file").write_text("mine")
    assert main(["verify", str(src), "--output", str(tmp_path / "a-file" / "out.parquet")]) == 2
    assert "is not a folder" in _one_message(capsys.readouterr().err)
    if os.geteuid() != 0:  # root writes into a read-only folder anyway
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        assert main(["verify", str(src), "--output", str(locked / "out.parquet")]) == 2
        assert "cannot write in" in _one_message(capsys.readouterr().err)


def test_calibrate_and_report_refuse_bad_arguments(udhr, tmp_path, capsys):
    src = _pairs(udhr, tmp_path)
    for flags, expected in [(["--min-rows", "1e3"], "--min-rows 1e3: not a whole number"),
                            (["--quantile", "nan"], "--quantile nan: give a share"),
                            (["--quantile", "inf"], "--quantile inf")]:
        assert main(["calibrate", str(src), "--output", str(tmp_path / "p.yaml"), *flags]) == 2
        assert expected in _one_message(capsys.readouterr().err)
    assert main(["report"]) == 2
    assert "required" in _one_message(capsys.readouterr().err)
    assert not (tmp_path / "p.yaml").exists()


def test_a_rerun_removes_the_temporary_of_a_killed_verify_and_only_that(udhr, tmp_path):
    src = _pairs(udhr, tmp_path)
    out = tmp_path / "out.parquet"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SYNTH_TEST_KILL_AT": "out.parquet"}
    killed = subprocess.run([sys.executable, "-m", "synth.cli", "verify", str(src), "--output", str(out)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.parquet.")]
    assert len(left) == 1 and not out.exists()
    mine = {".out.parquet.tmp": "no random part", ".other.parquet.abcdEFGH.tmp": "another output's",
            "out.parquet.abcdEFGH.tmp": "no leading dot"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    live = tmp_path / ".out.parquet.LiveRun1.tmp"  # a concurrent run's temporary: it holds its lock
    live.write_text("being written")
    with open(live, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert main(["verify", str(src), "--output", str(out)]) == 0
    assert out.exists() and not (tmp_path / left[0]).exists()
    assert live.exists() and all((tmp_path / name).read_text() == text for name, text in mine.items())


def test_a_failed_judge_leaves_no_output_that_looks_finished(udhr, tmp_path, capsys):
    src = _pairs(udhr, tmp_path)
    out = tmp_path / "out.parquet"
    engine = tmp_path / "judge.yaml"
    engine.write_text(yaml.safe_dump({"type": "openai", "base_url": CLOSED, "model": "m", "api_key_env": None,
                                      "max_retries": 0, "timeout_s": 2}))
    code = main(["verify", str(src), "--output", str(out), "--judge", str(engine)])
    err = capsys.readouterr().err
    assert code in (1, 2) and "Traceback" not in err
    assert not out.exists(), "a verify output with every row accepted and no judge columns was left behind"
    assert _files(tmp_path) == {"in.parquet", "judge.yaml"}


def test_a_failed_judge_keeps_the_earlier_output(udhr, tmp_path, capsys):
    src = _pairs(udhr, tmp_path)
    out = tmp_path / "out.parquet"
    assert main(["verify", str(src), "--output", str(out)]) == 0
    earlier = out.read_bytes()
    engine = tmp_path / "judge.yaml"
    engine.write_text(json.dumps({"type": "openai", "base_url": CLOSED, "model": "m", "api_key_env": None,
                                  "max_retries": 0, "timeout_s": 2}))
    assert main(["verify", str(src), "--output", str(out), "--judge", str(engine)]) in (1, 2)
    capsys.readouterr()
    assert out.read_bytes() == earlier
    assert _files(tmp_path) == {"in.parquet", "judge.yaml", "out.parquet"}


def test_a_run_that_fails_before_its_first_write_leaves_no_work_directory(tmp_path):
    """Ordering: whatever fails between taking the lock and the first write (here a plan that
    overflows, set past validation through the Python API) leaves no `_work/` and no lock."""
    from synth.config import parse_job
    from synth.prepare import prepare
    from synth.runner import JobRun

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(_job(tmp_path)))
    prepared = prepare(parse_job(path))
    prepared.job.plan.oversample = float("inf")  # no validation on assignment: what a caller's code can do
    out = tmp_path / "out"
    with pytest.raises(OverflowError):
        JobRun(prepared, out).run()
    assert not out.exists()


def test_run_into_a_path_through_a_file_is_exit_2(tmp_path, capsys):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(_job(tmp_path)))
    (tmp_path / "a-file").write_text("mine")
    assert main(["run", str(path), "--output", str(tmp_path / "a-file" / "out")]) == 2
    assert "is not a folder" in _one_message(capsys.readouterr().err)
    assert (tmp_path / "a-file").read_text() == "mine"


def test_a_100000_deep_answer_is_an_unparseable_row_not_a_traceback():
    """What a hostile server returns is parsed under the same limits: a structured ICL answer or a
    judge verdict nested 100,000 deep is that row's reject."""
    from synth.engines.base import Completion
    from synth.methods.icl import pair_from_json
    from synth.verify.judge import parse_verdict

    deep = '{"language": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert isinstance(parse_verdict(deep), str)
    assert pair_from_json(Completion(id="x", text=deep, finish_reason="stop")).startswith("unparseable")


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path):
    from synth.loading import iter_jsonl, load_json, load_yaml

    (tmp_path / "a.yaml").write_bytes(b"\xef\xbb\xbfrows: 2\n")
    (tmp_path / "a.json").write_bytes(b'\xef\xbb\xbf{"a": 1}')
    (tmp_path / "a.jsonl").write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"b": 2}\n')
    assert load_yaml(tmp_path / "a.yaml") == {"rows": 2}
    assert load_json(tmp_path / "a.json") == {"a": 1}
    assert [v for _, v in iter_jsonl(tmp_path / "a.jsonl")] == [{"a": 1}, {"b": 2}]


def test_engine_kwargs_hold_finite_numbers_only(tmp_path, capsys):
    job = _job(tmp_path, engine={"type": "vllm", "model": "bundled:smollm2",
                                 "engine_kwargs": {"gpu_memory_utilization": float("inf"), "x": [1, {"y": float("nan")}]}})
    code, err = _run(tmp_path, yaml.safe_dump(job), capsys)
    assert code == 2 and "engine.engine_kwargs" in _one_message(err) and "not a finite number" in err


def test_a_hostile_evaluation_set_is_exit_2_and_the_run_directory_is_not_left(tmp_path, capsys):
    """Evaluation sets are read when the verifier is built, after the run directory's lock is taken:
    the refusal still leaves nothing behind."""
    evals = tmp_path / "eval.jsonl"
    evals.write_text('{"q": "a", "q": "b"}\n')
    job = _job(tmp_path, verify={"contamination": {"paths": [str(evals)]}})
    code, err = _run(tmp_path, yaml.safe_dump(job), capsys)
    assert code == 2 and "eval.jsonl:1: key 'q' appears twice" in _one_message(err), err
