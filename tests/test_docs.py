"""The documentation site builds offline with no warning, and its generated reference pages miss nothing.

The models are walked here on their own (not with synth/_docs.py's walker), so a key the generator
skipped, or a field without a description, fails this test.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("material", reason="the docs extra is not installed: pip install -e '.[docs]'")

# mkdocs in a child process that cannot open a network connection: the build must be offline
OFFLINE_BUILD = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("the documentation build tried to use the network")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from mkdocs.__main__ import cli
sys.argv = ["mkdocs", "build", "--strict", "--site-dir", sys.argv[1]]
cli()
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {"PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", OFFLINE_BUILD, str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    assert "WARNING" not in log, log
    return out


def test_site_builds_with_every_page(site):
    for page in ("index", "concepts", "reference/job-file", "reference/presets", "reference/filters",
                 "engines", "scaling", "sources", "verification", "outputs", "safety", "python-api",
                 "reference/cli", "benchmarks", "troubleshooting"):
        assert (site / page / "index.html").is_file() or (site / f"{page}.html").is_file(), page


def test_site_loads_nothing_from_the_network(site):
    remote = re.compile(r"<(?:link|script|img|iframe|source)\b[^>]*\b(?:href|src)=\"(?:https?:)?//", re.I)
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert not remote.search(text), f"{html.relative_to(site)} loads a remote asset"
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text


def test_benchmarks_page_shows_bench_readme_without_copying_it(site):
    page = (ROOT / "docs/benchmarks.md").read_text(encoding="utf-8")
    assert '--8<-- "bench/README.md' in page
    bench = (ROOT / "bench/README.md").read_text(encoding="utf-8")
    # every benchmark script's section of bench/README.md reaches the built page
    html = (site / "benchmarks/index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"^## (\w+\.py)", bench, re.M)
    assert scripts
    for script in scripts:
        assert script in html, script
    # no figure of bench/README.md is written into docs/benchmarks.md itself
    figures = set(re.findall(r"\b\d[\d,]*\.\d+\b", bench))
    assert not figures & set(re.findall(r"\b\d[\d,]*\.\d+\b", page))


# ------------------------------------------------------------------- the models, walked independently

def _models_in(annotation) -> list[tuple[str, type[BaseModel]]]:
    """(path suffix, model) for every model inside a type: list -> [], mapping -> .<name>."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin is list:
        return [("[]" + s, m) for s, m in _models_in(typing.get_args(annotation)[0])]
    if origin is dict:
        return [(".<name>" + s, m) for s, m in _models_in(typing.get_args(annotation)[1])]
    return [pair for arg in typing.get_args(annotation) for pair in _models_in(arg)]


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel], str]]:
    out = []
    for name, info in model.model_fields.items():
        key = f"{prefix}.{info.alias or name}" if prefix else (info.alias or name)
        out.append((key, model, name))
        for suffix, child in _models_in(info.annotation):
            out.extend(_keys(child, key + suffix))
    return out


def _roots():
    from synth.config import JobConfig
    from synth.verify import FilterPreset

    from synth.eval.config import EvalConfig

    return {"job": JobConfig, "preset": FilterPreset, "eval": EvalConfig}


@pytest.mark.parametrize("which", ["job", "preset", "eval"])
def test_reference_lists_every_key(which):
    from synth import _docs

    page = {"job": _docs.job_reference, "preset": _docs.preset_reference, "eval": _docs.eval_reference}[which]()
    keys = _keys(_roots()[which])
    assert len(keys) > 10
    missing = [key for key, _, _ in keys if f"| `{key}` |" not in page]
    assert not missing, f"keys missing from the generated {which} reference: {missing}"


@pytest.mark.parametrize("which", ["job", "preset", "eval"])
def test_every_field_has_a_description(which):
    empty = sorted({f"{model.__module__}.{model.__name__}.{name}" for _, model, name in _keys(_roots()[which])
                    if not (model.model_fields[name].description or "").strip()})
    assert not empty, f"add description= to these fields: {empty}"


def test_reference_shows_defaults_and_bounds():
    from synth import _docs

    page = _docs.job_reference()
    row = next(line for line in page.splitlines() if line.startswith("| `translate.max_chars` |"))
    assert "`1500`" in row and ">= 100" in row
    row = next(line for line in page.splitlines() if line.startswith("| `targets[].rows` |"))
    assert "required" in row and ">= 1" in row
    assert "## `engine` (type: vllm)" in page and "## `engine` (type: openai)" in page


def test_cli_reference_lists_every_command_and_flag():
    from synth import _docs
    from synth.cli import build_parser

    page = _docs.cli_reference()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"run", "verify", "calibrate", "report", "languages", "prepare-model"} <= set(sub.choices)
    for name, parser in sub.choices.items():
        assert f"## synth {name}" in page, name
        section = page.split(f"## synth {name}\n", 1)[1].split("\n## synth ", 1)[0]
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in section, f"synth {name} {flag}"
            if not action.option_strings:
                assert f"`{action.metavar or action.dest}`" in section, f"synth {name} {action.dest}"
            if not isinstance(action, argparse._HelpAction):
                assert (action.help or "").strip(), f"synth {name} {action.dest}: add help= (the CLI page shows it)"


def test_filter_reference_lists_every_filter_and_reason():
    from synth import _docs
    from synth.reasons import FIXED

    page = _docs.filter_reference()
    registry = _docs.filter_registry()
    assert {"lid", "fluency", "dedup", "structure_mismatch"} <= set(registry)
    for name, cls in registry.items():
        row = next((line for line in page.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, name
        assert ("score >= threshold" if cls.higher_is_better else "score <= threshold") in row
        assert cls.description and cls.description.replace("|", "\\|") in row
    for reason in FIXED:
        assert f"| `{reason}` |" in page, reason


def test_readme_is_a_front_door_linking_into_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "make test" in readme and "make demo" in readme
    for command in ("synth run", "synth verify", "synth calibrate", "synth report", "synth languages",
                    "synth prepare-model"):
        assert f"`{command}" in readme, command
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link
