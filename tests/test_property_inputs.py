"""Property tests: random malformed job files and `synth verify` inputs never give a traceback or exit 1,
and never change a file outside the output. Engines never start: job files point at a closed port."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth.cli import main
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
CLOSED = f"http://127.0.0.1:{free_port()}/v1"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

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
