"""Every synth name the README and the docs show a user resolves: the public API cannot break silently.

Read from README.md, docs/*.md and the generated reference pages: `import synth...` and
`from synth... import ...` in Python code blocks, and `synth.a.b` or `Job.add_filter`-style names in
any code block or inline code. A name that moved or was renamed fails here, naming the page.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
INSTANCES = {"job": "synth.Job"}  # what the docs call an instance of a public class: `job.run(...)`
INSTANCE_CALL = re.compile(r"(?<![\w.])(" + "|".join(INSTANCES) + r")\.([A-Za-z_]\w*)\(")
DOTTED = re.compile(r"(?<![\w/.\-])synth(?:\.[A-Za-z_]\w*)+(?![\w/\-]|\.(?:py|yaml|yml|json)\b)")


def _pages() -> dict[str, str]:
    pages = {"README.md": (ROOT / "README.md").read_text(encoding="utf-8")}
    for path in sorted((ROOT / "docs").glob("*.md")):
        pages[f"docs/{path.name}"] = path.read_text(encoding="utf-8")
    from synth import _docs

    for path, function in _docs.GENERATED.items():
        pages[f"docs/{path} (generated)"] = getattr(_docs, function)()
    return pages


def _public_roots() -> dict[str, str]:
    """Names a user reaches from `synth` and `synth.verify` (Job, Filter, ...) -> their module."""
    import synth
    import synth.verify

    roots = {name: "synth" for name in synth.__all__}
    roots.update({name: "synth.verify" for name in synth.verify.__all__})
    return roots


def names_used(text: str) -> set[str]:
    """Dotted names (`synth.verify.Filter`, `synth.Job.from_yaml`) the text shows a user."""
    names: set[str] = set()
    code = []
    for lang, block in FENCE.findall(text):
        code.append(block)
        if lang in ("python", "py", "pycon"):
            try:
                tree = ast.parse(block)
            except SyntaxError:
                tree = None
            for node in ast.walk(tree) if tree else ():
                if isinstance(node, ast.Import):
                    names.update(a.name for a in node.names if a.name.split(".")[0] == "synth")
                elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "synth":
                    names.update(f"{node.module}.{a.name}" for a in node.names if a.name != "*")
    prose = FENCE.sub("", text)
    code.extend(INLINE.findall(prose))
    roots = _public_roots()
    root_attr = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, roots)) + r")\.([A-Za-z_]\w*)")
    for snippet in code:
        names.update(DOTTED.findall(snippet))
        names.update(f"{roots[a]}.{a}.{b}" for a, b in root_attr.findall(snippet))
        names.update(f"{INSTANCES[a]}.{b}" for a, b in INSTANCE_CALL.findall(snippet))
    return names


def resolve(name: str):
    """The object a dotted name names: the longest importable module, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


def _uses() -> list[tuple[str, str]]:
    return sorted({(name, page) for page, text in _pages().items() for name in names_used(text)})


def test_the_docs_use_synth_names():
    used = {name for name, _ in _uses()}
    # the README's own examples: a plug-in filter and the Python API
    assert {"synth.verify.Filter", "synth.Job.add_filter"} <= used, sorted(used)


@pytest.mark.parametrize("name,page", _uses())
def test_name_resolves(name, page):
    try:
        resolve(name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{page} uses {name}, which does not resolve: {type(exc).__name__}: {exc}")


def test_names_used_reads_imports_and_dotted_names():
    text = ("```python\nfrom synth.verify import Filter, Candidate\nimport synth.config\n```\n"
            "Call `synth.verify.load_preset(\"default\")` or `Job.from_yaml`, then `job.run(\"out\")`; "
            "see `synth/verify/base.py` and `job.yaml`.\n")
    assert names_used(text) == {"synth.verify", "synth.verify.Filter", "synth.verify.Candidate", "synth.config",
                                "synth.verify.load_preset", "synth.Job.from_yaml", "synth.Job.run"}
    with pytest.raises(AttributeError):
        resolve("synth.verify.NoSuchName")
