"""Imports run down the stages: a filter family (a package of synth/verify/) borrows nothing from
another family (shared helpers live in synth/text.py or a neutral module such as synth/verify/grams.py), verify never imports engines (only their request types and configs,
which import without Ray), the runner or the CLI modules."""

import ast
from pathlib import Path

VERIFY = Path(__file__).resolve().parents[2] / "synth" / "verify"
FAMILIES = {"lid", "fluency", "meaning", "rules", "sets"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def test_filters_do_not_import_each_other_and_verify_does_not_import_upwards():
    assert {p.name for p in VERIFY.iterdir() if (p / "__init__.py").is_file()} == FAMILIES
    for path in VERIFY.rglob("*.py"):
        imported = _imports(path)
        family = path.relative_to(VERIFY).parts[0]
        if family in FAMILIES:
            others = {m for m in imported if m.startswith("synth.verify.") and m.split(".")[2] in FAMILIES - {family}}
            assert not others, (str(path.relative_to(VERIFY)), others)
        # request/response types and engine configs are data (the judge builds requests); engines are not
        upward = {m for m in imported if m.startswith(("synth.engines", "synth.runner", "synth.cli", "synth.verify.cli_verify"))
                  and m not in ("synth.engines.base", "synth.engines.configs")}
        assert not upward, (path.name, upward)


def test_text_knowledge_imports_no_synth_module():
    text = VERIFY.parent / "text.py"
    reasons = VERIFY.parent / "reasons.py"
    paths = VERIFY.parent / "paths.py"  # a leaf (where the cache is): text.py saves its tables there
    for path in (text, reasons, paths):
        assert not {m for m in _imports(path) if m.startswith("synth") and m != "synth.paths"}, path.name
    assert not {m for m in _imports(paths) if m.startswith("synth")}
