"""Property tests: random malformed job files and `synth verify` inputs never give a traceback or exit 1,
and never change a file outside the output. Engines never start: job files point at a closed port."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from synth.cli import main
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
CLOSED = f"http://127.0.0.1:{free_port()}/v1"
# derandomize: the same examples on every run (CI stability); the tier stays within a couple of minutes
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FEW = settings(SETTINGS, max_examples=25)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10 ** 6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["swh_Latn", "icl", "translate", "open_qa", "../x", "default"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)
KEYS = ["name", "targets", "sources", "sampling", "icl", "translate", "verify", "plan", "output", "prompts_dir", "bogus"]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@st.composite
def jobs(draw):
    job = {"engine": {"type": "openai", "base_url": CLOSED, "model": "m", "api_key_env": None},
           "targets": [{"lang": "swh_Latn", "rows": 2, "methods": {"translate": 1.0}}],
           "sources": {"path": str(ROOT / "examples" / "sources" / "en_sft.jsonl")}}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True)):
        job[key] = draw(values)
    if draw(st.booleans()):
        job["targets"] = draw(st.lists(st.dictionaries(st.sampled_from(["lang", "rows", "methods", "seeds", "lid", "x"]),
                                                        values, max_size=4), max_size=2))
    return job


@SETTINGS
@given(job=jobs(), raw=st.one_of(st.none(), st.binary(max_size=64)))
def test_random_job_files_exit_2_with_one_message(job, raw, tmp_path_factory, capsys):
    directory = tmp_path_factory.mktemp("job")
    path = directory / "job.yaml"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(yaml.safe_dump(job, allow_unicode=True))
    before = _snapshot(directory)
    code = main(["run", str(path), "--output", str(directory / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("synth: error:") and "Traceback" not in err
    assert _snapshot(directory) == before and not (directory / "out").exists()


columns = {
    "id": st.one_of(st.lists(st.text(max_size=4), min_size=3, max_size=3), st.lists(st.integers(), min_size=3, max_size=3)),
    "lang": st.lists(st.one_of(st.none(), st.sampled_from(["swh_Latn", "fra_Latn", "xyz_Latn", ""])), min_size=3, max_size=3),
    "source_lang": st.lists(st.one_of(st.none(), st.sampled_from(["eng_Latn", "zzz"])), min_size=3, max_size=3),
    "source": st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=3, max_size=3),
    "text": st.one_of(st.lists(st.one_of(st.none(), st.text(max_size=40)), min_size=3, max_size=3),
                      st.lists(st.floats(), min_size=3, max_size=3)),
}


@SETTINGS
@given(present=st.lists(st.sampled_from(sorted(columns)), unique=True), data=st.data(), garbage=st.booleans())
def test_random_verify_inputs_exit_0_or_2(present, data, garbage, tmp_path_factory, capsys):
    directory = tmp_path_factory.mktemp("verify")
    source = directory / "in.parquet"
    if garbage:
        source.write_bytes(data.draw(st.binary(max_size=200)))
    else:
        pl.DataFrame({name: data.draw(columns[name]) for name in present} or {"x": [1]}, strict=False).write_parquet(source)
    before = _snapshot(directory)
    code = main(["verify", str(source), "--output", str(directory / "out.parquet")])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("synth: error:") and _snapshot(directory) == before
    else:
        assert set(_snapshot(directory)) == set(before) | {"out.parquet"}
        assert all(_snapshot(directory)[name] == digest for name, digest in before.items())


# ---- hostile job files: YAML text, not only what yaml.safe_dump can write -------------------------

def _base_job() -> dict:
    return {"engine": {"type": "openai", "base_url": CLOSED, "model": "m", "api_key_env": None},
            "targets": [{"lang": "swh_Latn", "rows": 2, "methods": {"translate": 1.0}}],
            "sources": {"path": str(ROOT / "examples" / "sources" / "en_sft.jsonl")}}


extreme_numbers = st.sampled_from(["1e308", "-1e308", ".inf", "-.inf", ".nan", "0x7fffffffffffffff", "1_000_000",
                                   "9" * 30, "-0", "0.0000001", "1000000000000", "true", "no", "~", "'5'", "0o777",
                                   "2001-12-14", "!!binary aGVsbG8=", "!!float 1", "[]", "{}", "''"])
unicode_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20).map(json.dumps)
# places a hostile value can go: known sizes and counts, free-form mappings, lists
SLOTS = ["targets[0].rows", "targets[0].methods.translate", "plan.oversample", "plan.max_rounds", "plan.initial_acceptance",
         "plan.max_attempts_per_row", "sampling.max_tokens", "sampling.temperature", "sampling.seed", "sampling.stop",
         "icl.k", "translate.max_chars", "translate.max_source_chars", "output.shard_rows", "engine.max_concurrency",
         "engine.timeout_s", "engine.max_retries", "verify.workers", "verify.num_cpus", "verify.thresholds",
         "judge.max_tokens", "judge.enabled", "name", "targets[0].lang", "targets[0].categories"]


@st.composite
def hostile_values(draw) -> str:
    """One YAML value written as text: deep nesting, an alias chain, extremes, unicode, plain junk."""
    kind = draw(st.sampled_from(["deep_flow", "deep_block", "aliases", "extreme", "unicode", "mapping"]))
    if kind == "deep_flow":
        depth = draw(st.one_of(st.sampled_from([20_000, 3000, 65, 64]), st.integers(1, 3000)))
        opener = draw(st.sampled_from(["[", "{a: "]))
        return opener * depth + "1" + ("]" if opener == "[" else "}") * depth
    if kind == "deep_block":
        depth = draw(st.one_of(st.sampled_from([200, 65, 63]), st.integers(1, 200)))
        return "\n" + "".join("  " * (i + 2) + "k:\n" for i in range(depth)) + "  " * (depth + 2) + "k: 1"
    if kind == "aliases":
        width, levels = draw(st.sampled_from([10, 2, 12])), draw(st.one_of(st.sampled_from([9, 6, 3]), st.integers(1, 9)))
        chain = "[&l0 [x, x], " + ", ".join(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]"
                                             for i in range(1, levels + 1)) + "]"
        return chain
    if kind == "extreme":
        return draw(extreme_numbers)
    if kind == "unicode":
        return draw(unicode_text)
    return "{" + ", ".join(f"{draw(unicode_text)}: {draw(extreme_numbers)}" for _ in range(draw(st.integers(0, 3)))) + "}"


def _with_value(job: dict, slot: str, marker: str) -> dict:
    node = job
    parts = slot.replace("[0]", ".0").split(".")
    for part in parts[:-1]:
        key = int(part) if part.isdigit() else part
        if isinstance(node, dict) and key not in node:
            node[key] = {}
        node = node[key]
    node[parts[-1]] = marker
    return job


@FEW
@given(slot=st.sampled_from(SLOTS), value=hostile_values(), duplicate=st.sampled_from([None, "rows", "engine", "plan"]))
def test_hostile_job_files_exit_2_with_one_message_and_write_nothing(slot, value, duplicate, tmp_path_factory, capsys):
    directory = tmp_path_factory.mktemp("hostile")
    marker = "HOSTILE-VALUE-HERE"
    text = yaml.safe_dump(_with_value(_base_job(), slot, marker), allow_unicode=True, width=10 ** 6)
    text = text.replace(f"'{marker}'", marker).replace(marker, value)
    if duplicate == "rows":
        text = text.replace("rows: 2", "rows: 2\n  rows: 3", 1)
    elif duplicate:
        text += f"{duplicate}: {{}}\n"
    path = directory / "job.yaml"
    path.write_text(text, encoding="utf-8")
    before = _snapshot(directory)
    started = time.monotonic()
    code = main(["run", str(path), "--output", str(directory / "out")])
    err = capsys.readouterr().err
    event("reached the engine" if "cannot reach the server" in err else "refused before the engine")
    assert code == 2, err
    assert err.startswith("synth: error:") and "Traceback" not in err, err
    assert _snapshot(directory) == before and not (directory / "out").exists()
    assert time.monotonic() - started < 30, "a hostile file is refused quickly"


# ---- seeds and sources lines --------------------------------------------------------------------

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30), st.floats(),
                                     st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.sampled_from(["messages", "role", "content",
                                                                                    "category", "id", "x"]),
                                                                   inner, max_size=3)),
                           max_leaves=10)


@st.composite
def hostile_lines(draw) -> bytes:
    kind = draw(st.sampled_from(["json", "deep", "duplicate", "bytes", "messages"]))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "deep":
        depth = draw(st.one_of(st.sampled_from([100_000, 65, 64]), st.integers(60, 200_000)))
        return b'{"messages": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "duplicate":
        return b'{"messages": [], "messages": [{"role": "user", "content": "x"}]}'
    if kind == "bytes":
        return draw(st.binary(max_size=40)).replace(b"\n", b" ")
    role = draw(st.sampled_from(["user", "assistant", "system", "tool", 5, None]))
    content = draw(st.one_of(st.text(max_size=30), st.integers(), st.none()))
    return json.dumps({"messages": [{"role": role, "content": content}], "category": draw(
        st.one_of(st.sampled_from(["open_qa", "writing"]), st.integers()))}).encode()


@FEW
@given(lines=st.lists(hostile_lines(), min_size=1, max_size=4), use=st.sampled_from(["sources", "seeds"]))
def test_hostile_seed_and_source_lines_exit_2_with_one_message(lines, use, tmp_path_factory, capsys):
    directory = tmp_path_factory.mktemp("lines")
    data = directory / "data.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    job = _base_job()
    if use == "sources":
        job["sources"]["path"] = str(data)
    else:
        job["targets"][0].update(methods={"icl": 1.0}, seeds=str(data))
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    before = _snapshot(directory)
    code = main(["run", str(path), "--output", str(directory / "out")])
    err = capsys.readouterr().err
    assert code == 2, err  # valid lines too: the engine's port is closed
    assert err.startswith("synth: error:") and "Traceback" not in err, err
    assert _snapshot(directory) == before and not (directory / "out").exists()


# ---- synth verify: random Arrow types per column, nulls, extremes, flags ------------------------

ARROW_TYPES = {
    "string": (pa.string(), st.text(max_size=30)),
    "large_string": (pa.large_string(), st.text(max_size=30)),
    "int64": (pa.int64(), st.integers(-2 ** 63, 2 ** 63 - 1)),
    "float64": (pa.float64(), st.floats()),
    "bool": (pa.bool_(), st.booleans()),
    "null": (pa.null(), st.none()),
    "binary": (pa.binary(), st.binary(max_size=10)),
    "list_string": (pa.list_(pa.string()), st.lists(st.text(max_size=5), max_size=3)),
    "struct": (pa.struct({"a": pa.int32()}), st.fixed_dictionaries({"a": st.integers(-2 ** 31, 2 ** 31 - 1)})),
}
LANGS = st.sampled_from(["swh_Latn", "fra_Latn", "tgl_Latn", "eng_Latn", "xyz_Latn", ""])
VERIFY_COLUMNS = ["id", "lang", "source_lang", "source", "text", "back_translation", "truncated", "extra"]


@st.composite
def verify_tables(draw) -> pa.Table:
    rows = draw(st.integers(0, 5))
    columns = {}
    for name in VERIFY_COLUMNS:
        if draw(st.integers(0, 9)) == 9 if name in ("id", "lang", "source_lang", "source", "text") else draw(st.booleans()):
            continue  # a required column left out (now and then), an optional one (half the time)
        if draw(st.integers(0, 4)) != 4:  # mostly a column as it should be: a good share of inputs get verified
            good = {"id": st.just([f"r{i}" for i in range(rows)]),
                    "lang": st.lists(st.sampled_from(["swh_Latn", "fra_Latn", "tgl_Latn"]), min_size=rows, max_size=rows),
                    "source_lang": st.lists(st.sampled_from(["eng_Latn", None]), min_size=rows, max_size=rows),
                    "truncated": st.lists(st.one_of(st.none(), st.booleans()), min_size=rows, max_size=rows),
                    "text": st.lists(st.text(max_size=40), min_size=rows, max_size=rows)}
            values = draw(good.get(name, st.lists(st.one_of(st.none(), st.text(max_size=40)), min_size=rows, max_size=rows)))
            kind = "bool" if name == "truncated" else "string"
        else:
            kind = draw(st.sampled_from(sorted(ARROW_TYPES)))
            values = draw(st.lists(st.one_of(st.none(), LANGS if name.endswith("lang") and kind == "string"
                                             else ARROW_TYPES[kind][1]), min_size=rows, max_size=rows))
        columns[name] = pa.array(values, type=ARROW_TYPES[kind][0])
    return pa.table(columns)


FLAGS = st.lists(st.sampled_from([["--batch-rows", "1"], ["--batch-rows", "1e20"], ["--batch-rows", str(10 ** 20)],
                                  ["--batch-rows", "-3"], ["--ngram", "0"], ["--ngram", "13"], ["--ngram", "nan"],
                                  ["--lid-skip", "swh_Latn"], ["--filters", "strict"], ["--filters", "nope"]]),
                 max_size=1)


@FEW
@given(table=verify_tables(), flags=FLAGS)
def test_random_arrow_types_and_flags_in_verify_exit_0_or_2(table, flags, tmp_path_factory, capsys):
    directory = tmp_path_factory.mktemp("arrow")
    source = directory / "in.parquet"
    pq.write_table(table, source)
    before = _snapshot(directory)
    code = main(["verify", str(source), "--output", str(directory / "out.parquet"), *[f for pair in flags for f in pair]])
    err = capsys.readouterr().err
    event(f"exit {code}")
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("synth: error:") and _snapshot(directory) == before, err
    else:
        after = _snapshot(directory)
        assert set(after) == set(before) | {"out.parquet"}
        assert all(after[name] == digest for name, digest in before.items())
